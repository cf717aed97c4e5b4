#!/usr/bin/env bash
# GPU checks in one command, run from anywhere on the GPU machine:
#
#     bash benchmarks/gpu_check.sh
#
# The GPU machine's python3 has torch but not our other dependencies; their wheels are
# carried in .whl/ at the repo root (fill it here first: bash benchmarks/fetch_gpu_wheels.sh,
# then call the device with carry [".whl"]) and installed into /tmp/site. Each engine has one
# section (GPU-marked tests, then its benchmark), in order of importance: ESM-2 (most of the
# compute) first. A device session has 15 minutes in all, so the whole script, install
# included, stops within BUDGET seconds (8 minutes): each section gets at most its own cap
# and never more than what is left, and is stopped (status 124) when it runs out. Tables and
# test logs go to $OUT when set (the device runner collects it), else to /tmp/gpu_check,
# each as soon as its section ends. A failing section does not stop the others; the script
# exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-/tmp/gpu_check}"
mkdir -p "$RESULTS"
BUDGET=${BUDGET:-480}
# Seconds each section may take at most (a section left without time is skipped).
declare -A CAP=([esm]=170 [dnabert]=70 [cluster]=60 [flow]=130 [load]=50)

setup() {
    if compgen -G ".whl/*.whl" >/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    fi
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    python3 - <<'PY' 2>&1 | tee "$RESULTS/environment.txt"
import importlib.metadata as metadata

import torch

from virnucpro.models.esm_model import select_attention_backend

print("torch", torch.__version__, "CUDA", torch.version.cuda)
for package in ("prefect", "distributed", "dask-cuda", "transformers", "fair-esm", "bokeh"):
    try:
        print(package, metadata.version(package))
    except metadata.PackageNotFoundError:
        print(package, "MISSING")
if torch.cuda.is_available():
    device = torch.device("cuda")
    print(torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
    print("ESM-2 attention backend in BF16:", select_attention_backend(device, torch.bfloat16))
else:
    print("no CUDA device: GPU tests will be skipped")
PY
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit \
        --format=csv 2>&1 | tee -a "$RESULTS/environment.txt" || true
}

section_esm() {
    local rc=0
    python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" \
        tests/test_esm_checkpoint.py tests/test_esm_model.py tests/test_esm_embedder.py \
        2>&1 | tee "$RESULTS/esm_tests.txt" || rc=1
    # 3B architecture, random weights: fair-esm FP32 and BF16 autocast vs ours, the
    # measured matmul ceiling, and where ours spends its time (esm_profile.txt).
    python3 benchmarks/esm_throughput.py --model esm2_t36_3B_UR50D --n 5000 \
        --out "$RESULTS/esm_throughput.md" --profile "$RESULTS/esm_profile.txt" 2>&1 | tee "$RESULTS/esm_throughput.log" || rc=1
    return $rc
}

section_load() {
    # A worker's start-up: fair-esm's loading (the original's) vs ours, 3B FP16 file.
    python3 benchmarks/esm_load.py --out "$RESULTS/esm_load.md" 2>&1 \
        | tee "$RESULTS/esm_load.log"
}

section_dnabert() {
    local rc=0
    # Our stand-in of DNABERT-S's own code, both variants, FP32/BF16/FP16 on the GPU.
    python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" tests/test_dnabert.py \
        tests/test_dnabert_snapshot.py tests/test_classifier.py \
        2>&1 | tee "$RESULTS/dnabert_tests.txt" || rc=1
    # DNABERT-S-sized stand-in (12 layers, 768), random weights: batched vs one at a time.
    python3 benchmarks/dnabert_throughput.py --out "$RESULTS/dnabert_throughput.md" \
        2>&1 | tee "$RESULTS/dnabert_throughput.log" || rc=1
    return $rc
}

section_cluster() {
    # dask-cuda's cluster on the real GPU, and the tests that read real NVML: on a GPU
    # machine nothing may assume there is no GPU.
    python3 -m pytest -q -p no:cacheprovider -m "gpu or not slow" tests/test_cluster.py \
        tests/test_gpu_monitor.py tests/test_telemetry.py tests/test_device.py \
        2>&1 | tee "$RESULTS/cluster_tests.txt"
}

section_flow() {
    local rc=0
    # The flow on one GPU (LocalCUDACluster) vs the bare engine loop, 50,000 frames,
    # 3B-architecture models; the report it writes shows real NVML figures.
    python3 benchmarks/flow_end_to_end.py --out "$RESULTS/flow_end_to_end.md" \
        --keep-report "$RESULTS" \
        2>&1 | tee "$RESULTS/flow_end_to_end.log" || rc=1
    return $rc
}

status=0
run_section() {
    local left=$((BUDGET - SECONDS)) cap=${CAP[$1]}
    local seconds=$((cap < left ? cap : left)) started=$SECONDS rc=0
    if ((seconds < 10)); then
        echo "== $1 SKIPPED: $left s left of the $BUDGET s budget ==" | tee -a "$RESULTS/timings.txt"
        status=1
        return
    fi
    echo "== $1 (at most $seconds s) =="
    export -f "section_$1" setup
    export RESULTS PYTHONPATH
    timeout --kill-after=10 "$seconds" bash -o pipefail -c "section_$1" || rc=$?
    if ((rc == 124 || rc == 137)); then
        echo "== $1 STOPPED after $seconds s (budget) ==" | tee -a "$RESULTS/timings.txt"
    elif ((rc != 0)); then
        echo "== $1 FAILED =="
    fi
    ((rc == 0)) || status=1
    echo "== $1 took $((SECONDS - started)) s ==" | tee -a "$RESULTS/timings.txt"
}

# `bash benchmarks/gpu_check.sh esm flow` runs only those sections; no argument runs
# them all, most important first, within BUDGET seconds.
setup || exit 1
for name in ${@:-esm dnabert cluster flow load}; do
    run_section "$name"
done
exit $status
