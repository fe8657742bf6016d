"""Speed of the training kernels vectorised by fastxor (``numba_widen``)
against the same kernels vectorised by LLVM's loop vectoriser
(``FASTXOR_WIDEN=0``), alternating in one process: the two must compute the
same bits (tests) and run as fast.

Each case trains 8 192 networks for about 0.15 s with one kernel, then the
other, 15 times; the median of the per-round ratios (fastxor's speed over
LLVM's) and its quartiles are printed. One process, interleaved rounds: a
shared machine's load drifts, and the ratio of neighbouring runs is what is
compared (``docs/performance.md``, change 15).

Run: ``python bench/widen_ab.py [case ...]`` (cases below; all by default).
"""
import statistics
import sys
import time

import fastxor
from fastxor import config
from fastxor.backends import numba_kernel
from fastxor.backends.numba_kernel import unrolled_only

CASES = {
    "seed": dict(hidden=2),
    "h5adam": dict(hidden=5, optimizer="adam", lr=0.01, activation="tanh", loss="bce"),
    "h16": dict(hidden=16),
    "h32adam": dict(hidden=32, optimizer="adam", lr=0.01),
    "p4h6": dict(hidden=6, function="parity4"),
    "f64h3": dict(hidden=3, dtype="float64"),
    "mom4": dict(hidden=4, momentum=0.9),
}
N, ROUNDS, SECONDS = 8192, 15, 0.15


def _use(widen):
    """Compile (or load) kernels with or without fastxor's widening from now on."""
    config.NUMBA_WIDEN = widen
    for module in numba_kernel._LOADED.values():
        module.__dict__.pop("_compiled", None)


def ratio(options):
    """(median, lower quartile, upper quartile) of fastxor's speed over LLVM's."""
    for widen in (True, False):  # compile both first
        _use(widen)
        fastxor.train(N, epochs=2, backend="numba", **options)
    t0 = time.perf_counter()
    fastxor.train(N, epochs=10, backend="numba", **options)
    epochs = max(5, int(SECONDS / ((time.perf_counter() - t0) / 10)))
    ratios = []
    for _ in range(ROUNDS):
        seconds = {}
        for widen in (True, False):
            _use(widen)
            fastxor.train(64, epochs=1, backend="numba", **options)  # load the kernel
            t0 = time.perf_counter()
            fastxor.train(N, epochs=epochs, backend="numba", **options)
            seconds[widen] = time.perf_counter() - t0
        ratios.append(seconds[False] / seconds[True])
    q = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q[0], q[2]


def main(names):
    for name in names or CASES:
        median, lo, hi = ratio(CASES[name])
        print(f"{name:8s} fastxor/LLVM vectoriser speed: median {median:.3f} (quartiles {lo:.3f}-{hi:.3f})", flush=True)


if __name__ == "__main__":
    with unrolled_only():  # the unrolled kernels, as docs/performance.md's change 15 measured
        main(sys.argv[1:])
