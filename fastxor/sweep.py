"""Hyper-parameter sweeps: a grid of (lr, init scale) x seeds in one launch.

Why one launch: learning rate and init scale are per-network inputs of the
kernels, so every grid cell of one hidden width trains in the same batch
(widths change the kernel, so each width is its own batch). Every cell uses
the same seeds (network i of each cell starts from the same draw, scaled):
common random numbers, so differences between cells are not seed noise.
"""
import csv

import numpy as np

from . import config
from .params import Params, initial_parameters
from .result import wilson_interval
from .validate import check_dtype, check_int, check_real

COLUMNS = (
    ("hidden", "i8"), ("lr", "f8"), ("init_scale", "f8"), ("networks", "i8"), ("solved", "i8"),
    ("success_rate", "f8"), ("ci95_low", "f8"), ("ci95_high", "f8"), ("diverged", "i8"),
    ("solved_epoch_q25", "f8"), ("solved_epoch_median", "f8"), ("solved_epoch_q75", "f8"),
    ("loss_median", "f8"), ("epochs", "i8"),
)


def _values(name, values, check):
    if np.isscalar(values):
        values = [values]
    values = [check(name, v) for v in values]
    if not values:
        raise ValueError(f"{name} must list at least one value")
    return values


def sweep(
    lr=(0.1,), hidden=(2,), init_scale=(1.0,), *, networks=1000, epochs=100_000, seed=0,
    init="philox", function=None, X=None, y=None, dtype="float32", backend="auto", progress=None,
):
    """Train ``networks`` seeds at every (hidden, lr, init_scale) grid point.

    ``init``: "philox" (fastxor's deterministic init, seed ``seed``) or
    "torch" (PyTorch's for seeds seed..seed+networks-1, times init_scale).
    ``function`` or ``X``/``y``: the training data, as in ``train``.
    ``progress``: None or ``f(hidden, done, total)``. Returns one row per
    cell, columns ``COLUMNS``: a pandas DataFrame when pandas is installed,
    else a NumPy structured array.
    """
    from .training import train

    lrs = _values("lr", lr, lambda n, v: check_real(n, v, low=0.0, low_open=True))
    widths = _values("hidden", hidden, lambda n, v: check_int(n, v, config.HIDDEN_MIN, config.HIDDEN_MAX))
    scales = _values("init_scale", init_scale, lambda n, v: check_real(n, v, low=0.0))
    networks = check_int("networks", networks, 1, 2**40)
    seed = check_int("seed", seed, 0, config.SEED_MAX)
    dt = check_dtype(dtype)
    if init not in ("philox", "torch"):
        raise ValueError(f"init must be 'philox' or 'torch', got {init!r}")
    from . import backends
    from .state import Recipe, n_params
    from .training import check_memory

    rows = []
    total = networks * len(lrs) * len(scales)
    for h in widths:  # refuse before the first width trains, not after
        check_memory(backends.choose(backend, total), total, Recipe(h, np.dtype(dt)), epochs, 0,
                     extra=total * n_params(h) * 8 * 2)  # each cell's start and the grid's concatenation
    for h in widths:
        cells = [(a, s) for s in scales for a in lrs]
        starts = {s: initial_parameters(init, networks, h, seed, 0, np.full(networks, s), dt)[0]
                  for s in scales}  # every cell: the same seeds, scaled
        p = Params.from_flat(np.concatenate([starts[s] for _, s in cells], axis=1), h)
        rate = np.repeat([a for a, _ in cells], networks)
        cb = (lambda d, t, h=h: progress(h, d, t)) if progress else None
        r = train(init=p, epochs=epochs, lr=rate, function=function, X=X, y=y, dtype=dtype, backend=backend, progress=cb)
        for c, (a, s) in enumerate(cells):
            sl = slice(c * networks, (c + 1) * networks)
            solved, diverged = r.solved[sl], r.diverged[sl]
            at = r.solved_epoch[sl][r.solved_epoch[sl] >= 0]
            q = np.quantile(at, (0.25, 0.5, 0.75)) if at.size else (np.nan,) * 3
            k = int(solved.sum())
            lo, hi = wilson_interval(k, networks)
            rows.append((h, a, s, networks, k, k / networks, lo, hi, int(diverged.sum()),
                         *q, float(np.median(r.loss[sl])), epochs))
    table = np.array(rows, dtype=list(COLUMNS))
    try:
        import pandas as pd
    except ImportError:
        return table
    return pd.DataFrame(table)


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
    if not rows or set(rows[0]) != {c for c, _ in COLUMNS}:
        raise ValueError(f"{path} is not a fastxor sweep CSV (columns {[c for c, _ in COLUMNS]})")
    out = []
    for i, r in enumerate(rows, start=2):  # line 1 is the header
        try:
            out.append(tuple(float(r[c]) for c, _ in COLUMNS))
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {i}: every column must be a number (a truncated or edited file?)") from None
    return np.array(out, dtype=list(COLUMNS))


def _cell(v):
    v = v.item() if hasattr(v, "item") else v
    return repr(v) if isinstance(v, float) else v
