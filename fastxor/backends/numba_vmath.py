"""Elementary functions LLVM can vectorise, accurate to a few ulp, for Numba:
the sigmoid, and for the training recipes tanh, log and log1p.

Why: PyPI's llvmlite has no SVML, so ``math.exp`` inside a loop stays a scalar
libm call and blocks SIMD across networks. This exp uses only multiply/add,
integer shift/add and in-register bitcasts (Numba intrinsics), all of which
LLVM turns into 8- or 16-wide vector instructions:

    exp(x) = 2**k * exp(r),  k = round(x / ln 2),  r = x - k ln2  (Cody-Waite),
    exp(r) by a polynomial (Cephes ``expf`` for float32, degree-13 Taylor for
    float64), 2**k built from its exponent bits.

k is rounded with the "magic number" 1.5 * 2**mantissa_bits rather than a
float->int conversion: the rounded sum holds k in its low bits, so one add
and one subtract replace a convert and a round (measured: +4 % on the whole
kernel), and it needs no 64-bit conversion, which AVX2 lacks.

``sigmoid(z) = 1 / (1 + exp(-z))`` — the same formula PyTorch's CPU kernel
uses — with -z clamped to [LO, HI] so 2**k stays a normal number. The clamp
changes nothing for z > -LO (1 + exp(-z) rounds to 1 there); for z < -HI the
result is held at sigmoid(-HI) (about 6e-39 in float32, 1.2e-308 in float64),
an absolute error below the smallest normal number. NaN propagates.

``tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|))`` with the sign of x: no
cancellation near 0 (``2 sigmoid(2x) - 1`` would lose every digit there),
where expm1 shares exp's reduction and polynomial, without its leading 1.
``log(x) = e ln2 + 2 atanh(s)``, x = 2**e m with m in [sqrt(1/2), sqrt(2)),
s = (m - 1)/(m + 1), the odd series of atanh to the dtype's precision;
``log1p(x) = log(1 + x) * x / ((1 + x) - 1)``, Goldberg's exact correction.

The functions' multiply-adds are written out as ``fma`` calls where the
kernels' rule (``numba_fusion.fuse``) would put them (a test checks that
the rule finds nothing left): Horner's steps and the Cody-Waite reduction
``x - k ln2_hi`` are each one rounding on a CPU with FMA instructions.
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .. import config


def _bitcast(src, dst):
    """A Numba intrinsic reinterpreting a ``src`` value's bits as ``dst`` (same
    width): no conversion, no memory; LLVM vectorises it for free."""
    llvm_type = {types.float32: ir.FloatType(), types.float64: ir.DoubleType(),
                 types.int32: ir.IntType(32), types.int64: ir.IntType(64)}[dst]

    @intrinsic
    def cast(typingctx, x):
        if x != src:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvm_type)

        return dst(src), codegen

    return cast


_int32_as_float32 = _bitcast(types.int32, types.float32)
_int64_as_float64 = _bitcast(types.int64, types.float64)
_float32_as_int32 = _bitcast(types.float32, types.int32)
_float64_as_int64 = _bitcast(types.float64, types.int64)


# Per-dtype constants: clamp range, exponent layout, polynomial (high degree first).
_SPEC = {
    np.float32: dict(
        lo=-87.0, hi=88.0, bias=127, mant=23, int_t=np.int32,
        as_float=_int32_as_float32, as_int=_float32_as_int32,
        ln2_hi=0.693359375, ln2_lo=-2.12194440e-4,
        poly=(1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
              4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1),
    ),
    np.float64: dict(
        lo=-708.0, hi=709.0, bias=1023, mant=52, int_t=np.int64,
        as_float=_int64_as_float64, as_int=_float64_as_int64,
        ln2_hi=6.93145751953125e-1, ln2_lo=1.42860682030941723212e-6,
        # 1/n! for n = 13..2: exp(r) = 1 + r + r^2 * P(r), |r| <= ln2/2, error < 1e-17
        poly=tuple(1.0 / np.prod(np.arange(1.0, n + 1)) for n in range(13, 1, -1)),
    ),
}  # fmt: skip


def _constants(dtype):
    """The functions' constants for ``dtype``, as (name, value) pairs."""
    s = _SPEC[dtype]
    f, int_t = dtype, s["int_t"]
    n_terms = 6 if dtype == np.float32 else 12  # atanh series to the dtype's precision
    return dict(
        LO=f(s["lo"]), HI=f(s["hi"]), LOG2E=f(1.0 / np.log(2.0)),
        # Round-to-integer by the "magic number" 1.5 * 2**mant: for |v| < 2**(mant-1),
        # v + magic is rounded to an integer, held in the low mantissa bits.
        MANT=int_t(s["mant"]), MAGIC=f(1.5 * 2.0 ** s["mant"]), BIAS_BITS=int_t(s["bias"] << s["mant"]),
        LN2_HI=f(s["ln2_hi"]), LN2_LO=f(s["ln2_lo"]), C=tuple(f(v) for v in s["poly"]),
        ZERO=f(0.0), HALF=f(0.5), ONE=f(1.0), TWO=f(2.0),
        A_COEF=tuple(f(1.0 / (2 * k + 1)) for k in range(n_terms))[::-1],
        SQRT2=f(np.sqrt(2.0)), TINY=f(np.finfo(dtype).tiny),
        UP=f(2.0 ** (s["mant"] + 1)), UP_E=int_t(s["mant"] + 1),  # subnormals are scaled into the normal range
        MANT_MASK=int_t((1 << s["mant"]) - 1), ONE_BITS=int_t(s["bias"] << s["mant"]), BIAS=int_t(s["bias"]),
        INF=f(np.inf), NAN=f(np.nan),
    )


