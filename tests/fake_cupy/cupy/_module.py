"""``RawModule`` on the host: the exact source CuPy would hand to NVRTC,
compiled by g++ behind a small CUDA prelude, each ``extern "C" __global__``
entry launched serially over its grid.

Argument conversion follows ``_pointer`` in CuPy's ``cupy/cuda/function.pyx``
(13.x): a ``cupy.ndarray`` passes its data pointer; ``None`` is a null
pointer; a NumPy scalar of type ``?bhilqBHILQefdFD`` passes its own bytes;
a Python ``int`` (bool included: the int test comes first) becomes
``numpy.int64``, a ``float`` ``numpy.float64``, a ``complex``
``numpy.complex128``; anything else is ``TypeError('Unsupported type ...')``.
CuPy cannot check those bytes against the kernel's parameters -- a wrong
size or kind silently passes garbage -- so the fake checks what CuPy cannot,
from the entry's C++ signature: the argument count; a scalar's byte size
and kind (integer/floating) equal the parameter's; a pointer parameter gets
a C-contiguous array whose dtype is the pointee's, or a null pointer (None,
or an 8-byte integer 0 such as ``np.uint64(0)``). ``Function.__call__``
takes tuples for grid and block (its Cython signature is ``tuple grid,
tuple block``); CuPy turns a 0 dimension into 1 silently, the fake refuses it.
"""
import ctypes
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import _fake
from ._ndarray import ndarray
from .cuda.compiler import CompileException
from .cuda.driver import CUDADriverError

PRELUDE = r"""
#include <math.h>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define FAKECUPY_FTZ 1
#else
#define FAKECUPY_FTZ 0
#endif
struct fakecupy_dim3 { unsigned x, y, z; };
// per host thread: host threads driving different devices launch at once
static thread_local fakecupy_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__ FAKECUPY_GLOBAL
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
static inline unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((unsigned long long)a * b) >> 32);
}
"""

# Per entry: its signature, introspected by the compiler, and a serial launcher.
SHIM = r"""
template <typename F> struct fakecupy_sig;
template <typename... A> struct fakecupy_sig<void(A...)> {
    static constexpr int count = sizeof...(A);
    template <typename T> static void one(int i, int k, int* out) {
        typedef typename std::remove_cv<typename std::remove_pointer<T>::type>::type P;
        if (i != k) return;
        out[0] = std::is_pointer<T>::value;
        typedef typename std::conditional<std::is_pointer<T>::value, P, T>::type V;
        out[1] = std::is_floating_point<V>::value ? 2 : (std::is_signed<V>::value ? 1 : 0);
        out[2] = (int)sizeof(V);
    }
    template <std::size_t... I> static void describe(int i, int* out, std::index_sequence<I...>) {
        (one<A>(i, (int)I, out), ...);
    }
    static void describe(int i, int* out) { describe(i, out, std::index_sequence_for<A...>{}); }
    template <std::size_t... I> static void call(void (*f)(A...), void** args, std::index_sequence<I...>) {
        f(*static_cast<typename std::tuple_element<I, std::tuple<A...>>::type*>(args[I])...);
    }
};
#define FAKECUPY_EXPORT(NAME)                                                                      \
    extern "C" int fakecupy_count_##NAME() { return fakecupy_sig<decltype(NAME)>::count; }          \
    extern "C" void fakecupy_describe_##NAME(int i, int* out) {                                    \
        fakecupy_sig<decltype(NAME)>::describe(i, out);                                            \
    }                                                                                              \
    extern "C" void fakecupy_launch_##NAME(unsigned gx, unsigned gy, unsigned gz, unsigned bx,      \
                                           unsigned by, unsigned bz, int ftz, void** args) {       \
        unsigned csr = 0;                                                                          \
        if (FAKECUPY_FTZ && ftz) { csr = _mm_getcsr(); _mm_setcsr(csr | 0x8040); }                 \
        gridDim = {gx, gy, gz};                                                                    \
        blockDim = {bx, by, bz};                                                                   \
        for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y)                        \
        for (unsigned x = 0; x < gx; ++x) for (unsigned tz = 0; tz < bz; ++tz)                     \
        for (unsigned ty = 0; ty < by; ++ty) for (unsigned tx = 0; tx < bx; ++tx) {                \
            blockIdx = {x, y, z};                                                                  \
            threadIdx = {tx, ty, tz};                                                              \
            fakecupy_sig<decltype(NAME)>::call(NAME, args, std::make_index_sequence<              \
                fakecupy_sig<decltype(NAME)>::count>{});                                           \
        }                                                                                          \
        if (FAKECUPY_FTZ && ftz) _mm_setcsr(csr);                                                  \
    }
extern "C" int fakecupy_ftz_emulated() { return FAKECUPY_FTZ; }
"""

