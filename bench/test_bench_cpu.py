"""CPU throughput of the fused Numba kernel against the NumPy backend.

Run: ``make bench`` (or ``pytest bench``). Compilation is excluded (a warm-up
call first; kernels are also cached on disk).
"""
import pytest

import fastxor

N_BIG = 16_384


def _run(n, epochs, dtype, backend, hidden=2):
    return fastxor.train(n, epochs=epochs, dtype=dtype, backend=backend, hidden=hidden)


@pytest.mark.parametrize("dtype, epochs", [("float32", 20_000), ("float64", 10_000)])
def test_numba(benchmark, record_throughput, dtype, epochs):
    _run(64, 10, dtype, "numba")  # compile / load from cache
    benchmark.pedantic(_run, args=(N_BIG, epochs, dtype, "numba"), rounds=3, iterations=1)
    record_throughput(f"numba {dtype} H=2", N_BIG, epochs)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numpy(benchmark, record_throughput, dtype):
    benchmark.pedantic(_run, args=(N_BIG, 100, dtype, "numpy"), rounds=3, iterations=1)
    record_throughput(f"numpy {dtype} H=2", N_BIG, 100)


def test_numba_single_network_100k_epochs(benchmark, record_throughput):
    _run(1, 10, "float32", "numba")
    benchmark.pedantic(_run, args=(1, 100_000, "float32", "numba"), rounds=3, iterations=1)
    record_throughput("numba float32 H=2 single", 1, 100_000)


def test_numba_seed_job_scaled(benchmark, record_throughput):
    """The main job's shape (N = 100 000) at 1/20 of its epochs."""
    _run(64, 10, "float32", "numba")
    benchmark.pedantic(_run, args=(100_000, 5_000, "float32", "numba"), rounds=2, iterations=1)
    record_throughput("numba float32 H=2 N=1e5", 100_000, 5_000)
