"""Trainability maps: a 2-D slice through learning rates or initial weights,
one training per cell, each cell coloured by how it ended.

Why: two figures recur in the study of small networks, and each is 10^6-10^8
independent trainings, what fastxor exists for. Kolen & Pollack (1990) mapped
2-D slices through the initial weights of XOR networks and found "cliffy"
basin boundaries; Sohl-Dickstein (2024, arXiv 2402.06184) mapped the (hidden
lr, output lr) plane and found the boundary between convergent and divergent
training fractal. ``lr_map`` and ``basin_map`` train every cell of such a
slice through ``fastxor.train`` (any backend), streaming in blocks so a
4096 x 4096 map needs no more memory than a block; ``Map`` holds the result
like an image (row = y) with its box-counting dimension, zoom, plot and file.
"""
import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import config
from .params import Params
from .progress import ProgressBar, check as check_progress
from .state import n_params, param_names
from .validate import check_choice, check_dtype, check_int, check_real

#: Networks trained per block: a block's state, outputs and result stay
#: a few hundred MB whatever the map's size.
BLOCK = 2**19
#: What "trainable" means: solved (every output on its target's side of 0.5
#: within the epochs); finite (never diverged: no update overflowed); or
#: converged (finite and the final loss below the start's: Sohl-Dickstein's
#: convergent, there the mean over the last 20 steps).
CRITERIA = ("solved", "finite", "converged")
#: Outcome codes besides the stuck groups 1..G.
SOLVED, DIVERGED = 0, -1
#: Stuck groups named in a map (the rest are "other stuck", code G + 1).
MAX_GROUPS = 6
#: Per-cell outputs are kept (quantised to 8 bits) for the stuck grouping up
#: to this many values; above, every stuck cell is one outcome, "stuck".
OUTPUTS_KEPT_MAX = 2**28
#: Parameters the hidden-layer and output-layer rates of an lr map replace.
_AXIS_OPTIONS = ("lr", "lr_output")
_NOT_OPTIONS = ("n_networks", "init", "seed", "start", "init_scale", "progress", "interruptible", "device_arrays")


