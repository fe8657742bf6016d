"""Results as labelled arrays (xarray, the ``xarray`` extra): a run as a
Dataset over networks, parameters, samples and recorded epochs; a sweep
table as a Dataset over the grid's own axes.

Why: in a notebook the next step after training is selecting and plotting
by label (``ds.loss.sel(network=...)``, ``grid.success_rate.plot()``);
the arrays are the result's own (no copy where xarray can avoid one).
"""
import numpy as np

from .machine import install_hint
from .options import PER_NETWORK, TRAIN  # PER_NETWORK: coordinates along ``network`` when given per network
from .state import param_names

#: The columns of a sweep table that are grid axes (the option table's, and
#: the data set): those a launch is made for first (hidden width, recipe
#: choices), then the per-network values one launch holds; the other columns
#: are each cell's results.
SWEEP_AXES = ("function", *(o.name for o in TRAIN if o.axis and not o.per_network and not o.choices),
              *(o.name for o in TRAIN if o.axis and o.choices), *(o.name for o in TRAIN if o.axis and o.per_network))


def _xarray():
    try:
        import xarray
    except ImportError:
        raise ImportError(f"to_xarray needs xarray: {install_hint('xarray')}") from None
    return xarray


def result_dataset(r):
    """``TrainResult.to_xarray()``: dims network (coordinate: each network's
    index in the seed's stream, ``start + i``), parameter (the flat names:
    w1_j_i, b1_j, w2_j, b2), sample and input (the data), epoch (the loss
    history's epochs). Per-network settings (lr, init_scale, ...) are
    coordinates along network; scalar settings and versions are attributes."""
    xr = _xarray()
    c = r.config
    n, hidden, inputs = r.n_networks, r.params.hidden, r.params.inputs
    coords = dict(network=np.arange(n) + int(c.get("start", 0)), parameter=param_names(hidden, inputs))
    for name in PER_NETWORK:
        value = c.get(name)
        if value is not None and np.ndim(value) == 1 and len(value) == n:
            coords[name] = ("network", np.asarray(value))
    data = dict(
        params=(("network", "parameter"), r.params.to_flat().T),
        loss=("network", r.loss), predictions=(("network", "sample"), r.predictions),
        solved=("network", r.solved), solved_epoch=("network", r.solved_epoch),
        diverged=("network", r.diverged), diverged_epoch=("network", r.diverged_epoch),
        X=(("sample", "input"), np.asarray(c["X"], dtype=np.float64)), y=("sample", np.asarray(c["y"], dtype=np.float64)),
    )
    if r.target_epoch is not None:
        data["target_epoch"] = ("network", r.target_epoch)
    if r.loss_history is not None:
        data["loss_history"] = (("network", "epoch"), r.loss_history)
        coords["epoch"] = r.history_epochs
    attrs = {k: v for k, v in c.items() if k not in PER_NETWORK + ("X", "y") and _attr_ok(v)}
    attrs.update({k: v for k, v in c.items() if k in PER_NETWORK and np.ndim(v) == 0 and v is not None})
    attrs.update({f"version_{k}": v for k, v in (r.versions or {}).items()})
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _attr_ok(v):
    """Attributes that survive netCDF: numbers, strings, flat number lists (booleans as 0/1)."""
    return isinstance(v, (int, float, str, np.integer, np.floating)) or (
        isinstance(v, (list, tuple)) and all(isinstance(e, (int, float)) for e in v))


def sweep_dataset(table):
    """A sweep table (``fastxor.sweep``: a DataFrame or structured array) as a
    Dataset over the axes the grid varies (hidden, lr, momentum, ...; an
    ``lr_output`` that only repeats each cell's lr is not an axis), one
    variable per result column; axes that hold one value are scalar
    coordinates. Cells the grid did not train (an interrupted sweep) are NaN."""
    xr = _xarray()
    import pandas as pd

    df = pd.DataFrame(table)
    if "lr_output" in df and np.array_equal(df["lr_output"].to_numpy(), df["lr"].to_numpy()):
        df = df.rename(columns={"lr_output": "lr_output_value"})  # no axis of its own
    axes = [a for a in SWEEP_AXES if a in df and df[a].nunique(dropna=False) > 1]
    fixed = {a: df[a].iloc[0] for a in SWEEP_AXES if a in df and a not in axes and len(df)}
    if df.duplicated(subset=axes).any():
        raise ValueError(f"table has repeated cells over its axes {axes}: not one sweep grid")
    ds = df.drop(columns=list(fixed)).set_index(axes).to_xarray() if axes else \
        xr.Dataset({k: ((), v) for k, v in df.drop(columns=list(fixed)).iloc[0].items()})
    if "lr_output_value" in ds:
        ds = ds.drop_vars("lr_output_value")
        ds.attrs["lr_output"] = "each cell's lr"
    return ds.assign_coords(fixed)
