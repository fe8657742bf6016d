"""Hyper-parameter sweeps: a grid of (lr, output lr, init scale, momentum,
weight decay) x seeds in one launch per compiled variant.

Why one launch: the learning rates, init scale, momentum and weight decay are
per-network inputs of the kernels, so every grid cell of one variant trains
in the same batch (data, hidden width, optimizer, loss, activation and output
unit change the kernel, so each combination of them is its own batch). Every cell uses
the same seeds (network i of each cell starts from the same draw, scaled):
common random numbers, so differences between cells are not seed noise.
"""
import contextlib
import csv

import numpy as np

from . import config
from .inits import initial_parameters
from .options import DEFAULTS as D
from .options import SWEEP_NETWORKS
from .outputs import HeldSignals
from .params import Params
from .progress import ProgressBar, check as check_progress
from .data import check_targets
from .stats import Stats, loss_bin_centres
from .validate import check_dtype, check_in_dtype, check_int, check_real, check_recipe

COLUMNS = (
    ("function", "U16"), ("hidden", "i8"), ("lr", "f8"), ("init_scale", "f8"), ("networks", "i8"), ("solved", "i8"),
    ("success_rate", "f8"), ("ci95_low", "f8"), ("ci95_high", "f8"), ("diverged", "i8"),
    ("solved_epoch_q25", "f8"), ("solved_epoch_median", "f8"), ("solved_epoch_q75", "f8"),
    ("loss_median", "f8"), ("epochs", "i8"), ("optimizer", "U5"), ("loss", "U10"), ("activation", "U7"),
    ("momentum", "f8"), ("weight_decay", "f8"), ("target_loss", "f8"), ("target_rate", "f8"),
    ("target_epoch_median", "f8"), ("lr_output", "f8"), ("output", "U7"),
)
#: Columns a CSV from an older fastxor may lack, with the value they had then.
_ADDED = {"function": "", "lr_output": None, "output": "sigmoid"}


def _values(name, values, check):
    if np.isscalar(values) or isinstance(values, str):
        values = [values]
    values = [check(name, v) for v in values]
    if not values:
        raise ValueError(f"{name} must list at least one value")
    return values