@dataclass(repr=False)
class Map:
    """A trained 2-D slice: per-cell arrays of shape (len(y), len(x)), row = y.

    kind : "lr" (x: hidden-layer lr, y: output-layer lr) or "basin" (x, y:
        coefficients of the two directions added to the centre network).
    x, y : the cells' coordinates (float64 cell centres); ``log``: spaced
        geometrically (the plot's axes are then logarithmic).
    solved_epoch, diverged_epoch : first epoch solved / diverged, -1 never.
    loss : the final loss (float64); initial_loss: the start's.
    outcome : 0 solved, 1..G the unsolved cells grouped by where their
        outputs ended (largest group first; ``TrainResult.stuck_groups``),
        G + 1 the smaller groups, -1 diverged; ``outcome_labels`` names each.
    criterion : what ``trainable`` means: "solved", "finite" (not diverged)
        or "converged" (finite, final loss below the initial one).
    spec : everything that made the map (for ``zoom`` and the file).
    resolved : whether the training dtype tells every cell's coordinates
        apart (a float32 map zoomed far enough has cells with equal rates).
    """

    kind: str
    x: np.ndarray
    y: np.ndarray
    log: bool
    solved_epoch: np.ndarray
    diverged_epoch: np.ndarray
    loss: np.ndarray
    outcome: np.ndarray
    outcome_labels: dict
    criterion: str
    spec: dict
    initial_loss: np.ndarray = None
    resolved: bool = True
    seconds: float = field(default=0.0, compare=False)

    @property
    def shape(self):
        return self.outcome.shape

    def __repr__(self):  # the dataclass's would print every per-cell array
        return (f"<fastxor.Map {self.kind} {self.shape[1]} x {self.shape[0]}, {self.spec['epochs']} epochs, "
                f"{100 * self.trainable.mean():.1f} % trainable ({self.criterion})>")

    def _repr_html_(self):  # Jupyter: the map's image and its summary
        from .notebook import html_repr, png_of

        return html_repr("Map", self.summary(), png_of(self.plot))

    @property
    def diverged(self):
        return self.diverged_epoch >= 0

    @property
    def solved(self):
        return self.solved_epoch >= 0

    @property
    def trainable(self):
        """Per cell: solved, never diverged, or converged (see ``criterion``)."""
        if self.criterion == "solved":
            return self.solved
        if self.criterion == "finite":
            return ~self.diverged
        return ~self.diverged & (self.loss < self.initial_loss)

    def boundary_dimension(self, min_boxes=8):
        """(estimate, (lo, hi)): the box-counting dimension of the boundary
        between trainable and untrainable cells. See ``box_counting``."""
        return box_counting(self.trainable, min_boxes)

    def zoom(self, center, factor, resolution=None, progress=None):
        """A new map around ``center`` (x, y in the axes' units), ``factor``
        times narrower on each axis (in log space for log axes), trained
        the same way; ``resolution`` defaults to this map's. Deterministic:
        the same arguments give the same map."""
        cx = check_real("center[0]", center[0])
        cy = check_real("center[1]", center[1])
        factor = check_real("factor", factor, low=0.0, low_open=True)
        spec = dict(self.spec)
        ranges = []
        for name, c, (lo, hi) in (("x", cx, spec["x_range"]), ("y", cy, spec["y_range"])):
            if self.log:
                if c <= 0:
                    raise ValueError(f"center {name}={c!r} must be > 0 on a logarithmic axis")
                half = (math.log10(hi) - math.log10(lo)) / 2 / factor
                ranges.append((10 ** (math.log10(c) - half), 10 ** (math.log10(c) + half)))
            else:
                half = (hi - lo) / 2 / factor
                ranges.append((c - half, c + half))
        spec["x_range"], spec["y_range"] = ranges
        if resolution is not None:
            spec["resolution"] = _resolution(resolution)
        return _train_map(spec, progress)

    def summary(self):
        """A few lines: the map's grid, its outcomes' shares, the boundary's dimension."""
        n = self.outcome.size
        rx, ry = self.spec["resolution"]
        what = ("hidden-layer lr x output-layer lr" if self.kind == "lr"
                else f"{self.spec['directions_label'][0]} x {self.spec['directions_label'][1]}")
        lines = [f"{self.kind} map {rx} x {ry} ({what}), x {_span(self.x)}, y {_span(self.y)}, "
                 f"{self.spec['epochs']} epochs, {self.spec['train'].get('dtype', 'float32')}, "
                 f"trainable = {self.criterion}" + (f", {self.seconds:.1f} s" if self.seconds else "")]
        codes, counts = np.unique(self.outcome, return_counts=True)
        for c, k in sorted(zip(codes.tolist(), counts.tolist()), key=lambda t: -t[1]):
            lines.append(f"  {100 * k / n:6.2f} %  {self.outcome_labels[c]}")
        try:
            d, (lo, hi) = self.boundary_dimension()
            lines.append(f"boundary dimension (box counting): {d:.3f} (scales give {lo:.3f}..{hi:.3f})")
        except ValueError as exc:
            lines.append(f"boundary dimension: {exc}")
        if not self.resolved:
            lines.append(RESOLUTION_NOTE.format(dtype=self.spec["train"].get("dtype")))
        return "\n".join(lines)

    def plot(self, path):
        """A PNG of the map: solved cells shaded by their solved epoch (colour
        bar), each stuck group and divergence in its own colour, log axes
        where the map is logarithmic. Needs matplotlib."""
        from .plots import plot_map

        return plot_map(self, path)

    def save(self, path):
        """Save to ``path`` (.npz); ``Map.load`` reads it back."""
        from .machine import versions
        from .results_file import write

        arrays = dict(x=self.x, y=self.y, solved_epoch=self.solved_epoch, diverged_epoch=self.diverged_epoch,
                      loss=self.loss, outcome=self.outcome, initial_loss=self.initial_loss)
        meta = dict(map=dict(kind=self.kind, log=self.log, criterion=self.criterion, resolved=self.resolved,
                             seconds=self.seconds, outcome_labels={str(k): v for k, v in self.outcome_labels.items()},
                             spec=_jsonable(self.spec)), versions=versions())
        if self.spec.get("center") is not None:
            arrays["center"] = np.asarray(self.spec["center"])
        if self.spec.get("directions") is not None:
            arrays["directions"] = np.asarray(self.spec["directions"])
        return write(path, arrays, meta)

    @classmethod
    def load(cls, path):
        """The map saved at ``path``."""
        from .results_file import read

        arrays, meta = read(path)
        m = meta.get("map")
        need = ("x", "y", "solved_epoch", "diverged_epoch", "loss", "outcome", "initial_loss")
        if not isinstance(m, dict) or any(k not in arrays for k in need):
            raise ValueError(f"{path} is a fastxor results file but not a map (fastxor map --out writes those)")
        spec = dict(m["spec"])
        spec["x_range"], spec["y_range"] = tuple(spec["x_range"]), tuple(spec["y_range"])
        spec["resolution"] = tuple(spec["resolution"])
        spec["center"] = arrays.get("center")
        spec["directions"] = arrays.get("directions")
        return cls(m["kind"], arrays["x"], arrays["y"], m["log"], arrays["solved_epoch"], arrays["diverged_epoch"],
                   arrays["loss"], arrays["outcome"], {int(k): v for k, v in m["outcome_labels"].items()},
                   m["criterion"], spec, arrays["initial_loss"], m["resolved"], m.get("seconds", 0.0))


