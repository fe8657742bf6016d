#!/usr/bin/env bash
# One call on a GPU machine: the GPU tests (on real CuPy: the fake's own tests
# skip), then the GPU benchmark, into the results file (default
# bench/results/gpu-<date>.json: device, driver, CUDA, CuPy, figures) and
# the test log beside it.
# Runs from the source checkout (no install, no network): it needs numpy,
# numba, cupy (cupy-cuda12x or -13x) and pytest in ${PYTHON:-python3}.
#   bash bench/gpu_check.sh [RESULTS.json]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
out=${1:-bench/results/gpu-$(date -u +%Y%m%d).json}
log=${out%.json}-tests.log
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
timeout "${TESTS_TIMEOUT:-300}" $PY -m pytest -q -rs -s -p no:cacheprovider tests/test_gpu_backend.py \
    ${GPU_CHECK_KERNEL:+tests/test_gpu_kernel.py} 2>&1 | tee "$log"
tests_rc=${PIPESTATUS[0]}
timeout "${BENCH_TIMEOUT:-1800}" $PY bench/gpu_bench.py --tests "$log" --out "$out"
exit $(( tests_rc || $? ))
