#!/usr/bin/env bash
# One call on a GPU machine: the GPU tests (on real CuPy: the fake's own tests
# skip), then the GPU benchmark, into
# bench/results/gpu-<date>.json (device, driver, CUDA, CuPy, figures).
# Runs from the source checkout (no install, no network): it needs numpy,
# numba, cupy (cupy-cuda12x or -13x) and pytest in ${PYTHON:-python3}.
#   bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
log=$(mktemp)
$PY -m pytest -q -rs -s -p no:cacheprovider tests/test_gpu_backend.py tests/test_gpu_kernel.py 2>&1 | tee "$log"
tests_rc=${PIPESTATUS[0]}
$PY bench/gpu_bench.py --tests "$log" --out "bench/results/gpu-$(date -u +%Y%m%d).json"
exit $(( tests_rc || $? ))
