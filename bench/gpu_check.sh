#!/usr/bin/env bash
# One call on a GPU machine: the GPU tests, then the GPU benchmark, into
# bench/results/gpu-<date>.json (device, driver, CUDA, CuPy, figures).
# Usage: bash bench/gpu_check.sh    (sets up .venv with the gpu extra first)
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-gpu
.venv-gpu/bin/pip install -q --upgrade pip
.venv-gpu/bin/pip install -q ".[test,gpu]"
.venv-gpu/bin/python -m pytest -q -m gpu tests/test_gpu_kernel.py -rs 2>&1 | tee /tmp/fastxor-gpu-tests.txt
.venv-gpu/bin/python bench/gpu_bench.py --tests /tmp/fastxor-gpu-tests.txt --out "bench/results/gpu-$(date -u +%Y%m%d).json"