ENTRY = re.compile(r'extern\s+"C"\s+FAKECUPY_GLOBAL\s+void\s+(\w+)\s*\(')
CACHE = Path(os.environ.get("FAKE_CUPY_CACHE", Path(tempfile.gettempdir()) / "fake_cupy_cache"))
OPTIONS = {"-std=c++17": "-std=c++17", "-std=c++14": "-std=c++14", "-std=c++11": "-std=c++11"}


def _compile(code, options):
    """The shared library for ``code`` (cached by source hash, as CuPy caches cubins)."""
    flags = []
    for o in options:
        if o not in OPTIONS and not o.startswith("-D"):
            raise CompileException(f"fake CuPy: NVRTC option {o!r} is not emulated")
        flags.append(OPTIONS.get(o, o))
    cxx = os.environ.get("CXX", "g++")
    key = hashlib.sha256("\0".join([PRELUDE, SHIM, code, *flags]).encode()).hexdigest()[:24]
    so = CACHE / f"{key}.so"
    if not so.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        pre = subprocess.run([cxx, "-E", "-x", "c++", *flags, "-"], input=PRELUDE + code,
                             capture_output=True, text=True)
        if pre.returncode:
            raise CompileException(pre.stderr)
        names = ENTRY.findall(re.sub(r"^#.*$", "", pre.stdout, flags=re.M))
        src = PRELUDE + code + "\n#define FAKECUPY_GLOBAL\n" + SHIM + "".join(
            f"FAKECUPY_EXPORT({n})\n" for n in names)
        src = src.replace("#define __global__ FAKECUPY_GLOBAL", "#define __global__")
        tmp = so.with_suffix(f".{os.getpid()}.tmp")
        res = subprocess.run([cxx, "-O2", "-shared", "-fPIC", "-x", "c++", *flags, "-", "-o", str(tmp)],
                             input=src, capture_output=True, text=True)
        if res.returncode:
            raise CompileException(res.stderr)
        os.replace(tmp, so)
    return ctypes.CDLL(str(so))


class RawModule:
    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None or path is not None:
            raise NotImplementedError("fake CuPy: RawModule(code=...) only")
        self.code, self.options = code, tuple(options)
        self._lib = None

    def get_function(self, name):
        if self._lib is None:
            self._lib = _compile(self.code, self.options)
        try:
            count = getattr(self._lib, f"fakecupy_count_{name}")
        except AttributeError:
            raise CUDADriverError("CUDA_ERROR_NOT_FOUND: named symbol not found") from None
        return Function(self._lib, name, count())


C_TYPES = {(2, 4): "float", (2, 8): "double", (1, 4): "int", (1, 8): "long long",
           (0, 4): "unsigned int", (0, 8): "unsigned long long", (1, 1): "signed char",
           (0, 1): "unsigned char/bool", (1, 2): "short", (0, 2): "unsigned short"}
KIND = {"f": 2, "i": 1, "u": 0, "b": 0, "c": 3}
NUMPY_SCALARS = {np.dtype(c).type for c in "?bhilqBHILQefdFD"}


