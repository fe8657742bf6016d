"""Collects network-epochs/s per case and prints them, with ratios, at the end."""
import numba
import numpy as np
import pytest

from fastxor.backends.numba_kernel import unrolled_only
from fastxor.machine import cpu_name

RESULTS = {}


@pytest.fixture(autouse=True)
def _long_run_kernels():
    """Every benchmark times the kernel a long run uses (``numba_kernel.unrolled_only``)."""
    with unrolled_only():
        yield


@pytest.fixture
def record_throughput(benchmark):
    def record(name, n_networks, epochs):
        median = benchmark.stats.stats.median
        ne_s = n_networks * epochs / median
        benchmark.extra_info["network_epochs_per_s"] = ne_s
        RESULTS[name] = (n_networks, epochs, median, ne_s)
    return record


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("fastxor throughput (network-epochs per second)")
    tr.write_line(f"cpu: {cpu_name()}, "
                  f"numba threads {numba.get_num_threads()}, numpy {np.__version__}, "
                  f"numba {numba.__version__}, SVML {numba.config.USING_SVML}")
    base = {dt: v[3] for k, v in RESULTS.items() for dt in ("float32", "float64")
            if k == f"numpy {dt} H=2"}
    for name, (n, e, t, ne) in sorted(RESULTS.items()):
        dt = "float64" if "float64" in name else "float32"
        ratio = f"{ne / base[dt]:8.1f}x numpy" if dt in base else ""
        peer_base = RESULTS.get(f"fastxor numba N={n}")
        if " N=" in name and peer_base:  # a peer case: how much faster fastxor is
            ratio = f"fastxor numba {peer_base[3] / ne:8.1f}x faster"
        tr.write_line(f"{name:32s} N={n:>7d} epochs={e:>7d} {t:9.4f} s {ne:10.3e} NE/s {ratio}")
