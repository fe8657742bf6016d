"""A device array: data in a pooled fake-device block, NumPy semantics for
the operations fastxor uses, and CuPy's refusals: no implicit conversion to
NumPy (``cupy/_core/core.pyx``: ``__array__`` raises TypeError), NumPy
arrays are not accepted where CuPy wants device arrays, and an operation
(a kernel CuPy launches: arithmetic, fill, copy into a view) refuses an
array that is not on the current device. ``get``/``set``/``copy``/``astype``
work from any current device: CuPy switches to the array's own for them."""
import numbers

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from . import _fake

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly.")


def _scalar(x):
    return isinstance(x, (numbers.Number, np.generic, bool))


def on_current(a, where="argument"):
    """Refuse a device array that is not on the current device, as CuPy's
    kernels do (without peer access, a GPU would read an illegal address)."""
    if a.device_id != _fake.current():
        raise ValueError(f"Array device must be same as the current device: array device = {a.device_id} "
                         f"while current = {_fake.current()} ({where})")


def unwrap(x, where="argument"):
    """A device array's NumPy view; scalars and containers pass; a host NumPy
    array is refused, as CuPy's kernels refuse it, and so is an array of
    another device than the current one."""
    if isinstance(x, ndarray):
        on_current(x, where)
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)} ({where}: a NumPy array where CuPy needs a cupy.ndarray)")
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v, where) for v in x)
    return x


def wrap(result):
    """NumPy results of device operations become new device arrays (0-d for scalars)."""
    if isinstance(result, tuple):
        return tuple(wrap(r) for r in result)
    if isinstance(result, (np.ndarray, np.generic)):
        return from_host(np.asarray(result))
    return result


def empty(shape, dtype=float, order="C", device=None):
    """On the current device (or ``device``)."""
    if order != "C":
        raise NotImplementedError("fake CuPy: C order only")
    shape = tuple(int(s) for s in ((shape,) if np.ndim(shape) == 0 else shape))
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    mem = _fake.pool_of(_fake.current() if device is None else device).malloc(nbytes)
    return ndarray(mem.block.view(dtype, shape), mem)


def from_host(a, device=None):
    out = empty(a.shape, a.dtype, device=device)
    out._a[...] = a
    return out


class ndarray(NDArrayOperatorsMixin):
    __array_priority__ = 100

    def __init__(self, view, mem):
        self._a, self._mem = view, mem

    # --- CuPy's refusals
    def __array__(self, *args, **kwargs):
        raise TypeError(IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.pop("out", None)
        args = unwrap(inputs, f"np.{ufunc.__name__}")
        if out is not None:
            kwargs["out"] = tuple(unwrap(o) for o in out)
            getattr(ufunc, method)(*args, **kwargs)
            return out[0] if len(out) == 1 else out
        return wrap(getattr(ufunc, method)(*args, **kwargs))

    def __array_function__(self, func, types, args, kwargs):
        return wrap(func(*unwrap(args, func.__name__), **unwrap_kw(kwargs, func.__name__)))

    # --- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: self._view(self._a.T))

    @property
    def data(self):
        return _MemoryPointer(self._a.ctypes.data)

    @property
    def device_id(self):
        return self._mem.block.device

    @property
    def device(self):
        from .cuda import Device

        return Device(self.device_id)

    def _view(self, a):
        return ndarray(a, self._mem)

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return f"fake_cupy.ndarray({self._a!r})"

    def __getitem__(self, key):
        r = self._a[unwrap(key, "index")]
        if isinstance(r, np.ndarray) and np.shares_memory(r, self._a):
            return self._view(r)
        return wrap(r)

    def __setitem__(self, key, value):
        # CuPy's _scatter_op copies a host value to the device (cupy.array(value))
        on_current(self, "the array assigned to")
        if isinstance(value, np.ndarray):
            _fake.count("to_device", value.nbytes)
        self._a[unwrap(key, "index")] = unwrap(value, "the value assigned") if isinstance(value, ndarray) else value

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    # --- methods
    def get(self, stream=None, order="C", out=None):
        if not self._a.flags.c_contiguous:
            # CuPy first makes a contiguous copy on the device
            # (_internal_ascontiguousarray, cupy/_core/core.pyx): it can run
            # out of device memory exactly where a chunked run is tight
            empty(self.shape, self.dtype)
        _fake.count("to_host", self._a.nbytes)
        return np.array(self._a, order=order)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray) or arr.shape != self.shape or arr.dtype != self.dtype:
            raise ValueError(f"fake CuPy: set() needs a NumPy array of shape {self.shape} and dtype {self.dtype}")
        if not self._a.flags.c_contiguous:
            raise RuntimeError("Cannot set to non-contiguous array")
        _fake.count("to_device", arr.nbytes)
        self._a[...] = arr

    def copy(self, order="C"):
        return from_host(self._a, self.device_id)

    def astype(self, dtype, copy=True, **kwargs):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return from_host(self._a.astype(dtype, **kwargs), self.device_id)

    def reshape(self, *shape, order="C"):
        r = self._a.reshape(*shape, order=order)
        return self._view(r) if np.shares_memory(r, self._a) else from_host(r)

    def ravel(self, order="C"):
        return self.reshape(-1, order=order)

    def transpose(self, *axes):
        return self._view(self._a.transpose(*axes))

    def fill(self, value):
        on_current(self, "fill")
        self._a.fill(value)

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()


def _reduction(name):
    def method(self, *args, **kwargs):
        on_current(self, name)
        return wrap(getattr(self._a, name)(*unwrap(args), **unwrap_kw(kwargs, name)))
    method.__name__ = name
    return method


for _name in ("sum", "min", "max", "mean", "any", "all", "argmin", "argmax", "nonzero", "cumsum", "prod"):
    setattr(ndarray, _name, _reduction(_name))


def unwrap_kw(kwargs, where):
    return {k: unwrap(v, where) for k, v in kwargs.items()}


class _MemoryPointer:
    def __init__(self, ptr):
        self.ptr = ptr
