"""The one description of what a backend trains: layout, recipe, state, outputs.

Every backend (``fastxor.backends``) receives the same three objects and fills
the same fourth, so a new recipe feature is added here once and then taught
to each kernel:

* the **flat layout** of one network's parameters: row q of a (P, N) array,
  in the order W1 (row-major), b1, W2, b2 — ``PARAM_ROWS`` is the only place
  that order is written in Python (the CUDA source keeps a copy, checked
  against this one by a test);
* ``Recipe``: what all networks of a run share and a kernel is compiled for
  (hidden width, dtype, optimizer, loss, activation, options);
* ``State``: what each network carries from one epoch segment to the next,
  flat and updated in place (parameters, optimizer buffers, per-network
  coefficients, the epochs of its first solve, divergence and target, the
  global epoch reached);
* ``KernelOutput``: what a segment produces besides the new state (the loss
  and predictions of the final parameters, the loss history columns).
"""
from dataclasses import dataclass

import numpy as np

from .data import X_BOOL
from . import options
from .options import DEFAULTS

#: Parameter arrays in flat order, with their shapes for N networks of width H.
PARAM_FIELDS = ("W1", "b1", "W2", "b2")


def n_params(hidden, inputs):
    """Scalar parameters of one D-H-1 network: DH + H + H + 1 = (D + 2)H + 1."""
    return (inputs + 2) * hidden + 1


def param_rows(hidden, inputs):
    """Field -> (slice of flat rows, shape of one network's array).

    W1 (H, D) row-major: W1[j, i] is row Dj + i; then b1 (H,), W2 (1, H), b2 (1,).
    """
    h, w = hidden, inputs * hidden
    return {
        "W1": (slice(0, w), (h, inputs)),
        "b1": (slice(w, w + h), (h,)),
        "W2": (slice(w + h, w + 2 * h), (1, h)),
        "b2": (slice(w + 2 * h, w + 2 * h + 1), (1,)),
    }


def param_names(hidden, inputs):
    """Scalar names in flat order: w1_{j}_{i}, b1_{j}, w2_{j}, b2 (the kernels' locals)."""
    return (
        [f"w1_{j}_{i}" for j in range(hidden) for i in range(inputs)]
        + [f"b1_{j}" for j in range(hidden)]
        + [f"w2_{j}" for j in range(hidden)]
        + ["b2"]
    )


def fan_in(hidden, inputs):
    """nn.Linear's fan-in of each flat row: D for the hidden layer, H for the output."""
    return np.array([float(inputs)] * ((inputs + 1) * hidden) + [float(hidden)] * (hidden + 1))


#: The recipe names a user may choose (``fastxor.train``'s arguments; stated in ``options``).
OPTIMIZERS, LOSSES, ACTIVATIONS, OUTPUTS = options.OPTIMIZERS, options.LOSSES, options.ACTIVATIONS, options.OUTPUTS


