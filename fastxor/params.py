"""Network parameters and their deterministic initialisation.

``Params`` holds N networks' weights shaped like ``nn.Linear``'s, with a
leading network axis. The kernels work on a flat structure-of-arrays layout
(P, N) instead — one row per scalar parameter, networks contiguous — because
that is what SIMD lanes and coalesced GPU loads want; ``to_flat``/``from_flat``
convert, in the order of ``state.param_rows``. Training keeps the flat form
from start to end; a Params is built once, when the result is packaged.
"""
from dataclasses import dataclass, replace

import numpy as np

from . import config
from .arrays import array_module, to_host
from .data import INPUTS_MAX, X_BOOL
from .options import DEFAULTS as D
from .state import PARAM_FIELDS, fan_in, n_params, param_rows
from .validate import check_dtype, check_int, check_per_network


@dataclass(frozen=True)
class Params:
    """Parameters of N D-H-1 networks.

    Attributes
    ----------
    W1 : (N, H, D) hidden weights   b1 : (N, H) hidden biases
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
    def inputs(self):
        return self.W1.shape[2]

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
        """A new (P, N) array, P = (D + 2)H + 1, rows in ``state.param_rows``
        order, where the parameters are (host or GPU)."""
        n, h, d = self.n_networks, self.hidden, self.inputs
        flat = array_module(self.W1).empty((n_params(h, d), n), dtype=self.dtype)
        for field, (rows, _) in param_rows(h, d).items():
            flat[rows] = getattr(self, field).reshape(n, -1).T
        return flat

    @classmethod
    def from_flat(cls, flat, hidden, inputs):
        """Views of a (P, N) array (no copy: a run's result costs no second
        copy of its parameters); a CuPy array stays on its device."""
        n = flat.shape[1]
        return cls(*(flat[rows].T.reshape((n,) + shape) for rows, shape in param_rows(hidden, inputs).values()))

    def validated(self, dtype=None, name="init"):
        """Return self as float host arrays of ``dtype`` (a GPU's are copied
        back), or raise naming ``name``."""
        arrays = []
        for field, a in zip(PARAM_FIELDS, self.arrays()):
            a = np.asarray(to_host(a))
            if a.dtype.kind not in "fiu":
                raise TypeError(f"{name}.{field} must be a real numeric array, got dtype {a.dtype}")
            arrays.append(a)
        W1, b1, W2, b2 = arrays
        if W1.ndim != 3 or W1.shape[0] < 1 or not 1 <= W1.shape[2] <= INPUTS_MAX:
            raise ValueError(f"{name}.W1 must have shape (N, H, D) with N >= 1 and D in [1, {INPUTS_MAX}], "
                             f"got {W1.shape}")
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


def init_scales(hidden, inputs, init_scale=1.0):
    """Per-parameter half-widths of the uniform init, in flat order (float64).

    ``nn.Linear``'s default draws weights and biases from U(-1/sqrt(fan_in),
    +1/sqrt(fan_in)): fan_in is D for the hidden layer, H for the output.
    ``init_scale``: a number, giving shape (P,), or (N,) per network, (N, P).
    """
    return np.asarray(init_scale, dtype=np.float64)[..., None] / np.sqrt(fan_in(hidden, inputs))


def init_params(n_networks, hidden=D["hidden"], seed=D["seed"], start=0, init_scale=D["init_scale"], dtype=D["dtype"],
                inputs=X_BOOL.shape[1]):
    """Initial parameters of networks start..start+n-1 of ``seed``.

    A pure function of (seed, network index): ``init_params(10, seed=s)`` equals
    the first 10 of ``init_params(10**6, seed=s)``. Network i takes the first
    P = (D + 2)H + 1 words of its Philox4x32-10 stream (see ``philox.network_words``), in
    flat order W1 (row-major), b1, W2, b2, and maps each word w to

        value = dtype( double(((w >> 8) - 2**23) * 2**-23) * double(scale) )

    with scale = double(init_scale) / sqrt(fan_in): nn.Linear's default
    distribution. ``init_scale`` >= 0 may be one number or an (N,) array (a
    scale per network, for sweeps).
    """
    spec = _init_spec(n_networks, hidden, seed, start, init_scale, dtype, inputs)
    return Params.from_flat(spec.make_flat(), spec.hidden, spec.inputs)


def _init_spec(n_networks, hidden, seed, start, init_scale, dtype, inputs):
    from .machine import require_memory

    n = check_int("n_networks", n_networks, 1, 2**40)
    hidden = check_int("hidden", hidden, config.HIDDEN_MIN, config.HIDDEN_MAX)
    inputs = check_int("inputs", inputs, 1, INPUTS_MAX)
    require_memory(n * n_params(hidden, inputs) * 8, f"init_params for n_networks={n}")
    return InitSpec(
        n, hidden, check_int("seed", seed, 0, config.SEED_MAX), check_int("start", start, 0, 2**64 - 1 - n),
        check_per_network("init_scale", init_scale, n, low=0.0), check_dtype(dtype), inputs,
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
    inputs: int  # D

    def make_flat(self):
        from .philox import init_flat

        return init_flat(self.seed, self.start, self.scales, fan_in(self.hidden, self.inputs), np.dtype(self.dtype))

    def part(self, lo, hi):
        """Networks start+lo .. start+hi-1 of this init."""
        return replace(self, n_networks=hi - lo, start=self.start + lo, scales=self.scales[lo:hi])
