"""Network parameters and their deterministic initialisation.

``Params`` holds N networks' weights shaped like ``nn.Linear``'s, with a
leading network axis. The kernels work on a flat structure-of-arrays layout
(P, N) instead — one row per scalar parameter, networks contiguous — because
that is what SIMD lanes and coalesced GPU loads want; ``to_flat``/``from_flat``
convert, in the order of ``state.param_rows``. Training keeps the flat form
from start to end; a Params is built once, when the result is packaged.
"""
from dataclasses import dataclass

import numpy as np

from . import config
from .state import PARAM_FIELDS, fan_in, n_params, param_rows
from .validate import check_dtype, check_int, check_per_network


@dataclass(frozen=True)
class Params:
    """Parameters of N 2-H-1 networks.

    Attributes
    ----------
    W1 : (N, H, 2) hidden weights   b1 : (N, H) hidden biases
    W2 : (N, 1, H) output weights   b2 : (N, 1) output bias
    """

    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray

    @property
    def n_networks(self):
        return self.W1.shape[0]

    @property
    def hidden(self):
        return self.W1.shape[1]

    @property
    def dtype(self):
        return self.W1.dtype

    def __len__(self):
        return self.n_networks

    def __getitem__(self, index):
        """Select networks (an int keeps the network axis with length 1; one
        past the end is an IndexError, so ``for p in params`` visits each network once)."""
        if isinstance(index, (int, np.integer)):
            n = self.n_networks
            if not -n <= index < n:
                raise IndexError(f"network index must be in [-{n}, {n}), got {index}")
            index = slice(index % n, index % n + 1)
        return Params(self.W1[index], self.b1[index], self.W2[index], self.b2[index])

    def astype(self, dtype):
        return Params(*(np.asarray(a, dtype=dtype) for a in self.arrays()))

    def arrays(self):
        return tuple(getattr(self, f) for f in PARAM_FIELDS)

    def to_flat(self):
        """A new (P, N) array, P = 4H + 1, rows in ``state.param_rows`` order."""
        n, h = self.n_networks, self.hidden
        flat = np.empty((n_params(h), n), dtype=self.dtype)
        for field, (rows, _) in param_rows(h).items():
            flat[rows] = getattr(self, field).reshape(n, -1).T
        return flat

    @classmethod
    def from_flat(cls, flat, hidden):
        """Views of a (P, N) array (no copy: a run's result costs no second
        copy of its parameters); a CuPy array stays on its device."""
        n = flat.shape[1]
        return cls(*(flat[rows].T.reshape((n,) + shape) for rows, shape in param_rows(hidden).values()))

    def validated(self, dtype=None, name="init"):
        """Return self as float arrays of ``dtype``, or raise naming ``name``."""
        arrays = []
        for field, a in zip(PARAM_FIELDS, self.arrays()):
            a = np.asarray(a)
            if a.dtype.kind not in "fiu":
                raise TypeError(f"{name}.{field} must be a real numeric array, got dtype {a.dtype}")
            arrays.append(a)
        W1, b1, W2, b2 = arrays
        if W1.ndim != 3 or W1.shape[2] != 2 or W1.shape[0] < 1:
            raise ValueError(f"{name}.W1 must have shape (N, H, 2) with N >= 1, got {W1.shape}")
        n, h = W1.shape[:2]
        if not config.HIDDEN_MIN <= h <= config.HIDDEN_MAX:
            raise ValueError(
                f"{name}.W1 hidden width H={h} out of range "
                f"[{config.HIDDEN_MIN}, {config.HIDDEN_MAX}]"
            )
        for field, a, shape in (("b1", b1, (n, h)), ("W2", W2, (n, 1, h)), ("b2", b2, (n, 1))):
            if a.shape != shape:
                raise ValueError(
                    f"{name}.{field} must have shape {shape} to match W1 {W1.shape}, got {a.shape}"
                )
        for field, a in zip(PARAM_FIELDS, arrays):
            if not np.isfinite(a).all():
                raise ValueError(f"{name}.{field} contains NaN or infinite values")
        dtype = W1.dtype if dtype is None and W1.dtype.kind == "f" else (dtype or np.float64)
        return Params(*(np.ascontiguousarray(a, dtype=dtype) for a in arrays))


def init_scales(hidden, init_scale=1.0):
    """Per-parameter half-widths of the uniform init, in flat order (float64).

    ``nn.Linear``'s default draws weights and biases from U(-1/sqrt(fan_in),
    +1/sqrt(fan_in)): fan_in is 2 for the hidden layer, H for the output.
    ``init_scale``: a number, giving shape (P,), or (N,) per network, (N, P).
    """
    return np.asarray(init_scale, dtype=np.float64)[..., None] / np.sqrt(fan_in(hidden))


def init_params(n_networks, hidden=2, seed=0, start=0, init_scale=1.0, dtype="float32"):
    """Initial parameters of networks start..start+n-1 of ``seed``.

    A pure function of (seed, network index): ``init_params(10, seed=s)`` equals
    the first 10 of ``init_params(10**6, seed=s)``. Network i takes the first
    4H+1 words of its Philox4x32-10 stream (see ``philox.network_words``), in
    flat order W1 (row-major), b1, W2, b2, and maps each word w to

        value = dtype( double(((w >> 8) - 2**23) * 2**-23) * double(scale) )

    with scale = double(init_scale) / sqrt(fan_in): nn.Linear's default
    distribution. ``init_scale`` >= 0 may be one number or an (N,) array (a
    scale per network, for sweeps).
    """
    return Params.from_flat(_init_spec(n_networks, hidden, seed, start, init_scale, dtype).make_flat(), hidden)


def _init_spec(n_networks, hidden, seed, start, init_scale, dtype):
    from .machine import require_memory

    n = check_int("n_networks", n_networks, 1, 2**40)
    require_memory(n * n_params(check_int("hidden", hidden, config.HIDDEN_MIN, config.HIDDEN_MAX)) * 8,
                   f"init_params for n_networks={n}")
    return InitSpec(
        n, check_int("hidden", hidden, config.HIDDEN_MIN, config.HIDDEN_MAX),
        check_int("seed", seed, 0, config.SEED_MAX), check_int("start", start, 0, 2**64 - 1 - n),
        check_per_network("init_scale", init_scale, n, low=0.0), check_dtype(dtype),
    )


@dataclass(frozen=True)
class InitSpec:
    """The deterministic init of networks start..start+N-1, not yet made:
    the GPU kernel generates it in registers; ``make_flat()`` makes the same
    values on the host, as the flat (P, N) array training works on."""

    n_networks: int
    hidden: int
    seed: int
    start: int
    scales: np.ndarray  # (N,) float64 init_scale per network
    dtype: object

    def make_flat(self):
        from .philox import init_flat

        return init_flat(self.seed, self.start, self.scales, fan_in(self.hidden), np.dtype(self.dtype))
