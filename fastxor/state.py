"""The one description of what a backend trains: layout, recipe, state, outputs.

Every backend (``fastxor.backends``) receives the same three objects and fills
the same fourth, so a new recipe feature is added here once and then taught
to each kernel:

* the **flat layout** of one network's parameters: row q of a (P, N) array,
  in the order W1 (row-major), b1, W2, b2 — ``PARAM_ROWS`` is the only place
  that order is written in Python (the CUDA source keeps a copy, checked
  against this one by a test);
* ``Recipe``: what all networks of a run share and a kernel is compiled for
  (hidden width, dtype, options);
* ``State``: what each network carries from one epoch segment to the next,
  flat and updated in place (parameters, learning rate, the epochs of its
  first solve and divergence, the global epoch reached);
* ``KernelOutput``: what a segment produces besides the new state (the loss
  and predictions of the final parameters, the loss history columns).
"""
from dataclasses import dataclass

import numpy as np

#: Parameter arrays in flat order, with their shapes for N networks of width H.
PARAM_FIELDS = ("W1", "b1", "W2", "b2")


def n_params(hidden):
    """Scalar parameters of one 2-H-1 network: 2H + H + H + 1."""
    return 4 * hidden + 1


def param_rows(hidden):
    """Field -> (slice of flat rows, shape of one network's array).

    W1 (H, 2) row-major: W1[j, i] is row 2j + i; then b1 (H,), W2 (1, H), b2 (1,).
    """
    h = hidden
    return {
        "W1": (slice(0, 2 * h), (h, 2)),
        "b1": (slice(2 * h, 3 * h), (h,)),
        "W2": (slice(3 * h, 4 * h), (1, h)),
        "b2": (slice(4 * h, 4 * h + 1), (1,)),
    }


def param_names(hidden):
    """Scalar names in flat order: w1_{j}_{i}, b1_{j}, w2_{j}, b2 (the kernels' locals)."""
    return (
        [f"w1_{j}_{i}" for j in range(hidden) for i in range(2)]
        + [f"b1_{j}" for j in range(hidden)]
        + [f"w2_{j}" for j in range(hidden)]
        + ["b2"]
    )


def fan_in(hidden):
    """nn.Linear's fan-in of each flat row: 2 for the hidden layer, H for the output."""
    return np.array([2.0] * (3 * hidden) + [float(hidden)] * (hidden + 1))


@dataclass(frozen=True)
class Recipe:
    """What every network of one run shares: the kernel is compiled for it.

    ``fast_math``: the GPU's opt-in approximate sigmoid (cupy only).
    """

    hidden: int
    dtype: np.dtype
    fast_math: bool = False

    @property
    def n_params(self):
        return n_params(self.hidden)


@dataclass
class State:
    """Per-network training state, flat, carried across epoch segments.

    params : (P, N) in the recipe's dtype, rows in ``param_rows`` order; None
        while ``init`` still describes it (a GPU makes it in registers).
    lr : (N,) learning rate per network, in the recipe's dtype (cast once).
    solved_epoch, diverged_epoch : (N,) int64, global epoch of the first solve
        / divergence, -1 while none.
    epoch : global epoch of the next update (epochs trained so far).
    init : ``params.InitSpec`` or None; ``materialise()`` makes the parameters.
    """

    params: object
    lr: np.ndarray
    solved_epoch: np.ndarray
    diverged_epoch: np.ndarray
    epoch: int = 0
    init: object = None

    @classmethod
    def fresh(cls, params, lr, init=None):
        n = len(lr)
        return cls(params, lr, np.full(n, -1, np.int64), np.full(n, -1, np.int64), 0, init)

    @property
    def n_networks(self):
        return len(self.lr)

    def materialise(self):
        """The (P, N) parameters, made on the host from ``init`` if needed."""
        if self.params is None:
            self.params = self.init.make_flat()
            self.init = None
        return self.params


@dataclass(frozen=True)
class Data:
    """The 4 training samples and each target's side of 0.5 (see ``data.target_sides``)."""

    X: np.ndarray  # (4, 2) float64
    y: np.ndarray  # (4,) float64
    sides: np.ndarray  # (4,) float64 in {-1, 0, 1}


@dataclass
class KernelOutput:
    """Buffers a segment fills: allocated once per run and reused by every segment.

    loss : (N,) and predictions : (N, 4) of the parameters after the segment.
    history : (N, R) loss of the forward pass of every epoch e with
        e % record_every == 0, in column e // record_every; None without
        recording. Written in place, so segments need no merging.
    """

    loss: np.ndarray
    predictions: np.ndarray
    history: object = None

    @classmethod
    def empty(cls, n, dtype, rows=None, xp=np):
        """Uninitialised buffers; ``xp``: numpy, or cupy to keep results on a GPU."""
        history = None if rows is None else xp.empty((n, rows), dtype=dtype)
        return cls(xp.empty(n, dtype=dtype), xp.empty((n, 4), dtype=dtype), history)


def history_rows(epochs, record_every):
    """Loss-history columns of a run of ``epochs`` epochs: epochs 0, k, 2k, ... < epochs."""
    return -(-epochs // record_every) if record_every else 0


def run_bytes(n, recipe, rows):
    """Bytes every backend needs for a run, whatever its kernel: the flat
    state, the host init's float64 temporaries, the output buffers, the loss
    history, and the packaged result's own copy of the parameters."""
    item = np.dtype(recipe.dtype).itemsize
    p = recipe.n_params
    per_net = (
        2 * p * item  # flat state + the result's Params
        + 3 * 8 + item  # lr and init scale as float64, lr in dtype, solved/diverged epochs
        + 5 * item + 8  # loss, predictions, solved (bool) and friends
        + rows * item  # history
    )
    return n * per_net
