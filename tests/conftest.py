import os
import sys
from pathlib import Path

import numpy as np
import pytest

# A new variant's final pass compiles in a second process (backends/numba_compile_aside.py) for users;
# the suite's workers already use every core, so it is off here but in the tests of it.
os.environ.setdefault("FASTXOR_COMPILE_ASIDE", "0")


@pytest.fixture
def rng(request):
    """A fresh, reported random generator per test. A failure is replayed
    with FASTXOR_TEST_SEED=<the printed seed>."""
    seed = os.environ.get("FASTXOR_TEST_SEED")
    seed = int(seed) if seed else np.random.SeedSequence().entropy % 2**32
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)


FAKE_CUPY = Path(__file__).resolve().parent / "fake_cupy"


def _cupy_modules():
    return {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}


@pytest.fixture
def cupy_device(monkeypatch):
    """CuPy for the GPU backend's tests: the real one where it can run kernels
    here (then ``pytest -m gpu`` is the GPU check), else the strict fake of
    tests/fake_cupy first on sys.path, on a fresh device -- so the real loader
    runs end to end on every CI machine."""
    from fastxor.backends import cupy_kernel

    caches = (cupy_kernel.problem, cupy_kernel.get_kernel)  # a test may patch the module's names

    def fresh_loader():
        for cached in caches:
            cached.cache_clear()

    saved = _cupy_modules()
    if cupy_kernel.problem() is None and not getattr(sys.modules.get("cupy"), "FAKE", False):
        import cupy

        yield cupy
        cupy.get_default_memory_pool().set_limit(size=0)
        return
    for name in saved:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(FAKE_CUPY))
    fresh_loader()
    import cupy

    cupy._fake.reset()
    try:
        yield cupy
    finally:
        for name in _cupy_modules():
            del sys.modules[name]
        sys.modules.update(saved)
        fresh_loader()


@pytest.fixture
def default_signal_handlers():
    """Python's own SIGINT / SIGTERM handlers for the test, as in a terminal:
    a runner that started pytest in the background has SIGINT ignored, and
    the tests of held signals check that the handler is put back."""
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)