def _literal(value):
    """Python source that evaluates to ``value`` exactly, in its own type."""
    if isinstance(value, tuple):
        return "(" + "".join(_literal(v) + ", " for v in value) + ")"
    name = type(value).__name__
    if not isinstance(value, np.floating):
        return f"{name}({int(value)})"
    return f"{name}({float(value)!r})" if np.isfinite(value) else f"{name}(float('{float(value)}'))"


#: The functions for one dtype; ``math_source`` puts the constants above them.
_FUNCTIONS = '''


@njit(**FM)
def poly(r):
    {poly}


@njit(**FM)
def reduce(x):
    """(2**k, r, with x = k ln2 + r), x clamped to [LO, HI] first."""
    # Written so that NaN fails both comparisons and passes through.
    x = HI if x > HI else x
    x = LO if x < LO else x
    t = fma(x, LOG2E, MAGIC)  # k = round(x / ln2) sits in t's low mantissa bits
    kf = t - MAGIC  # k as a float, exact
    r = fma(-kf, LN2_HI, x)
    r = fma(-kf, LN2_LO, r)
    # 2**k: shifting t's bits left by MANT keeps just k (two's
    # complement, wrapping), then the exponent bias is added.
    return as_float(int_t(int_t(as_int(t) << MANT) + BIAS_BITS)), r


@njit(**FM)
def exp_parts(x):
    """(q, 2**k) with exp(x) = q * 2**k (the product is exact for a normal result)."""
    two_k, r = reduce(x)
    return fma(r * r, poly(r), r) + ONE, two_k


@njit(**FM)
def exp_clamped(x):
    q, two_k = exp_parts(x)
    return q * two_k


@njit(**FM)
def sigmoid(z):
    q, two_k = exp_parts(-z)
    return ONE / fma(q, two_k, ONE)  # 1 + exp(-z): as exact as with the product rounded, one instruction less


@njit(**FM)
def expm1_clamped(x):
    two_k, r = reduce(x)
    return fma(two_k, fma(r * r, poly(r), r), two_k - ONE)  # exact for k = 0: no 1 + r - 1


@njit(**FM)
def tanh(x):
    a = x if x >= ZERO else -x
    e = expm1_clamped(-TWO * a)  # in (-1, 0]: 2 + e >= 1, no cancellation
    t = -e / (e + TWO)
    return t if x >= ZERO else -t


@njit(**FM)
def atanh_series(z):
    """1 + z/3 + z^2/5 + ... to the dtype's precision (6 terms in float32, 12
    in float64): atanh(s) = s times this, z = s^2 <= 0.0295."""
    p = A_COEF[0]
    for q in A_COEF[1:]:
        p = fma(p, z, q)
    return p


@njit(**FM)
def log(x):
    small = x < TINY
    xs = x * UP if small else x
    xi = as_int(xs)
    e = int_t(int_t(xi >> MANT) - BIAS)
    m = as_float(int_t(int_t(xi & MANT_MASK) | ONE_BITS))  # in [1, 2)
    big = m > SQRT2
    m = m * HALF if big else m
    e = int_t(e + int_t(1)) if big else e
    e = int_t(e - UP_E) if small else e
    fr = m - ONE
    sv = fr / (fr + TWO)
    r = fma(F(e), LN2_HI, fma(F(e), LN2_LO, TWO * sv * atanh_series(sv * sv)))
    r = -INF if x == ZERO else r
    r = INF if x == INF else r
    return r if x >= ZERO else NAN


@njit(**FM)
def log1p(x):
    """For x in [-1, 1e30): log(1 + x) accurate also where 1 + x rounds."""
    u = ONE + x
    d = u - ONE
    return x if d == ZERO else log(u) * (x / d)
'''


