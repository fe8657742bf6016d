"""The peers under pytest-benchmark: the same networks, the same epochs, checked
against fastxor before a time counts. Run: ``make bench`` (``fastxor bench``
gives the calibrated table; this file gives pytest-benchmark's statistics).
"""
import numpy as np
import pytest

from fastxor.data import boolean_function
from fastxor.params import init_params
from fastxor.peers import IMPLS
from fastxor.training import train

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
    ref = train(init=p, epochs=epochs, lr=0.1).params
    for a, b in zip(final.arrays(), ref.arrays()):
        np.testing.assert_allclose(np.asarray(a), b, atol=1e-4, err_msg="wrong result: time not counted")
    record_throughput(f"{impl.name} N={n}", n, epochs)
