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
"""
from types import SimpleNamespace

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


def make_math(dtype):
    """Numba functions for scalars of ``dtype``: a namespace of sigmoid, tanh,
    log, log1p, exp. Not ``inline='always'``: LLVM inlines them anyway (same
    speed), and Numba's own IR inlining made kernels compile 1.6x slower."""
    s = _SPEC[dtype]
    f = dtype
    lo, hi = f(s["lo"]), f(s["hi"])
    log2e = f(1.0 / np.log(2.0))
    int_t, as_float, as_int = s["int_t"], s["as_float"], s["as_int"]
    # Round-to-integer by the "magic number" 1.5 * 2**mant: for |v| < 2**(mant-1),
    # v + magic is rounded to an integer, held in the low mantissa bits.
    mant = int_t(s["mant"])
    magic = f(1.5 * 2.0 ** s["mant"])
    bias_bits = int_t(s["bias"] << s["mant"])
    ln2_hi, ln2_lo = f(s["ln2_hi"]), f(s["ln2_lo"])
    c = tuple(f(v) for v in s["poly"])
    zero, half, one, two = f(0.0), f(0.5), f(1.0), f(2.0)
    use32 = dtype == np.float32
    fm = dict(fastmath=config.NUMBA_FASTMATH, error_model="numpy")

    if use32:

        @njit(**fm)
        def poly(r):
            return ((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5]

    else:

        @njit(**fm)
        def poly(r):
            p = c[0]
            p = p * r + c[1]
            p = p * r + c[2]
            p = p * r + c[3]
            p = p * r + c[4]
            p = p * r + c[5]
            p = p * r + c[6]
            p = p * r + c[7]
            p = p * r + c[8]
            p = p * r + c[9]
            p = p * r + c[10]
            p = p * r + c[11]
            return p

    @njit(**fm)
    def reduce(x):
        """(2**k, r, with x = k ln2 + r), x clamped to [LO, HI] first."""
        # Written so that NaN fails both comparisons and passes through.
        x = hi if x > hi else x
        x = lo if x < lo else x
        t = x * log2e + magic  # k = round(x / ln2) sits in t's low mantissa bits
        kf = t - magic  # k as a float, exact
        r = x - kf * ln2_hi
        r = r - kf * ln2_lo
        # 2**k: shifting t's bits left by ``mant`` keeps just k (two's
        # complement, wrapping), then the exponent bias is added.
        return as_float(int_t(int_t(as_int(t) << mant) + bias_bits)), r

    @njit(**fm)
    def exp_clamped(x):
        two_k, r = reduce(x)
        return ((r * r) * poly(r) + r + one) * two_k

    @njit(**fm)
    def sigmoid(z):
        return one / (one + exp_clamped(-z))

    @njit(**fm)
    def expm1_clamped(x):
        two_k, r = reduce(x)
        return two_k * ((r * r) * poly(r) + r) + (two_k - one)  # exact for k = 0: no 1 + r - 1

    @njit(**fm)
    def tanh(x):
        a = x if x >= zero else -x
        e = expm1_clamped(-two * a)  # in (-1, 0]: 2 + e >= 1, no cancellation
        t = -e / (e + two)
        return t if x >= zero else -t

    # log: the atanh series 2s (1 + z/3 + z^2/5 + ...), z = s^2 <= 0.0295, to
    # the dtype's precision (float32: 6 terms, float64: 12).
    n_terms = 6 if use32 else 12
    a_coef = tuple(f(1.0 / (2 * k + 1)) for k in range(n_terms))[::-1]
    sqrt2 = f(np.sqrt(2.0))
    tiny = f(np.finfo(dtype).tiny)
    up = f(2.0 ** (s["mant"] + 1))  # subnormals are scaled into the normal range
    up_e = int_t(s["mant"] + 1)
    mant_mask = int_t((1 << s["mant"]) - 1)
    one_bits = int_t(s["bias"] << s["mant"])
    bias = int_t(s["bias"])
    ln2 = f(np.log(2.0))
    inf, nan = f(np.inf), f(np.nan)

    @njit(**fm)
    def atanh_series(z):
        p = a_coef[0]
        for q in a_coef[1:]:
            p = p * z + q
        return p

    @njit(**fm)
    def log(x):
        small = x < tiny
        xs = x * up if small else x
        xi = as_int(xs)
        e = int_t(int_t(xi >> mant) - bias)
        m = as_float(int_t(int_t(xi & mant_mask) | one_bits))  # in [1, 2)
        big = m > sqrt2
        m = m * half if big else m
        e = int_t(e + int_t(1)) if big else e
        e = int_t(e - up_e) if small else e
        fr = m - one
        sv = fr / (fr + two)
        r = f(e) * ln2_hi + (two * sv * atanh_series(sv * sv) + f(e) * ln2_lo)
        r = -inf if x == zero else r
        r = inf if x == inf else r
        return r if x >= zero else nan

    @njit(**fm)
    def log1p(x):
        """For x in [-1, 1e30): log(1 + x) accurate also where 1 + x rounds."""
        u = one + x
        d = u - one
        return x if d == zero else log(u) * (x / d)

    return SimpleNamespace(sigmoid=sigmoid, tanh=tanh, log=log, log1p=log1p, exp=exp_clamped)


def make_sigmoid(dtype):
    """The Numba sigmoid for scalars of ``dtype``."""
    return make_math(dtype).sigmoid


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


_MATH = {dt: make_math(dt) for dt in (np.float32, np.float64)}


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
    if z.dtype.type not in _MATH or z.ndim != 1:
        raise TypeError("z must be a 1-D float32 or float64 array")
    key = (name, z.dtype.type)
    if key not in _ARRAY:
        _ARRAY[key] = _make_array_function(getattr(_MATH[z.dtype.type], name))
    out = np.empty_like(z)
    _ARRAY[key](z, out)
    return out

