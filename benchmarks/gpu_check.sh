#!/usr/bin/env bash
# GPU checks in one command, run from anywhere on the GPU machine:
#
#     bash benchmarks/gpu_check.sh
#
# The GPU machine's python3 has torch but not our other dependencies; their wheels are
# carried in .whl/ at the repo root and installed into /tmp/site. Each engine has one
# section (GPU-marked tests, then its benchmark); append new sections (DNABERT-S, flow)
# as functions and list them at the bottom. Tables and test logs go to $OUT when set
# (the device runner collects it), else to /tmp/gpu_check. A failing section does not
# stop the others; the script exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-/tmp/gpu_check}"
mkdir -p "$RESULTS"

setup() {
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    fi
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    python3 - <<'PY' | tee "$RESULTS/environment.txt"
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda)
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
else:
    print("no CUDA device: GPU tests will be skipped")
PY
}

section_esm() {
    local rc=0
    python3 -m pytest -q -m "gpu or not slow" \
        tests/test_esm_checkpoint.py tests/test_esm_model.py tests/test_esm_embedder.py \
        2>&1 | tee "$RESULTS/esm_tests.txt" || rc=1
    # 3B architecture, random weights: fair-esm FP32 and BF16 autocast vs ours.
    python3 benchmarks/esm_throughput.py --model esm2_t36_3B_UR50D --n 5000 \
        --out "$RESULTS/esm_throughput.md" 2>&1 | tee "$RESULTS/esm_throughput.log" || rc=1
    return $rc
}

status=0
run_section() {
    echo "== $1 =="
    if ! "$1"; then
        echo "== $1 FAILED =="
        status=1
    fi
}

setup || exit 1
run_section section_esm
exit $status
