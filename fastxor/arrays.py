"""Host or device arrays: results may stay on a GPU (``device_arrays=True``),
so code that reads them asks which array module they belong to."""
import numpy as np


def array_module(a):
    """numpy, or cupy for a CuPy array."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def to_host(a):
    """A NumPy array (copies a CuPy array to the host)."""
    return a.get() if array_module(a) is not np else a