def sweep(
    lr=(D["lr"],), hidden=(D["hidden"],), init_scale=(D["init_scale"],), *, networks=SWEEP_NETWORKS, epochs=D["epochs"],
    seed=D["seed"], init=D["init"], function=None, X=None, y=None, dtype=D["dtype"], backend="auto", progress=None,
    optimizer=(D["optimizer"],), loss=(D["loss"],), activation=(D["activation"],), momentum=(D["momentum"],),
    weight_decay=(D["weight_decay"],), dampening=D["dampening"], nesterov=D["nesterov"], betas=D["betas"],
    eps=D["eps"], target_loss=D["target_loss"], client=None, shard_networks="auto", interruptible=False,
    lr_output=(D["lr_output"],), output=(D["output"],),
):
    """Train ``networks`` seeds at every grid point of function x hidden x
    optimizer x loss x activation x output x lr x lr_output x init_scale x
    momentum x weight_decay (each a value or a list; the other recipe options
    as ``train``'s; lr_output None: the cell's lr, its column then equal to lr).

    ``init``: "philox" (fastxor's deterministic init, seed ``seed``) or
    "torch" (PyTorch's for seeds seed..seed+networks-1, times init_scale).
    ``function`` (a name or truth table, or a list of them: a grid axis, e.g.
    ["parity2", "parity3", "parity4"]) or ``X``/``y``: the training data, as
    in ``train``; the ``function`` column names it ("custom" for X/y).
    ``progress``: None, True (a progress bar per launch: a terminal, a
    notebook or a log) or ``f(label, done, total)``, label naming the
    launch. ``client``: a ``distributed.Client`` or scheduler address: every
    cell's networks train as shards on that Dask cluster
    (``fastxor.distributed``; ``shard_networks`` per shard), with the same
    rows as here. Returns one row per cell, columns ``COLUMNS`` (target columns
    NaN without ``target_loss``): a pandas DataFrame when pandas is
    installed (a ``SweepTable``, whose ``to_xarray()`` is the grid), else a
    NumPy structured array.

    ``interruptible``: Ctrl-C or SIGTERM ends the sweep at the end of the
    running segment; the table then holds the finished launches' rows, the
    interrupted launch's at the epoch it reached (its ``epochs`` column), and
    none for launches not started (``interrupted(table, epochs, cells)`` tells).
    """
    from . import backends
    from .state import ACTIVATIONS, LOSSES, OPTIMIZERS, OUTPUTS, Recipe, n_params
    from .training import _training_data, check_memory
    from .validate import check_choice

    lrs = _values("lr", lr, lambda n, v: check_real(n, v, low=0.0, low_open=True))
    lr_outs = _values("lr_output", (None,) if lr_output is None else lr_output,
                      lambda n, v: None if v is None else check_real(n, v, low=0.0, low_open=True))
    if None in lr_outs and len(lr_outs) > 1:
        raise ValueError("lr_output must list rates, or be None (each cell's lr), not both")
    outputs = _values("output", output, lambda n, v: check_choice(n, v, OUTPUTS))
    widths = _values("hidden", hidden, lambda n, v: check_int(n, v, config.HIDDEN_MIN, config.HIDDEN_MAX))
    scales = _values("init_scale", init_scale, lambda n, v: check_real(n, v, low=0.0))
    moms = _values("momentum", momentum, lambda n, v: check_real(n, v, low=0.0))
    wds = _values("weight_decay", weight_decay, lambda n, v: check_real(n, v, low=0.0))
    opts = _values("optimizer", optimizer, lambda n, v: check_choice(n, v, OPTIMIZERS))
    losses = _values("loss", loss, lambda n, v: check_choice(n, v, LOSSES))
    acts = _values("activation", activation, lambda n, v: check_choice(n, v, ACTIVATIONS))
    networks = check_int("networks", networks, 1, 2**40)
    seed = check_int("seed", seed, 0, config.SEED_MAX)
    dt = check_dtype(dtype)
    progress = check_progress(progress, "f(label, done, total)") or None
    if init not in ("philox", "torch"):
        raise ValueError(f"init must be 'philox' or 'torch', got {init!r}")
    functions = [None] if function is None else _values("function", function, lambda n, v: v)
    data = {f: _training_data(f, X, y)[:2] for f in functions}  # every data set checked before the first launch
    cells = [(a, s, m, w, b) for s in scales for a in lrs for b in lr_outs for m in moms for w in wds]
    total = networks * len(cells)
    launches = [(f, h, o, lo, ac, out) for f in functions for h in widths for o in opts for lo in losses
                for ac in acts for out in outputs]
    for name, values in (("lr", lrs), ("init_scale", scales)):  # momentum, weight decay, eps: check_recipe
        check_in_dtype(name, np.array(values, dtype=float), dt, nonzero=name == "lr")
    for f, h, o, lo, ac, out in launches:  # every launch's options refused before the first launch trains
        if o != "sgd" and any(moms):
            raise ValueError(f"momentum applies to optimizer='sgd'; the grid has optimizer {o!r} with "
                             f"momentum {max(moms):g} (sweep SGD and Adam separately)")
        for m in moms:
            for w in wds:
                check_recipe(1, dt, optimizer=o, momentum=m, dampening=dampening, nesterov=nesterov, weight_decay=w,
                             betas=betas, eps=eps, loss=lo, activation=ac, target_loss=target_loss, output=out,
                             lr_output=lr_outs[0])
        for b in lr_outs[1:]:
            check_recipe(1, dt, lr_output=b)
        check_targets(data[f][1], lo)
        inputs, samples = data[f][0].shape[1], len(data[f][1])
        recipe = Recipe(h, np.dtype(dt), inputs=inputs, samples=samples, optimizer=o, momentum=any(moms))
        check_memory(backends.choose(backend, total), total, recipe, epochs, 0,
                     extra=total * n_params(h, inputs) * 8 * 2)  # each cell's start and the grid's concatenation
    if client is not None:
        return _table(_sweep_on_cluster(client, shard_networks, launches, cells, networks, dict(
            epochs=epochs, seed=seed, init=init, X=X, y=y, dtype=dtype, backend=backend,
            dampening=dampening, nesterov=nesterov, betas=betas, eps=eps, target_loss=target_loss)))
    rows = []
    held = HeldSignals() if interruptible else contextlib.nullcontext()
    with held:  # a signal between launches (while one is set up) stops before the next
        for launch in launches:
            if interruptible and held.hit:
                break
            r = _launch(launch, cells, scales, networks, init, seed, dt, data[launch[0]][0].shape[1], progress,
                        interruptible, dict(
                epochs=epochs, X=X, y=y, dtype=dtype, backend=backend, dampening=dampening,
                nesterov=nesterov, betas=betas, eps=eps, target_loss=target_loss))
            for c, (a, s, m, w, b) in enumerate(cells):
                sl = slice(c * networks, (c + 1) * networks)
                st = Stats.of_arrays(dict(r.config, lr=a, momentum=m, weight_decay=w, lr_output=b), r.solved[sl],
                                     r.diverged[sl], r.solved_epoch[sl], r.loss[sl], r.predictions[sl],
                                     None if r.target_epoch is None else r.target_epoch[sl])
                rows.append(row(st, launch[1], a, s, m, w, b))
            if r.config.get("interrupted"):
                break
    return _table(rows)


def interrupted(table, epochs, cells):
    """Whether a sweep's table stops short of its grid of ``cells`` cells
    trained ``epochs`` epochs each (an interrupted sweep)."""
    records = table.to_records(index=False) if hasattr(table, "to_records") else table
    return len(records) < cells or bool((np.asarray(records["epochs"]) < epochs).any())


