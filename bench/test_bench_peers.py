"""The peers under pytest-benchmark: the same networks, the same epochs, checked
against fastxor before a time counts. Run: ``make bench`` (``fastxor bench``
gives the calibrated table; this file gives pytest-benchmark's statistics).
"""
import pytest

from fastxor.bench.harness import check_against_fastxor
from fastxor.bench.peers import IMPLS
from fastxor.data import boolean_function
from fastxor.params import init_params

# (N, epochs): a second or so for the slow peers on a 2-core machine
CASES = [(1, 2_000), (1_000, 200), (100_000, 10)]


@pytest.mark.parametrize("n, epochs", CASES, ids=[f"N={n}" for n, _ in CASES])
@pytest.mark.parametrize("impl", IMPLS, ids=[i.name for i in IMPLS])
def test_peer(benchmark, record_throughput, impl, n, epochs):
    if not impl.available():
        pytest.skip(f"{impl.name} not installed: {impl.extra}")
    if n > impl.max_networks:
        pytest.skip(f"{impl.name} trains one network at a time")
    X, y = boolean_function("xor")
    p = init_params(n, 2, 0)
    run = impl.setup(p, X, y, 0.1)
    run(2)  # compile / trace / load, not timed
    final = benchmark.pedantic(run, args=(epochs,), rounds=3, iterations=1)
    check = check_against_fastxor(final, p, epochs, 0.1)  # the check of `fastxor bench`
    assert check["valid"], f"wrong result (max error {check['max_error']:.2g}): time not counted"
    record_throughput(f"{impl.name} N={n}", n, epochs)