@dataclass(frozen=True)
class Recipe:
    """What every network of one run shares: the kernel is compiled for it.

    hidden, inputs, samples : the network's H and D, the data's S (the
        seed's XOR when not given).
    optimizer, loss, activation, output : names from OPTIMIZERS, LOSSES,
        ACTIVATIONS, OUTPUTS (the output unit: a sigmoid, or linear).
    momentum, weight_decay : whether some network has a non-zero value (the
        values themselves are per network, in ``State``); a kernel without
        them is not slowed by them.
    lr_output : whether the output layer (W2, b2) has its own learning rate
        (per network, ``State.lr_output``; torch: a second parameter group).
    nesterov, dampening, betas, eps : as ``torch.optim.SGD`` / ``Adam``.
    target_loss : None, or track each network's first epoch with loss <= it.
    fast_math : the GPU's opt-in approximate sigmoid (cupy only).
    """

    hidden: int
    dtype: np.dtype
    fast_math: bool = False
    inputs: int = X_BOOL.shape[1]
    samples: int = X_BOOL.shape[0]
    optimizer: str = "sgd"
    loss: str = "mse"
    activation: str = "sigmoid"
    output: str = "sigmoid"
    lr_output: bool = False
    momentum: bool = False
    nesterov: bool = False
    dampening: float = 0.0
    weight_decay: bool = False
    betas: tuple = DEFAULTS["betas"]
    eps: float = DEFAULTS["eps"]
    target_loss: object = None

    @property
    def n_params(self):
        return n_params(self.hidden, self.inputs)

    @property
    def n_buffers(self):
        """Optimizer-state rows per network: SGD's momentum buffer (P), Adam's
        two moments (2P); the step count is the global epoch."""
        if self.optimizer in ("adam", "adamw"):
            return 2 * self.n_params
        return self.n_params if self.momentum else 0

    @property
    def rate_names(self):
        """The per-network coefficient rows a kernel reads (see ``rate_rows``)."""
        names = ["lr", "lr_output"] if self.lr_output else ["lr"]
        if self.optimizer == "sgd" and self.momentum:
            names += ["momentum", "gain"] if self.dampening else ["momentum"]
        if self.weight_decay and self.optimizer == "adamw":  # torch: p * (1 - lr wd), lr per group
            names += ["decay", "decay_output"] if self.lr_output else ["decay"]
        elif self.weight_decay:
            names.append("weight_decay")
        return tuple(names)

    @property
    def kernel_key(self):
        """What a compiled kernel depends on (the scalars are run-time arguments)."""
        return (self.hidden, np.dtype(self.dtype).name, self.fast_math, self.optimizer, self.loss,
                self.activation, self.momentum, self.nesterov, self.weight_decay,
                self.target_loss is not None, self.momentum and self.dampening != 0, self.inputs, self.samples,
                self.output, self.lr_output, self.lerp_low)

    @property
    def lerp_low(self):
        """Which of torch's two forms Adam's ``exp_avg.lerp_(grad, 1 - beta1)``
        takes: weight < 0.5 (``m + w (g - m)``, beta1 = 0.9) or not (``g - (1 - w)
        (g - m)``), the weight rounded to the dtype as the kernel computes it.
        A CPU kernel is compiled for one form: choosing per element cost 5-10 %."""
        return self.optimizer != "sgd" and bool(np.dtype(self.dtype).type(1.0 - self.betas[0]) < 0.5)

    @property
    def is_seed(self):
        """The seed's recipe: sigmoid units, MSE, plain SGD with one rate, no target (on any data)."""
        k = self.kernel_key
        return k[3:11] + k[13:] == ("sgd", "mse", "sigmoid", False, False, False, False, False, "sigmoid", False,
                                    False)

    def constants(self):
        """The run-time scalars as float64: beta1, beta2, eps, target loss (inf: none)."""
        target = np.inf if self.target_loss is None else float(self.target_loss)
        return np.array([self.betas[0], self.betas[1], self.eps, target], dtype=np.float64)