def _launch(launch, cells, scales, networks, init, seed, dt, inputs, progress, interruptible, options):
    """One launch of the grid: every cell's networks in one ``train`` call,
    every cell starting from the same seeds, scaled; ``inputs``: the data's D."""
    from .training import train

    f, h, o, lo, ac, out = launch
    starts = {s: initial_parameters(init, networks, h, seed, 0, np.full(networks, s), dt, inputs)[0] for s in scales}
    p = Params.from_flat(np.concatenate([starts[c[1]] for c in cells], axis=1), h, inputs)
    per_net = [np.repeat([c[i] for c in cells], networks) for i in (0, 2, 3)]
    lr_out = None if cells[0][4] is None else np.repeat([c[4] for c in cells], networks)
    label = (f"{f} " if f else "") + f"hidden={h} {o}/{lo}/{ac}" + ("" if out == "sigmoid" else f"/{out} output")
    if progress is True:  # a bar per launch, its label first
        cb = ProgressBar(len(cells) * networks, label=label)
    else:
        cb = (lambda d, t: progress(label, d, t)) if progress else None
    return train(init=p, lr=per_net[0], momentum=per_net[1], weight_decay=per_net[2], progress=cb, optimizer=o,
                 loss=lo, activation=ac, output=out, lr_output=lr_out, interruptible=interruptible, function=f,
                 **options)


def _sweep_on_cluster(client, shard_networks, launches, cells, networks, common):
    """The grid's cells as distributed runs: cell (a, s, m, w) of launch
    (h, o, lo, ac) is ``train(networks, seed=seed, init_scale=s, ...)``, the
    same networks as the local sweep's."""
    from .distributed import train_many

    runs, keys = [], []
    for f, h, o, lo, ac, out in launches:
        for a, s, m, w, b in cells:
            runs.append((networks, dict(common, function=f, hidden=h, optimizer=o, loss=lo, activation=ac, lr=a,
                                        init_scale=s, momentum=m, weight_decay=w, lr_output=b, output=out)))
            keys.append((h, a, s, m, w, b))
    stats = train_many(runs, client=client, shard_networks=shard_networks)
    return [row(st, *key) for st, key in zip(stats, keys)]


def _table(rows):
    table = np.array(rows, dtype=list(COLUMNS))
    try:
        import pandas  # noqa: F401 - asked first: sweep_table may be imported already while pandas is not
    except ImportError:  # no pandas: the structured array
        return table
    from .sweep_table import SweepTable

    return SweepTable(table)


def row(st, hidden, lr, init_scale, momentum, weight_decay, lr_output=None):
    """One cell's row of the table (``COLUMNS``) from its ``Stats``: the
    local sweep and the cluster's compute it the same way."""
    c = st.config
    q = st.solved_epochs.quantiles((0.25, 0.5, 0.75))
    q = tuple(q.values()) if q else (np.nan,) * 3
    loss_median = st.losses.quantiles((0.5,), loss_bin_centres)
    if st.target_epochs is not None:
        te = st.target_epochs.quantiles((0.5,))
        target = (c["target_loss"], st.target_epochs.total / st.networks, te[0.5] if te else np.nan)
    else:
        target = (np.nan, np.nan, np.nan)
    lo, hi = st.success_ci95
    return (c.get("function") or "custom", hidden, lr, init_scale, st.networks, st.solved, st.success_rate, lo, hi, st.diverged, *q,
            loss_median[0.5] if loss_median else np.nan, c["epochs"], c["optimizer"], c["loss"], c["activation"],
            momentum, weight_decay, *target, lr if lr_output is None else lr_output, c.get("output") or "sigmoid")


def write_csv(table, path):
    """Write a sweep table (DataFrame or structured array) as CSV."""
    names = [c for c, _ in COLUMNS]
    records = table.to_records(index=False) if hasattr(table, "to_records") else table
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        for rec in records:
            w.writerow([_cell(rec[c]) for c in names])
    return path


def read_csv(path):
    """A sweep CSV back as a structured array (for plotting)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read {path} as a sweep CSV: {exc}") from None
    names = {c for c, _ in COLUMNS}
    if not rows or not (names - set(_ADDED) <= set(rows[0]) <= names):  # an older fastxor's CSV lacks _ADDED
        raise ValueError(f"{path} is not a fastxor sweep CSV (columns {[c for c, _ in COLUMNS]})")
    out = []
    for i, r in enumerate(rows, start=2):  # line 1 is the header
        for c, old in _ADDED.items():
            r.setdefault(c, r["lr"] if c == "lr_output" else old)
        try:
            out.append(tuple(r[c] if kind[0] == "U" else float(r[c]) for c, kind in COLUMNS))
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {i}: every column must be a number (a truncated or edited file?)") from None
    return np.array(out, dtype=list(COLUMNS))


def _cell(v):
    v = v.item() if hasattr(v, "item") else v
    return repr(v) if isinstance(v, float) else v