class Function:
    #: As ``RawKernel.local_size_bytes``: local memory (register spills) per
    #: thread; the host build has none to report.
    local_size_bytes = 0

    def __init__(self, lib, name, count):
        self.name = name
        self._launch = getattr(lib, f"fakecupy_launch_{name}")
        self._params = []
        for i in range(count):
            out = (ctypes.c_int * 3)()
            getattr(lib, f"fakecupy_describe_{name}")(i, out)
            self._params.append((bool(out[0]), out[1], out[2]))
        self._ftz = any(p and kind == 2 and size == 4 for p, kind, size in self._params)

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        if not isinstance(grid, tuple) or not isinstance(block, tuple):
            raise TypeError("Argument 'grid' and 'block' must be tuples (CuPy: tuple grid, tuple block)")
        g, b = (tuple(grid) + (1, 1))[:3], (tuple(block) + (1, 1))[:3]
        if min(g) < 1 or min(b) < 1 or b[0] * b[1] * b[2] > 1024 or b[2] > 64 or g[0] > 2**31 - 1:
            raise ValueError(f"fake CuPy: invalid launch grid={grid} block={block}")
        args = tuple(args)
        if len(args) != len(self._params):
            raise TypeError(f"{self.name} takes {len(self._params)} arguments, {len(args)} given "
                            "(CuPy would launch it with garbage)")
        keep, ptrs = [], (ctypes.c_void_p * len(args))()
        for i, (a, param) in enumerate(zip(args, self._params)):
            buf = self._convert(i, a, param)
            keep.append(buf)
            ptrs[i] = ctypes.cast(buf, ctypes.c_void_p)
        self._launch(*(ctypes.c_uint(v) for v in g + b), ctypes.c_int(int(self._ftz)), ptrs)
        _fake.launched()
        _fake.check_guards()

    def _convert(self, i, a, param):
        """The bytes CuPy would pass for argument ``i``, refused where they do not fit ``param``."""
        pointer, kind, size = param
        what = f"{self.name} argument {i} ({C_TYPES.get((kind, size), '?')}{' *' if pointer else ''})"
        if a is None:
            if not pointer:
                raise TypeError(f"{what}: None (a null pointer) for a scalar parameter")
            return ctypes.pointer(ctypes.c_void_p(0))
        if isinstance(a, ndarray):
            if not pointer:
                raise TypeError(f"{what}: an array for a scalar parameter")
            if not a.flags.c_contiguous:
                raise ValueError(f"{what}: the array is not C-contiguous (CuPy passes only its start pointer)")
            if (KIND[a.dtype.kind], a.dtype.itemsize) != (kind, size):
                raise TypeError(f"{what}: array of dtype {a.dtype}")
            if a.device_id != _fake.current():
                raise ValueError(f"{what}: an array on device {a.device_id}, launched on device {_fake.current()} "
                                 "(on a GPU: an illegal address, or a slow peer access)")
            return ctypes.pointer(ctypes.c_void_p(a._a.ctypes.data))
        if type(a) not in NUMPY_SCALARS:
            if isinstance(a, int):
                a = np.int64(a)
            elif isinstance(a, float):
                a = np.float64(a)
            elif isinstance(a, complex):
                a = np.complex128(a)
            else:
                raise TypeError(f"Unsupported type {type(a)} ({what})")
        if pointer:
            if a.dtype.kind in "iu" and a.itemsize == 8 and int(a) == 0:
                return ctypes.pointer(ctypes.c_void_p(0))
            raise TypeError(f"{what}: scalar {a!r} where a device pointer is expected")
        if a.dtype.kind == "c" or a.itemsize != size or (kind == 2) != (a.dtype.kind == "f"):
            raise TypeError(f"{what}: numpy {a.dtype} scalar ({a.itemsize} bytes) passed")
        if kind != 2 and KIND[a.dtype.kind] != kind:  # signedness differs: the bits are reinterpreted
            bits = 8 * size
            lo, hi = (0, 2**bits - 1) if kind == 0 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if not lo <= int(a) <= hi:
                raise TypeError(f"{what}: {a!r} does not fit; CuPy would reinterpret its bits")
        raw = np.array(a).tobytes()
        return ctypes.create_string_buffer(raw, len(raw))
