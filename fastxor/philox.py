"""Philox counter-based random numbers (Salmon et al., SC'11, "Random123").

Why counter-based: network ``i`` of seed ``s`` must get the same initial
parameters on every backend, for any number of networks, chunking or thread
count. Philox makes the random words a pure function of (counter, key), so
each network computes its own numbers from (s, i) with no shared state — the
same function runs in NumPy here and inside the CUDA kernel.

fastxor uses **Philox4x32-10** (32-bit words, native on GPUs, as in cuRAND and
JAX). The round function is written once for both word widths: the 4x64
instance is tested against ``numpy.random.Philox`` (which is Philox4x64-10),
the 4x32 instance against Random123's published known-answer vectors.
"""
import numpy as np

# Multipliers and Weyl key increments, from Random123's philox.h.
_CONSTANTS = {
    32: dict(M0=0xD2511F53, M1=0xCD9E8D57, W0=0x9E3779B9, W1=0xBB67AE85),
    64: dict(
        M0=0xD2E7470EE14C6C93,
        M1=0xCA5A826395121157,
        W0=0x9E3779B97F4A7C15,
        W1=0xBB67AE8584CAA73B,
    ),
}
ROUNDS = 10


def _mulhilo(a, m, width):
    """High and low ``width``-bit halves of the product ``a * m`` (unsigned)."""
    if width == 32:
        p = a * np.uint64(m)  # a < 2**32, m < 2**32: exact in uint64
        return p >> np.uint64(32), p & np.uint64(0xFFFFFFFF)
    # 64x64 -> 128 bits from 32-bit halves (NumPy has no uint128).
    mask = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    m = np.uint64(m)
    a_lo, a_hi = a & mask, a >> s32
    m_lo, m_hi = m & mask, m >> s32
    lo_lo = a_lo * m_lo
    hi_lo = a_hi * m_lo
    lo_hi = a_lo * m_hi
    hi_hi = a_hi * m_hi
    cross = (lo_lo >> s32) + (hi_lo & mask) + lo_hi
    hi = hi_hi + (hi_lo >> s32) + (cross >> s32)
    return hi, a * m


def philox(counter, key, width=32, rounds=ROUNDS):
    """Philox4xW-R block function, vectorised over leading axes.

    Parameters
    ----------
    counter : array of uint64, shape (..., 4)
        Counter words, each < 2**width.
    key : array of uint64, shape (..., 2)
        Key words, each < 2**width.
    width : {32, 64}
    rounds : int

    Returns
    -------
    ndarray of uint64, shape (..., 4): the four random words.
    """
    c = _CONSTANTS[width]
    wmask = np.uint64(2**width - 1)
    counter = np.asarray(counter, dtype=np.uint64)
    key = np.asarray(key, dtype=np.uint64)
    x0, x1, x2, x3 = (counter[..., i].copy() for i in range(4))
    k0, k1 = key[..., 0].copy(), key[..., 1].copy()
    with np.errstate(over="ignore"):
        for r in range(rounds):
            if r:  # bump the key before every round but the first
                k0 = (k0 + np.uint64(c["W0"])) & wmask
                k1 = (k1 + np.uint64(c["W1"])) & wmask
            hi0, lo0 = _mulhilo(x0, c["M0"], width)
            hi1, lo1 = _mulhilo(x2, c["M1"], width)
            x0, x1, x2, x3 = (
                hi1 ^ x1 ^ k0,
                lo1 & wmask,
                hi0 ^ x3 ^ k1,
                lo0 & wmask,
            )
    return np.stack([x0, x1, x2, x3], axis=-1)


def uniform_pm1(words):
    """Map uint32 words to floats in [-1, 1): ``((w >> 8) - 2**23) * 2**-23``.

    Exact in float32 and float64 (24 significant bits), so every backend and
    language gets the identical value from the identical word.
    """
    w = np.asarray(words, dtype=np.uint64)
    return ((w >> np.uint64(8)).astype(np.int64) - 2**23).astype(np.float64) * 2.0**-23


def network_words(seed, start, n_networks, n_words):
    """The first ``n_words`` Philox4x32-10 words of networks start..start+n-1.

    Network ``i`` uses key = (seed mod 2**32, seed >> 32) and counters
    (b, i mod 2**32, i >> 32, 0) for blocks b = 0, 1, ...; its words are the
    blocks' outputs in order. Returns uint64 array (n_networks, n_words).
    """
    n_blocks = -(-n_words // 4)
    idx = np.arange(n_networks, dtype=np.uint64) + np.uint64(start)
    counter = np.zeros((n_networks, n_blocks, 4), dtype=np.uint64)
    counter[:, :, 0] = np.arange(n_blocks, dtype=np.uint64)
    counter[:, :, 1] = (idx & np.uint64(0xFFFFFFFF))[:, None]
    counter[:, :, 2] = (idx >> np.uint64(32))[:, None]
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint64)
    words = philox(counter, key, width=32)
    return words.reshape(n_networks, n_blocks * 4)[:, :n_words]


#: Up to this many networks the NumPy definition makes the initial parameters
#: (a few milliseconds): a first run of a small job then compiles no Philox
#: kernel (about a second of a cold start); beyond, the compiled kernel.
NUMPY_MAX = 1 << 14