@dataclass
class State:
    """Per-network training state, flat, carried across epoch segments.

    params : (P, N) in the recipe's dtype, rows in ``param_rows`` order; None,
        or values still to be made, while ``init`` describes them (a GPU makes
        them in registers and writes them here).
    lr : (N,) learning rate per network, in the recipe's dtype (cast once):
        the hidden layer's when ``lr_output`` is given.
    lr_output : (N,) the output layer's learning rate, in the dtype, or None
        (the same as ``lr``).
    momentum, weight_decay : (N,) float64 per network, or None (all zero).
    buffers : (B, N) optimizer state in the recipe's dtype (``Recipe.n_buffers``
        rows: SGD's momentum buffer, or Adam's first then second moments, each
        in parameter row order), or None. Zero at epoch 0: the kernels' first
        SGD-momentum step without dampening relies on it (momentum * 0 + grad).
    solved_epoch, diverged_epoch, target_epoch : (N,) int64, global epoch of
        the first solve / divergence / loss <= target, -1 while none.
    epoch : global epoch of the next update (epochs trained so far).
    init : ``params.InitSpec`` or None; ``materialise()`` makes the parameters.
    statistics : a ``Stats`` of the final outputs when the backend computed
        them where they were (the GPU backend does), else None.
    device : the GPU backend's copy of this state kept on the device between
        epoch segments (``cupy_kernel._Resident``; on several GPUs, their
        parts: ``cupy_devices._Split``), or None. While it is set,
        the host arrays above are stale; the backend's final run brings them
        back and clears it.
    """

    params: object
    lr: np.ndarray
    solved_epoch: np.ndarray
    diverged_epoch: np.ndarray
    epoch: int = 0
    init: object = None
    momentum: object = None
    weight_decay: object = None
    buffers: object = None
    target_epoch: object = None
    lr_output: object = None
    device: object = None
    statistics: object = None

    @classmethod
    def fresh(cls, params, lr, init=None, recipe=None, momentum=None, weight_decay=None, lr_output=None):
        """Epoch 0 of a run: events -1, optimizer buffers zero."""
        n = len(lr)
        nb = 0 if recipe is None else recipe.n_buffers
        dt = lr.dtype
        return cls(params, lr, np.full(n, -1, np.int64), np.full(n, -1, np.int64), 0, init,
                   momentum, weight_decay, np.zeros((nb, n), dtype=dt) if nb else None, lr_output=lr_output)

    def __post_init__(self):
        if self.target_epoch is None:  # -1: no target reached (also when none is tracked)
            self.target_epoch = np.full(len(self.lr), -1, np.int64)

    @property
    def n_networks(self):
        return len(self.lr)

    def materialise(self):
        """The (P, N) parameters, made on the host from ``init`` if needed."""
        if self.init is not None:
            self.params = self.init.make_flat()
            self.init = None
        return self.params

    def part(self, lo, hi):
        """Networks lo..hi-1 as a State of views: a backend that trains it
        trains those networks of this one in place (``init`` is cut to
        networks start+lo.., the same random streams)."""
        cut = slice(lo, hi)

        def rows(a):
            return None if a is None else a[..., cut]

        return State(rows(self.params), self.lr[cut], self.solved_epoch[cut], self.diverged_epoch[cut], self.epoch,
                     None if self.init is None else self.init.part(lo, hi), rows(self.momentum),
                     rows(self.weight_decay), rows(self.buffers), self.target_epoch[cut], rows(self.lr_output))

    def rate_rows(self, recipe):
        """(R, N) per-network coefficients in the recipe's dtype, rows named by
        ``recipe.rate_names``: lr (and the output layer's); SGD momentum and,
        with dampening, its gradient gain (1 - dampening, or 1 where that
        network has no momentum: torch then keeps no buffer); weight decay, or
        AdamW's factor 1 - lr * wd per layer (computed in float64 as torch
        does with Python floats)."""
        dt = self.lr.dtype
        n = self.n_networks
        zero = np.zeros(n)
        mom = zero if self.momentum is None else self.momentum
        wd = zero if self.weight_decay is None else self.weight_decay
        lr_out = self.lr if self.lr_output is None else self.lr_output
        rows = {
            "lr": self.lr,
            "lr_output": lr_out,
            "momentum": mom,
            "gain": np.where(mom > 0, 1.0 - recipe.dampening, 1.0),
            "weight_decay": wd,
            "decay": 1.0 - self.lr.astype(np.float64) * wd,
            "decay_output": 1.0 - lr_out.astype(np.float64) * wd,
        }
        return np.stack([np.asarray(rows[k]).astype(dt) for k in recipe.rate_names])


@dataclass(frozen=True)
class Data:
    """The S training samples and each target's side of 0.5 (see ``data.target_sides``)."""

    X: np.ndarray  # (S, D) float64
    y: np.ndarray  # (S,) float64
    sides: np.ndarray  # (S,) float64 in {-1, 0, 1}


@dataclass
class KernelOutput:
    """Buffers a segment fills: allocated once per run and reused by every segment.

    loss : (N,) and predictions : (N, S) of the parameters after the segment.
    history : (N, R) loss of the forward pass of every epoch e with
        e % record_every == 0, in column e // record_every; None without
        recording. Written in place, so segments need no merging.
    """

    loss: np.ndarray
    predictions: np.ndarray
    history: object = None

    @classmethod
    def empty(cls, n, recipe, rows=None, xp=np):
        """Uninitialised buffers; ``xp``: numpy, or cupy to keep results on a GPU."""
        dtype = recipe.dtype
        history = None if rows is None else xp.empty((n, rows), dtype=dtype)
        return cls(xp.empty(n, dtype=dtype), xp.empty((n, recipe.samples), dtype=dtype), history)

    def part(self, lo, hi):
        """Networks lo..hi-1 as views (``State.part``'s outputs)."""
        return KernelOutput(self.loss[lo:hi], self.predictions[lo:hi],
                            None if self.history is None else self.history[lo:hi])


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
        + recipe.n_buffers * item + 3 * 8  # optimizer buffers, momentum, weight decay, target epoch
        + 3 * 8 + item  # lr and init scale as float64, lr in dtype, solved/diverged epochs
        + (1 + recipe.samples) * item + 8  # loss, predictions, solved (bool) and friends
        + rows * item  # history
    )
    return n * per_net