def math_source(dtype):
    """The Python source of the module of Numba functions for scalars of
    ``dtype`` (float32 or float64): sigmoid, tanh, log, log1p and
    exp_clamped. A module in the kernel cache directory, like the kernels,
    so that a new variant loads these compiled (as closures, which Numba
    cannot cache, they took 0.4 s to compile in every new variant)."""
    dtype = np.dtype(dtype).type
    if dtype == np.float32:  # Horner, one expression
        c = "C[0]"
        for q in range(1, 6):
            c = f"fma({c}, r, C[{q}])"
        poly = f"return {c}"
    else:  # Horner, one statement per degree
        poly = "\n    ".join(["p = C[0]", *[f"p = fma(p, r, C[{q}])" for q in range(1, 12)], "return p"])
    head = [
        f'"""Generated by fastxor.backends.numba_vmath for {dtype.__name__}. Do not edit."""',
        "import numpy as np",
        "from numpy import float32, float64, int32, int64",
        "from numba import njit",
        "from fastxor import config",
        "from fastxor.backends.numba_fusion import fma",
        "from fastxor.backends.numba_vmath import bitcasts",
        "",
        f"F = np.{dtype.__name__}",
        "as_int, as_float, int_t = bitcasts(F)",
        "FM = dict(fastmath=config.NUMBA_FASTMATH, error_model='numpy', cache=CACHE)",
        *[f"{name} = {_literal(value)}" for name, value in _constants(dtype).items()],
    ]
    return "\n".join(head) + _FUNCTIONS.format(poly=poly)


def make_math(dtype):
    """The module of Numba functions for scalars of ``dtype`` (``math_source``):
    sigmoid, tanh, log, log1p, exp_clamped. Not ``inline='always'``: LLVM inlines
    them anyway (same speed), and Numba's own IR inlining made kernels
    compile 1.6x slower."""
    from .. import jit_cache

    dtype = np.dtype(dtype).type
    return jit_cache.load_module(f"fastxor_vmath_{dtype.__name__}", math_source(dtype))


@intrinsic
def select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select``, no branch. Why: each
    conditional expression makes three basic blocks, and Numba's SSA pass
    costs blocks x variables: in an unrolled Adam body (H = 5, about 200
    conditionals) it took most of the compile time. The value is the same
    (a select computes nothing), and LLVM if-converts the branches into this
    select anyway before vectorising."""
    if not isinstance(cond, (types.Boolean, types.Integer)):
        return None
    ty = typingctx.unify_pairs(a, b)
    if not isinstance(ty, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        c, x, y = args
        if isinstance(signature.args[0], types.Integer):
            c = builder.icmp_unsigned("!=", c, c.type(0))
        x = context.cast(builder, x, signature.args[1], ty)
        y = context.cast(builder, y, signature.args[2], ty)
        return builder.select(c, x, y)

    return ty(cond, a, b), codegen


def bitcasts(dtype):
    """(as_int, as_float, int type): reinterpret ``dtype`` values as same-width
    integers and back. The CPU kernel keeps integer epochs in its float state
    array this way, so that all of a chunk's state is one array (see
    ``cpu_kernel.kernel_source``)."""
    s = _SPEC[dtype]
    return s["as_int"], s["as_float"], s["int_t"]


def _make_array_function(fn):
    @njit(fastmath=config.NUMBA_FASTMATH, error_model="numpy")
    def apply(z, out):
        for i in range(z.shape[0]):
            out[i] = fn(z[i])

    return apply


_ARRAY = {}


def apply_array(name, z):
    """The kernels' function ``name`` (sigmoid, tanh, log, log1p) applied to
    a 1-D float32/float64 array (for tests)."""
    z = np.ascontiguousarray(z)
    if z.dtype.type not in _SPEC or z.ndim != 1:
        raise TypeError("z must be a 1-D float32 or float64 array")
    key = (name, z.dtype.type)
    if key not in _ARRAY:
        _ARRAY[key] = _make_array_function(getattr(make_math(z.dtype.type), name))
    out = np.empty_like(z)
    _ARRAY[key](z, out)
    return out