RESOLUTION_NOTE = ("note: {dtype} cannot tell every cell's coordinates apart at this zoom (neighbouring cells "
                   "train identical networks); train with dtype='float64' to resolve them")


def lr_map(hidden_lr=(1e-2, 1e2), output_lr=(1e-2, 1e2), resolution=256, epochs=1000, *, init="philox", seed=0,
           index=0, hidden=None, log=True, criterion=None, dtype="float64", backend="auto", progress=None,
           block=BLOCK, **train_options):
    """Train one network from the same start at every (hidden-layer lr,
    output-layer lr) of a grid: cell (i, j) has ``lr = x[j]`` (W1, b1) and
    ``lr_output = y[i]`` (W2, b2), as ``fastxor.train(lr=..., lr_output=...)``.

    hidden_lr, output_lr : (lo, hi), each > 0; the cell centres span them,
        geometrically with ``log`` (the default) else evenly.
    resolution : R (R x R cells) or (Rx, Ry).
    init : "philox" or "torch" (network ``index`` of ``seed``, width
        ``hidden``, default 2) or a ``Params`` holding one network.
    criterion : what counts as trainable: "solved", "finite" (never
        diverged) or "converged" (finite, and the final loss below the
        start's); default "converged" for ``output="linear"`` (where
        training can diverge: Sohl-Dickstein's setting), else "solved".
    dtype : "float64" by default: cells ten decades of zoom apart differ in
        the 11th digit, beyond float32's (a float32 map says where it stops
        resolving them).
    progress : None, True (a progress bar: a terminal, a notebook or a log)
        or ``f(done, total)`` in network-epochs.
    train_options : any other ``fastxor.train`` option (function, X/y,
        optimizer, loss, activation, output, momentum, ...).
    """
    spec = _spec("lr", hidden_lr, output_lr, resolution, epochs, log, criterion, dtype, backend, block,
                 train_options, init, seed, index, hidden)
    return _train_map(spec, progress)


def basin_map(center="philox", directions=("W1[0,0]", "W1[1,1]"), extent=1.0, resolution=256, epochs=1000, *,
              seed=0, index=0, hidden=None, direction_seed=0, filter_normalize=False, criterion=None,
              dtype="float64", backend="auto", progress=None, block=BLOCK, **train_options):
    """Train from every point of a plane through initial-weight space: cell
    (i, j) starts from ``center + x[j] u + y[i] v`` (Kolen & Pollack's maps).

    center : "philox" or "torch" (network ``index`` of ``seed``, width
        ``hidden``) or a ``Params`` holding one network.
    directions : two parameter names ("W1[0,0]", "b1[1]", "W2[0,1]", "b2";
        u, v are those unit vectors), or "random": two orthonormal Gaussian
        directions from ``direction_seed``; with ``filter_normalize`` each
        neuron's incoming weights in them are rescaled to that neuron's norm
        in the centre and the biases' entries zeroed (Li et al. 2018,
        "Visualizing the loss landscape of neural nets").
    extent : e (x, y in [-e, e]) or ((x_lo, x_hi), (y_lo, y_hi)).
    criterion, dtype, progress, train_options : as ``lr_map`` (lr and
        lr_output here are ordinary train options).
    """
    spec = _spec("basin", None, None, resolution, epochs, False, criterion, dtype, backend, block, train_options,
                 center, seed, index, hidden, extent=extent)
    p = Params.from_flat(np.asarray(spec["center"])[:, None], spec["hidden"], spec["inputs"])
    u, v, labels = _directions(directions, p, direction_seed, filter_normalize)
    spec.update(directions=np.stack([u, v]), directions_label=labels, filter_normalize=bool(filter_normalize),
                direction_seed=int(direction_seed))
    return _train_map(spec, progress)


