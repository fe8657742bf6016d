import numpy as np
import pytest

import fastxor
from fastxor.params import init_scales
from fastxor.philox import network_words, philox, uniform_pm1


@pytest.mark.parametrize(
    "counter, key, expected",
    [  # Random123 kat_vectors, philox4x32 10 rounds
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ],
)
def test_philox4x32_known_answers(counter, key, expected):
    assert philox(counter, key, width=32).tolist() == expected


def test_philox4x64_matches_numpy(rng):
    """The shared round function, in its 4x64 instance, equals numpy.random.Philox."""
    key = [int(v) for v in rng.integers(0, 2**63, 2, dtype=np.uint64)]
    counter = [int(v) for v in rng.integers(0, 2**63, 4, dtype=np.uint64)]
    bg = np.random.Philox(key=key[0] | key[1] << 64,
                          counter=sum(c << (64 * i) for i, c in enumerate(counter)))
    got = bg.random_raw(40)
    ctr = np.array(counter, dtype=np.uint64)
    blocks = []
    for _ in range(10):  # numpy increments the counter before each block
        ctr[0] += np.uint64(1)  # (no carry for these random counters < 2**63)
        blocks.append(philox(ctr, key, width=64))
    assert np.array_equal(np.concatenate(blocks), got)


def test_uniform_mapping_is_exact_and_in_range():
    w = np.array([0, 255, 256, 2**31, 2**32 - 1], dtype=np.uint64)
    u = uniform_pm1(w)
    assert u.tolist() == [-1.0, -1.0, -1.0 + 2**-23, 0.0, 1.0 - 2**-23]
    assert np.array_equal(u.astype(np.float32).astype(np.float64), u)


def test_init_is_a_pure_function_of_seed_and_index(rng):
    seed = int(rng.integers(0, 2**64 - 1, dtype=np.uint64))
    h = int(rng.integers(1, 9))
    big = fastxor.init_params(1000, hidden=h, seed=seed)
    small = fastxor.init_params(10, hidden=h, seed=seed)
    mid = fastxor.init_params(7, hidden=h, seed=seed, start=500)
    for a, b, c in zip(big.arrays(), small.arrays(), mid.arrays()):
        assert np.array_equal(a[:10], b)
        assert np.array_equal(a[500:507], c)
    other = fastxor.init_params(10, hidden=h, seed=seed ^ 1)
    assert not np.array_equal(other.W1, small.W1)


def test_init_follows_the_documented_mapping(rng):
    seed, h = int(rng.integers(0, 2**40)), 3
    p = fastxor.init_params(5, hidden=h, seed=seed, start=123, init_scale=0.7, dtype="float64")
    words = network_words(seed, 123, 5, 4 * h + 1)
    expect = uniform_pm1(words) * init_scales(h, 2, 0.7)
    assert np.array_equal(p.to_flat().T, expect)
    # network 123's first block by hand: counter (0, 123, 0, 0), key (seed lo, seed hi)
    block = philox([0, 123, 0, 0], [seed & 0xFFFFFFFF, seed >> 32])
    assert np.array_equal(words[0, :4], block)


@pytest.mark.parametrize("hidden", [1, 2, 5])
def test_init_distribution_is_nn_linear_default(hidden):
    p = fastxor.init_params(200_000, hidden=hidden, seed=3, dtype="float64")
    b1, b2 = 1 / np.sqrt(2), 1 / np.sqrt(hidden)
    for a, bound in ((p.W1, b1), (p.b1, b1), (p.W2, b2), (p.b2, b2)):
        assert a.min() >= -bound and a.max() < bound
        # U(-b, b): mean 0 and variance b^2/3, within 5 standard errors
        n = a.size
        assert abs(a.mean()) < 5 * bound / np.sqrt(3 * n)
        assert abs(a.var() - bound**2 / 3) < 5 * bound**2 * np.sqrt(4 / 45 / n)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_init_is_bit_identical_to_the_numpy_definition(dtype, rng):
    """``init_params`` runs a Numba kernel per thread range (pieces of 4096
    networks) above ``philox.NUMPY_MAX`` networks, the NumPy definition up to
    it; every value must equal the NumPy formulation, at any N (both sides
    of the limit, pieces cut anywhere), start (near 2**32, where the
    counter's high word turns over), width and scales."""
    from fastxor import philox as module

    h = int(rng.integers(1, 33))
    n = int(rng.choice([1, 4095, module.NUMPY_MAX + 1, module.NUMPY_MAX + 4097]))
    seed = int(rng.integers(0, 2**64 - 1, dtype=np.uint64))
    start = int(rng.choice([0, 2**32 - 5000, int(rng.integers(0, 2**60))]))
    scales = rng.uniform(0, 3, n)
    p = fastxor.init_params(n, hidden=h, seed=seed, start=start, init_scale=scales, dtype=dtype)
    expect = (uniform_pm1(network_words(seed, start, n, 4 * h + 1)) * init_scales(h, 2, scales)).astype(dtype)
    assert np.array_equal(p.to_flat().T, expect)
