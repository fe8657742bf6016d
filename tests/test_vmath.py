"""The kernels' vectorisable sigmoid, tanh, log and log1p against exact values over the whole float range."""
import numpy as np
import pytest

from fastxor.backends.numba_vmath import apply_array


def _samples(dtype, rng):
    bits = np.iinfo(np.uint32 if dtype == np.float32 else np.uint64).max
    raw = rng.integers(0, bits, 10**6, dtype=np.uint64, endpoint=True)
    z = (raw.astype(np.uint32) if dtype == np.float32 else raw).view(dtype)
    fi = np.finfo(dtype)
    special = np.array([0.0, -0.0, fi.max, -fi.max, fi.tiny, -fi.tiny, 88.0, -88.0, 87.0, -87.0,
                        708.0, -708.0, 745.0, -745.0, 1e30, -1e30], dtype=np.float64)
    z = np.concatenate([z[np.isfinite(z)], rng.uniform(-120, 120, 10**6).astype(dtype),
                        special.astype(dtype)])
    return z.astype(dtype)


@pytest.mark.parametrize("dtype, exact", [(np.float32, np.float64), (np.float64, np.longdouble)])
def test_sigmoid_worst_error(dtype, exact, rng):
    z = _samples(dtype, rng)
    got = apply_array("sigmoid", z).astype(exact)
    with np.errstate(over="ignore"):
        ref = 1 / (1 + np.exp(-z.astype(exact)))
    normal = ref >= np.finfo(dtype).tiny
    ulps = np.abs(got - ref)[normal] / np.spacing(ref[normal].astype(dtype)).astype(exact)
    # Measured worst case 2.44 ulp (float32) and 2.39 ulp (float64); NumPy's own is ~1.
    assert ulps.max() <= 3.0
    # Below the smallest normal number the result is held at sigmoid(-HI):
    # an absolute error smaller than the smallest normal number itself.
    assert np.abs(got - ref)[~normal].max(initial=0) < np.finfo(dtype).tiny
    assert ((got >= 0) & (got <= 1)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_special_values(dtype):
    out = apply_array("sigmoid", np.array([np.inf, -np.inf, np.nan, 0.0], dtype=dtype))
    assert out[0] == 1.0 and 0 <= out[1] < np.finfo(dtype).tiny
    assert np.isnan(out[2]) and out[3] == 0.5


def _ulps(got, ref, dtype):
    ok = np.isfinite(ref) & (ref != 0)
    return (np.abs(got[ok] - ref[ok]) / np.spacing(np.abs(ref[ok]).astype(dtype)).astype(ref.dtype)).max()


@pytest.mark.parametrize("dtype, exact", [(np.float32, np.float64), (np.float64, np.longdouble)])
def test_tanh_worst_error(dtype, exact, rng):
    """Whole range (random bit patterns), the region near 0 where 2 sigmoid(2x) - 1
    would cancel, subnormals and specials. Measured worst: 2.5 ulp both dtypes."""
    fi = np.finfo(dtype)
    tiny = np.exp(rng.uniform(np.log(fi.smallest_subnormal), 0, 10**6)) * rng.choice([-1, 1], 10**6)
    z = np.concatenate([_samples(dtype, rng), tiny.astype(dtype), np.array([fi.smallest_subnormal, -fi.tiny], dtype)])
    got = apply_array("tanh", z).astype(exact)
    ref = np.tanh(z.astype(exact))
    assert _ulps(got, ref, dtype) <= 3.0
    out = apply_array("tanh", np.array([np.inf, -np.inf, np.nan, 0.0], dtype=dtype))
    assert out[0] == 1 and out[1] == -1 and np.isnan(out[2]) and out[3] == 0


@pytest.mark.parametrize("dtype, exact", [(np.float32, np.float64), (np.float64, np.longdouble)])
def test_log_and_log1p_worst_error(dtype, exact, rng):
    """log on every positive float (subnormals included), log1p on [-1, 1]:
    the BCE losses' terms. Measured worst: log 2.7 ulp, log1p 4.4 ulp."""
    x = np.abs(_samples(dtype, rng))
    x = np.concatenate([x, np.array([np.finfo(dtype).smallest_subnormal, 1.0], dtype)])
    with np.errstate(divide="ignore"):
        assert _ulps(apply_array("log", x).astype(exact), np.log(x.astype(exact)), dtype) <= 3.0
        u = -np.exp(rng.uniform(-100, 0, 10**6)).astype(dtype)
        u = np.concatenate([u, -u, np.array([-1.0, 0.0, 1e-30], dtype)])
        assert _ulps(apply_array("log1p", u).astype(exact), np.log1p(u.astype(exact)), dtype) <= 5.0
    out = apply_array("log", np.array([0.0, np.inf, -1.0, np.nan, 1.0], dtype=dtype))
    assert out[0] == -np.inf and out[1] == np.inf and np.isnan(out[2:4]).all() and out[4] == 0
    assert apply_array("log1p", np.array([-1.0], dtype))[0] == -np.inf


_COMPILE_MATH = """
import sys, numpy as np
from fastxor.backends.numba_vmath import make_math
m = make_math(np.float64 if sys.argv[1] == "float64" else np.float32)
for name in ("sigmoid", "tanh", "log", "log1p"):
    getattr(m, name).compile(sys.argv[1] + "(" + sys.argv[1] + ")")
    print(name, len(getattr(m, name).stats.cache_hits), len(getattr(m, name).stats.cache_misses))
"""


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_functions_are_compiled_once_per_cache(dtype, tmp_path):
    """The functions live in a module in the kernel cache directory: a
    second process loads them compiled (a new variant does not compile them
    again), and nothing is written into the package."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, FASTXOR_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", _COMPILE_MATH, dtype], env=env, capture_output=True, text=True,
                           check=True).stdout.split("\n")[:4] for _ in range(2)]
    assert all(line.split()[1:] == ["0", "1"] for line in runs[0]), runs[0]  # compiled
    assert all(line.split()[1:] == ["1", "0"] for line in runs[1]), runs[1]  # loaded
    assert list(tmp_path.glob(f"fastxor_vmath_{dtype}_*.py"))


def test_the_math_functions_write_out_every_multiply_add_the_rule_would_fuse():
    """``numba_vmath``'s functions call ``fma`` by hand (no rewriting at run
    time) exactly where ``numba_fusion.fuse`` would: the rule finds nothing
    left to fuse in their source, for both dtypes. Fails on any ``a * b + c``
    written plainly (checked)."""
    import ast

    from fastxor.backends import numba_fusion, numba_vmath

    for dtype in (np.float32, np.float64):
        source = numba_vmath.math_source(dtype)
        assert "fma(" in source
        assert ast.dump(numba_fusion.fuse(ast.parse(source))) == ast.dump(ast.parse(source))