def _span(a):
    return f"{a[0]:.6g}..{a[-1]:.6g}" if len(a) > 1 else f"{a[0]:.6g}"


def _resolution(resolution):
    r = (resolution, resolution) if np.ndim(resolution) == 0 else tuple(resolution)
    if len(r) != 2:
        raise ValueError(f"resolution must be R or (Rx, Ry), got {resolution!r}")
    return tuple(check_int(f"resolution[{i}]", v, 2, 65536) for i, v in enumerate(r))


def _range(name, value, positive):
    if np.ndim(value) != 1 or len(value) != 2:
        raise ValueError(f"{name} must be a pair (lo, hi), got {value!r}")
    lo = check_real(f"{name}[0]", value[0], low=0.0 if positive else None, low_open=positive)
    hi = check_real(f"{name}[1]", value[1], low=0.0 if positive else None, low_open=positive)
    if not hi > lo:
        raise ValueError(f"{name} must have lo < hi, got {value!r}")
    return lo, hi


def _spec(kind, xr, yr, resolution, epochs, log, criterion, dtype, backend, block, train_options, init, seed, index,
          hidden, extent=None):
    """The checked description of a map (what ``Map.spec`` keeps)."""
    from .training import _training_data

    bad = [k for k in train_options if k in _NOT_OPTIONS or (kind == "lr" and k in _AXIS_OPTIONS)]
    if bad:
        axes = " (the map's axes)" if kind == "lr" and set(bad) & set(_AXIS_OPTIONS) else ""
        raise TypeError(f"{bad[0]} is not an option of a map{axes}: each cell is one network from the map's "
                        "own start")
    from .options import BY_NAME

    unknown = [k for k in train_options if k not in BY_NAME and k not in ("X", "y", "fast_math")]
    if unknown:
        raise TypeError(f"unknown option {unknown[0]!r}; a map takes fastxor.train's options")
    arrays = [k for k, v in train_options.items() if k not in ("X", "y", "betas") and np.ndim(v) > 0]
    if arrays:
        raise ValueError(f"{arrays[0]} must be one number for the whole map (a map's cells differ only along its axes)")
    dt = check_dtype(dtype)
    epochs = check_int("epochs", epochs, 0, config.EPOCHS_MAX)
    block = check_int("block", block, 1, 2**30)
    res = _resolution(resolution)
    X, y, fn = _training_data(train_options.get("function"), train_options.get("X"), train_options.get("y"))
    output = train_options.get("output", "sigmoid")
    criterion = criterion or ("converged" if output == "linear" else "solved")
    check_choice("criterion", criterion, CRITERIA)
    if kind == "lr":
        x_range, y_range = _range("hidden_lr", xr, True), _range("output_lr", yr, True)
    else:
        if np.ndim(extent) == 0:
            e = check_real("extent", extent, low=0.0, low_open=True)
            x_range = y_range = (-e, e)
        else:
            if np.shape(extent) != (2, 2):
                raise ValueError(f"extent must be e or ((x_lo, x_hi), (y_lo, y_hi)), got {extent!r}")
            x_range, y_range = _range("extent[0]", extent[0], False), _range("extent[1]", extent[1], False)
    center, hidden = _one_network(init, seed, index, hidden, X.shape[1], dt)
    opts = {k: v for k, v in train_options.items() if k not in ("X", "y", "function")}
    return dict(kind=kind, x_range=x_range, y_range=y_range, resolution=res, epochs=epochs, log=bool(log),
                criterion=criterion, block=block, train=dict(opts, dtype=np.dtype(dt).name, backend=backend),
                X=X.tolist(), y=y.tolist(), function=fn, center=center, hidden=hidden, inputs=X.shape[1],
                init=init if isinstance(init, str) else "given", seed=seed, index=index)