def init_flat(seed, start, scales, fan_in, dtype):
    """``init_params``'s values as a flat (P, N) array of ``dtype``: for more
    than NUMPY_MAX networks made by a compiled kernel over pieces of networks
    in threads (about 100x the NumPy formulation above, which stays the
    readable definition it is tested against, bit for bit), else by that
    definition itself.

    ``scales``: (N,) float64 init_scale per network; ``fan_in``: (P,) float64.
    """
    from .jit_cache import call_repairing, forget

    n, p = len(scales), len(fan_in)
    scales = np.ascontiguousarray(scales, dtype=np.float64)
    sqrt_fan_in = np.sqrt(np.asarray(fan_in, dtype=np.float64))
    if n <= NUMPY_MAX:
        values = uniform_pm1(network_words(seed, start, n, p)) * (scales[:, None] / sqrt_fan_in)
        return np.ascontiguousarray(values.T.astype(dtype))
    out = np.empty((p, n), dtype=dtype)
    threads = _threads(-(-n // 4096))
    bounds = [n * i // threads for i in range(threads + 1)]  # one range per thread, one kernel call each
    pieces = list(zip(bounds[:-1], bounds[1:]))

    def filler():
        kernel = _kernel().fill

        def fill():
            def piece(bounds):
                kernel(np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32), np.uint64(start), scales,
                       sqrt_fan_in, out, *bounds)

            if threads <= 1:
                for b in pieces:
                    piece(b)
            else:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(piece, pieces))

        fill._cache = getattr(kernel, "_cache", None)  # for call_repairing
        return fill

    call_repairing(filler, lambda: forget(_kernel()))
    return out


def _threads(pieces):
    import numba

    return min(numba.get_num_threads(), pieces)


def _kernel():
    """The compiled Philox kernel module (loaded through ``jit_cache``: cached
    in the kernel cache directory, never in the package)."""
    from .jit_cache import load_module

    c = {k: f"np.uint64({v:#x})" for k, v in _CONSTANTS[32].items()}
    rounds = "\n".join(f"    c0, c1, c2, c3 = rnd(c0, c1, c2, c3, (k0 + {r} * W0) & MASK, (k1 + {r} * W1) & MASK)"
                       for r in range(1, ROUNDS - 1))
    return load_module("fastxor_philox", _KERNEL_SOURCE.format(rounds=rounds, last=ROUNDS - 1, **c))


_KERNEL_SOURCE = '''"""Philox4x32-10 initialisation kernel, generated by fastxor.philox. Do not edit."""
import numpy as np
from numba import njit

M0, M1, W0, W1 = {M0}, {M1}, {W0}, {W1}
MASK, S32, S8 = np.uint64(0xFFFFFFFF), np.uint64(32), np.uint64(8)


@njit(inline="always")
def rnd(c0, c1, c2, c3, k0, k1):
    p0 = c0 * M0
    p1 = c2 * M1
    return (p1 >> S32) ^ c1 ^ k0, p1 & MASK, (p0 >> S32) ^ c3 ^ k1, p0 & MASK


@njit(inline="always")
def block(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10, the ten rounds written out: straight-line code vectorises."""
    c0, c1, c2, c3 = rnd(c0, c1, c2, c3, k0, k1)
{rounds}
    return rnd(c0, c1, c2, c3, (k0 + {last} * W0) & MASK, (k1 + {last} * W1) & MASK)


@njit(inline="always")
def value(w, s):
    # (w >> 8) < 2**24 fits int32, whose conversion to double vectorises (AVX2 has no int64 one)
    return (np.float64(np.int32(w >> S8) - np.int32(8388608)) * 1.1920928955078125e-07) * s


@njit(nogil=True, cache=CACHE, error_model="numpy")
def fill(k0, k1, start, scales, sqrt_fan_in, out, a0, z0):
    """Networks a0..z0-1, in pieces of 4096 (a piece's words stay in cache):
    block b's four words are parameters 4b..4b+3."""
    P = out.shape[0]
    w = np.empty((4, 4096), dtype=np.uint64)
    for a in range(a0, z0, 4096):
        z = min(z0, a + 4096)
        for b in range((P + 3) // 4):
            words(np.uint64(b), start, a, k0, k1, w[0, :z - a], w[1, :z - a], w[2, :z - a], w[3, :z - a])
            for q in range(min(4, P - 4 * b)):
                scaled(w[q, :z - a], scales[a:z], sqrt_fan_in[4 * b + q], out[4 * b + q, a:z])


@njit(inline="always")
def words(u, start, a, k0, k1, w0, w1, w2, w3):
    """Block u of networks a, a+1, ...: 1-D outputs, a loop LLVM vectorises."""
    for i in range(len(w0)):
        g = start + np.uint64(a + i)
        w0[i], w1[i], w2[i], w3[i] = block(u, g & MASK, g >> S32, np.uint64(0), k0, k1)


@njit(inline="always")
def scaled(w, scales, inv, row):
    for i in range(len(w)):
        row[i] = value(w[i], scales[i] / inv)
'''
