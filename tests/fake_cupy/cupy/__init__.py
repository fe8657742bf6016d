"""A strict stand-in for CuPy (see tests/fake_cupy/README.md): only what
fastxor's GPU loader uses, with CuPy's rules and refusals."""
import numpy as np

from . import _fake, cuda  # noqa: F401
from ._module import RawModule  # noqa: F401
from ._ndarray import empty, from_host, ndarray, unwrap, unwrap_kw, wrap

__version__ = "13.99.0+fake"
FAKE = True

float16, float32, float64, bool_ = np.float16, np.float32, np.float64, np.bool_
int8, int16, int32, int64 = np.int8, np.int16, np.int32, np.int64
uint8, uint16, uint32, uint64 = np.uint8, np.uint16, np.uint32, np.uint64


def get_default_memory_pool():
    """Acts on the current device's pool at every call, as CuPy's."""
    return _fake.DefaultPool()


def asarray(a, dtype=None, order=None):
    """A device array; a host array or scalar is copied to the device."""
    if isinstance(a, ndarray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    host = np.asarray(a, dtype=dtype)
    _fake.count("to_device", host.nbytes)
    return from_host(host)


def array(a, dtype=None, copy=True, order="K"):
    """A new device array (copied, as CuPy's ``array`` copies by default; the
    fake's arrays are C-ordered whatever ``order`` asks)."""
    out = asarray(a, dtype)
    return out.copy() if copy and out is a else out


def ascontiguousarray(a, dtype=None):
    a = asarray(a, dtype)
    return a if a.flags.c_contiguous else a.copy()


def asnumpy(a, stream=None, order="C", out=None):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def zeros(shape, dtype=float):
    out = empty(shape, dtype)
    out.fill(0)
    return out


def full(shape, fill_value, dtype=None):
    out = empty(shape, dtype if dtype is not None else np.asarray(fill_value).dtype)
    out.fill(fill_value)
    return out


def __getattr__(name):
    """Any other NumPy function, on device arrays only (a host NumPy array is
    refused, as CuPy refuses it)."""
    f = getattr(np, name)
    if not callable(f):
        return f

    def device_function(*args, **kwargs):
        return wrap(f(*unwrap(args, f"cupy.{name}"), **unwrap_kw(kwargs, f"cupy.{name}")))

    device_function.__name__ = name
    return device_function