def _one_network(init, seed, index, hidden, inputs, dt):
    """The start (or centre) of a map, as flat float64 (P,), and its width."""
    if isinstance(init, Params):
        if init.n_networks != 1:
            raise ValueError(f"init must hold one network, got {init.n_networks} (take one: params[i:i + 1])")
        if init.inputs != inputs:
            raise ValueError(f"init has D={init.inputs} inputs, but the data has {inputs}")
        return init.to_flat().astype(np.float64)[:, 0], init.hidden
    if init not in ("philox", "torch"):
        raise ValueError(f"init must be 'philox', 'torch' or a fastxor.Params of one network, got {init!r}")
    from .inits import initial_parameters

    hidden = check_int("hidden", 2 if hidden is None else hidden, config.HIDDEN_MIN, config.HIDDEN_MAX)
    seed = check_int("seed", seed, 0, config.SEED_MAX)
    index = check_int("index", index, 0, 2**63)
    flat, _ = initial_parameters(init, 1, hidden, seed, index, np.ones(1), dt, inputs)
    return flat.astype(np.float64)[:, 0], hidden


_NAME = re.compile(r"^(W1|b1|W2|b2)(?:\[(\d+)(?:,\s*(\d+))?\])?$")


def parameter_row(name, hidden, inputs):
    """The flat row of a parameter named like "W1[0,1]", "b1[1]", "W2[0,1]" or "b2"."""
    m = _NAME.match(name.strip()) if isinstance(name, str) else None
    if not m:
        raise ValueError(f"direction {name!r} must name a parameter: W1[j,i], b1[j], W2[0,j] or b2")
    field_, a, b = m.group(1), m.group(2), m.group(3)
    idx = [int(t) for t in (a, b) if t is not None]
    if field_ == "W1":
        ok, j, i = len(idx) == 2, *(idx + [0, 0])[:2]
        row = f"w1_{j}_{i}" if ok and j < hidden and i < inputs else None
    elif field_ == "W2":
        ok = len(idx) == 2 and idx[0] == 0 and idx[1] < hidden
        row = f"w2_{idx[1]}" if ok else None
    elif field_ == "b1":
        row = f"b1_{idx[0]}" if len(idx) == 1 and idx[0] < hidden else None
    else:
        row = "b2" if idx in ([], [0]) else None
    if row is None:
        raise ValueError(f"direction {name!r} is not a parameter of a {inputs}-{hidden}-1 network: W1[j,i] "
                         f"(j < {hidden}, i < {inputs}), b1[j], W2[0,j] or b2")
    return param_names(hidden, inputs).index(row)


def _directions(directions, center, direction_seed, filter_normalize):
    """(u, v, labels): the two directions as flat float64 (P,) vectors."""
    h, d = center.hidden, center.inputs
    P = n_params(h, d)
    if isinstance(directions, str):
        if directions != "random":
            raise ValueError(f"directions must be two parameter names or 'random', got {directions!r}")
        rng = np.random.default_rng(check_int("direction_seed", direction_seed, 0, 2**63))
        g = rng.standard_normal((2, P))
        q, _ = np.linalg.qr(g.T)  # orthonormal columns spanning the two draws
        u, v = q[:, 0], q[:, 1]
        if filter_normalize:
            u, v = (_filter_normalized(w, center) for w in (u, v))
        label = "random" + (" (filter-normalised)" if filter_normalize else "")
        return u, v, (label + " u", label + " v")
    if len(directions) != 2:
        raise ValueError(f"directions must be two parameter names or 'random', got {directions!r}")
    rows = [parameter_row(n, h, d) for n in directions]
    if rows[0] == rows[1]:
        raise ValueError(f"directions must name two different parameters, got {directions!r}")
    if filter_normalize:
        raise ValueError("filter_normalize applies to directions='random'")
    u, v = np.zeros(P), np.zeros(P)
    u[rows[0]], v[rows[1]] = 1.0, 1.0
    return u, v, tuple(str(n) for n in directions)


def _filter_normalized(w, center):
    """Li et al.'s filter normalisation of direction ``w`` at ``center``: each
    neuron's incoming weights (a row of W1, W2) scaled to the centre's norm
    there; the biases' entries zero."""
    h, d = center.hidden, center.inputs
    dirn = Params.from_flat(w[:, None].copy(), h, d)
    c = center.astype(np.float64)
    W1 = dirn.W1[0] * (np.linalg.norm(c.W1[0], axis=1) / np.maximum(np.linalg.norm(dirn.W1[0], axis=1), 1e-300))[:, None]
    W2 = dirn.W2[0] * (np.linalg.norm(c.W2[0]) / max(np.linalg.norm(dirn.W2[0]), 1e-300))
    return Params(W1[None], np.zeros((1, h)), W2[None], np.zeros((1, 1))).to_flat()[:, 0]


