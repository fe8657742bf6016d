"""Results as labelled arrays: ``TrainResult.to_xarray()`` holds the result's
numbers under their labels, and the sweep table's ``to_xarray()`` is the grid
over the axes the sweep varied."""
import sys

import numpy as np
import pytest

import fastxor

xr = pytest.importorskip("xarray")
pd = pytest.importorskip("pandas")


def test_a_run_as_a_dataset_keeps_every_number_under_its_label(rng):
    n, hidden, start = 37, 3, int(rng.integers(0, 1000))
    lr = rng.uniform(0.1, 2.0, n)
    r = fastxor.train(n, epochs=90, hidden=hidden, lr=lr, start=start, seed=int(rng.integers(0, 2**32)),
                      function="parity3", record_every=30, target_loss=0.2, momentum=0.5, backend="numpy")
    ds = r.to_xarray()
    assert dict(ds.sizes) == dict(network=n, parameter=(3 + 2) * hidden + 1, sample=8, input=3, epoch=3)
    np.testing.assert_array_equal(ds.network, start + np.arange(n))
    np.testing.assert_array_equal(ds.epoch, [0, 30, 60])  # the losses recorded during training
    np.testing.assert_array_equal(ds.lr, lr)  # a per-network setting: a coordinate
    assert ds.attrs["momentum"] == 0.5 and ds.attrs["function"] == "parity3" and ds.attrs["epochs"] == 90
    i, j, d = int(rng.integers(0, n)), int(rng.integers(0, hidden)), int(rng.integers(0, 3))
    net = ds.sel(network=start + i)
    assert float(net.params.sel(parameter=f"w1_{j}_{d}")) == r.params.W1[i, j, d]
    assert float(net.params.sel(parameter=f"w2_{j}")) == r.params.W2[i, 0, j]
    assert float(net.params.sel(parameter="b2")) == r.params.b2[i, 0]
    for name in ("loss", "solved", "solved_epoch", "diverged_epoch", "target_epoch"):
        assert net[name].item() == getattr(r, name)[i], name
    np.testing.assert_array_equal(net.predictions, r.predictions[i])
    np.testing.assert_array_equal(net.loss_history, r.loss_history[i])
    np.testing.assert_array_equal(ds.X, r.config["X"])
    assert int(ds.solved.sum()) == r.solved.sum()


def test_a_sweep_table_is_a_grid_over_its_axes(rng):
    seed = int(rng.integers(0, 2**32))
    t = fastxor.sweep(lr=[0.5, 2.0], hidden=[2, 3], momentum=[0.0, 0.9], networks=30, epochs=60, seed=seed,
                      backend="numpy")
    assert isinstance(t, pd.DataFrame) and type(t[t.hidden == 2]) is type(t)  # a selection is still a table
    grid = t.to_xarray()
    assert dict(grid.sizes) == dict(hidden=2, lr=2, momentum=2)
    assert "lr_output" not in grid.dims and grid.attrs["lr_output"] == "each cell's lr"
    assert grid.optimizer.item() == "sgd" and grid.epochs.dims == ("hidden", "lr", "momentum")
    for row in t.itertuples():
        cell = grid.sel(hidden=row.hidden, lr=row.lr, momentum=row.momentum)
        assert cell.solved.item() == row.solved and cell.success_rate.item() == row.success_rate
    split = fastxor.sweep(lr=[0.5, 2.0], lr_output=[0.1, 1.0], networks=20, epochs=30, seed=seed, backend="numpy")
    assert dict(split.to_xarray().sizes) == dict(lr=2, lr_output=2)  # given rates: an axis


def test_without_xarray_the_error_names_the_extra(monkeypatch):
    r = fastxor.train(3, epochs=2, backend="numpy")
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"to_xarray needs xarray: pip install '[^']*\[xarray\]'"):
        r.to_xarray()
