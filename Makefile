# Two user-facing targets: `make demo` (the main job on bundled sample reads) and
# `make test`. Each creates and fills the virtual environment itself when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# On CPU machines this resolves to the local CPU build; set TORCH_SPEC= to keep an
# existing (e.g. CUDA) torch.
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT ?= demo-output
# On a machine with NVIDIA GPUs, also install the `gpu` extra (dask-cuda).
comma := ,
EXTRAS ?= test$(if $(shell command -v nvidia-smi 2>/dev/null),$(comma)gpu)

.PHONY: demo test lint venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_SPEC),$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)")
	$(PY) -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest -q

# The whole flow on the bundled sample reads, with small random-init models written
# first (the real weights cannot be fetched here): outputs land in $(DEMO_OUT)/.
demo: $(STAMP)
	$(VENV)/bin/virnucpro make-demo-models $(DEMO_OUT)/models
	$(PY) flows/predict.py virnucpro/data/sample_reads.fa --out $(DEMO_OUT) \
		--classifier $(DEMO_OUT)/models/classifier_demo.pth \
		--esm-model $(DEMO_OUT)/models/esm2_demo.pt \
		--dnabert-model $(DEMO_OUT)/models/dnabert_demo --trust-remote-code --cpu-workers 2