def _axis(lo, hi, n, log):
    """Cell centres spanning [lo, hi]: geometric or even, exact at both ends."""
    if log:
        a = 10 ** np.linspace(math.log10(lo), math.log10(hi), n)
    else:
        a = np.linspace(lo, hi, n)
    a[0], a[-1] = lo, hi
    return a


def _resolves(values, dt):
    """Whether ``values`` (float64, increasing) stay distinct in ``dt``."""
    cast = np.asarray(values).astype(dt)
    return bool(np.all(np.diff(cast) > 0))


def _train_map(spec, progress):
    """Train every cell of ``spec`` in blocks; the Map."""
    import time

    from .training import train

    t0 = time.perf_counter()
    rx, ry = spec["resolution"]
    log = spec["log"] if spec["kind"] == "lr" else False
    x = _axis(*spec["x_range"], rx, log)
    y = _axis(*spec["y_range"], ry, log)
    opts = dict(spec["train"])
    dt = np.dtype(opts["dtype"])
    X, Y = np.array(spec["X"]), np.array(spec["y"])
    n, S, epochs = rx * ry, len(Y), spec["epochs"]
    if check_progress(progress) is False:
        progress = None
    if progress is True:  # the bar counts cells x epochs as networks x epochs
        bar = ProgressBar(n, label=f"{spec['kind']} map")
        progress = lambda done, total: bar(done / n, total / n)  # noqa: E731
    center = np.asarray(spec["center"], dtype=np.float64)
    if spec["kind"] == "lr":
        resolved = _resolves(x, dt) and _resolves(y, dt)
    else:
        u, v = np.asarray(spec["directions"])
        corners = [center + a * u + b * v for a in (x[0], x[1], x[-2], x[-1]) for b in (y[0], y[1], y[-2], y[-1])]
        resolved = all(np.any(c.astype(dt) != d.astype(dt)) for c, d in zip(corners[:-1], corners[1:]))
    if not resolved:
        warnings.warn(RESOLUTION_NOTE.format(dtype=dt.name), stacklevel=3)
    solved = np.empty(n, np.int32)  # epochs fit: EPOCHS_MAX < 2^31
    diverged = np.empty(n, np.int32)
    loss = np.empty(n, np.float64)
    start_loss = np.empty(n, np.float64) if spec["kind"] == "basin" else None
    keep = n * S <= OUTPUTS_KEPT_MAX
    outputs = np.empty((n, S), np.uint8) if keep else None
    P = len(center)
    h, d = spec["hidden"], spec["inputs"]
    block = spec["block"]
    for lo in range(0, n, block):
        m = min(block, n - lo)
        cells = np.arange(lo, lo + m)
        i, j = np.divmod(cells, rx)  # row i: y, column j: x
        if spec["kind"] == "lr":
            flat = np.broadcast_to(center.astype(dt)[:, None], (P, m))
            cell_opts = dict(opts, lr=x[j], lr_output=y[i])
        else:
            flat = (center[:, None] + np.outer(u, x[j]) + np.outer(v, y[i])).astype(dt)
            cell_opts = opts
        p = Params.from_flat(np.ascontiguousarray(flat), h, d)
        cb = None
        if progress is not None:
            cb = (lambda lo_, m_: (lambda e, total: progress(lo_ * epochs + m_ * e, n * epochs)))(lo, m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            # the loss history's one column is epoch 0's: each start's loss, from the kernel's own forward pass
            r = train(init=p, epochs=epochs, X=X, y=Y, progress=cb, record_every=max(epochs, 1), **cell_opts)
        first = r.loss_history[:, 0] if epochs else r.loss
        if spec["kind"] == "basin":
            start_loss[lo:lo + m] = first
        elif lo == 0:  # every cell of an lr map starts from the same network
            start_loss = np.broadcast_to(np.float64(first[0]), (n,))
        solved[lo:lo + m] = r.solved_epoch
        diverged[lo:lo + m] = r.diverged_epoch
        loss[lo:lo + m] = r.loss
        if keep:
            outputs[lo:lo + m] = _quantised(r.predictions)
        del r, p, flat
    outcome, labels = _outcomes(solved, diverged, loss, outputs)
    shape = (ry, rx)
    return Map(spec["kind"], x, y, log, solved.reshape(shape), diverged.reshape(shape), loss.reshape(shape),
               outcome.reshape(shape), labels, spec["criterion"], spec, start_loss.reshape(shape), resolved,
               time.perf_counter() - t0)


def _quantised(pred):
    """Outputs as 8 bits for grouping: [0, 1] in 1/255 steps (a linear
    output is clipped there; NaN reads as 0.5)."""
    q = np.asarray(pred, dtype=np.float64) * 255.0
    q = np.where(np.isnan(q), 127.5, q)
    return np.clip(np.round(q), 0, 255).astype(np.uint8)


def _outcomes(solved, diverged, loss, outputs):
    """(outcome codes, labels): solved, the stuck groups by where the outputs
    ended (``result.group_stuck``), diverged."""
    from .result import group_stuck

    code = np.full(len(solved), SOLVED, np.int8)
    is_div = diverged >= 0
    stuck = (solved < 0) & ~is_div
    labels = {SOLVED: "solved"}
    if outputs is None:
        code[stuck] = 1
        labels[1] = "unsolved (outputs not kept: a map of more than 2^28 outputs)"
    elif stuck.any():
        group, groups = group_stuck(outputs, loss, stuck, max_groups=MAX_GROUPS, unit=255.0)
        code[stuck] = 1 + group[stuck]
        del group
        for g, info in enumerate(groups):
            outs = ", ".join(f"{v:.2f}" for v in info["outputs"][:8]) + (", ..." if len(info["outputs"]) > 8 else "")
            labels[1 + g] = f"unsolved, outputs near ({outs})"
        if (code == 1 + len(groups)).any():
            labels[1 + len(groups)] = "unsolved elsewhere (smaller groups)"
    code[is_div] = DIVERGED
    if is_div.any():
        labels[DIVERGED] = "diverged"
    return code, labels


def box_counting(mask, min_boxes=8):
    """(estimate, (lo, hi)): the box-counting dimension of the boundary of the
    boolean image ``mask`` (cells where it differs from its right or lower
    neighbour), over box sides s = 2, 4, 8, ... cells up to a side that
    leaves ``min_boxes`` boxes across the shorter axis (from s = 1 on maps
    too small for three such scales).

    The estimate is the least-squares slope of log N(s) against log(1/s)
    over all those scales; (lo, hi) the smallest and largest slope over
    every window of three consecutive scales: how much the scales disagree
    (a straight line or a circle gives 1 at every scale; a fractal, its
    dimension; a boundary that is smooth below some scale, a range). Not
    a confidence interval: over two or three decades of scale box counting
    reads rough boundaries low (measured at 1024^2: a Koch snowflake,
    dimension 1.262, gives 1.221 in (1.16, 1.27); a Brownian graph, 1.5,
    gives about 1.3), which is why the field zooms in (``Map.zoom``).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be a 2-D boolean image, got shape {mask.shape}")
    edge = np.zeros(mask.shape, dtype=bool)
    edge[:, :-1] |= mask[:, 1:] != mask[:, :-1]
    edge[:-1, :] |= mask[1:, :] != mask[:-1, :]
    if not edge.any():
        raise ValueError("no boundary in this map: every cell is " + ("trainable" if mask.all() else "untrainable"))
    sides = []
    s = 1
    while min(mask.shape) // s >= min_boxes:
        sides.append(s)
        s *= 2
    if len(sides) < 3:
        raise ValueError(f"a map of {mask.shape[1]} x {mask.shape[0]} cells is too small for box counting "
                         f"(needs {min_boxes * 4} cells a side)")
    if len(sides) >= 4:
        sides = sides[1:]  # one cell: the raster's own staircase reads as a straight edge there
    counts = []
    for s in sides:
        ry, rx = -(-mask.shape[0] // s) * s, -(-mask.shape[1] // s) * s
        padded = np.zeros((ry, rx), dtype=bool)
        padded[:mask.shape[0], :mask.shape[1]] = edge
        counts.append(int(padded.reshape(ry // s, s, rx // s, s).any(axis=(1, 3)).sum()))
    lx, ly = -np.log(np.array(sides, float)), np.log(np.array(counts, float))
    slope = float(np.polyfit(lx, ly, 1)[0])
    local = [float(np.polyfit(lx[k:k + 3], ly[k:k + 3], 1)[0]) for k in range(len(sides) - 2)]
    return slope, (min(local + [slope]), max(local + [slope]))


def _jsonable(spec):
    out = {}
    for k, v in spec.items():
        if k in ("center", "directions"):
            continue  # arrays: stored as arrays
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, dict):
            v = {a: (b.tolist() if isinstance(b, np.ndarray) else b) for a, b in v.items()}
        out[k] = v
    return out
