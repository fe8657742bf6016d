"""D-input networks on S samples: the data definitions, the reference against
PyTorch, the kernel against the reference, and the errors of bad data."""
import numpy as np
import pytest

import fastxor
from fastxor.data import FUNCTIONS, INPUTS_MAX, SAMPLES_MAX, boolean_function

from helpers import assert_random_recipes_match_reference, random_data, run_backend


def _bits(d):
    """Row k = k in binary, first input the most significant bit (written out here, not taken from fastxor)."""
    return np.array([[int(c) for c in format(k, f"0{d}b")] for k in range(2**d)], dtype=float)


def test_named_functions_are_their_definitions():
    for d in range(2, INPUTS_MAX + 1):
        X, y = boolean_function(f"parity{d}")
        np.testing.assert_array_equal(X, _bits(d))
        np.testing.assert_array_equal(y, _bits(d).sum(axis=1) % 2)
    for d in (3, 5, 7):
        np.testing.assert_array_equal(boolean_function(f"majority{d}")[1], _bits(d).sum(axis=1) > d / 2)
    X, y = boolean_function("mux6")
    address = 2 * X[:, 0] + X[:, 1]
    np.testing.assert_array_equal(y, X[np.arange(64), 2 + address.astype(int)])
    np.testing.assert_array_equal(boolean_function("xor")[1], boolean_function("parity2")[1])
    np.testing.assert_array_equal(boolean_function("and")[0], _bits(2))
    X, y = boolean_function("01101001")
    np.testing.assert_array_equal(X, _bits(3))
    np.testing.assert_array_equal(y, boolean_function("parity3")[1])
    assert fastxor.train(2, epochs=1, function="parity3").config["function"] == "parity3"
    assert fastxor.train(2, epochs=1, function="01111111").config["function"] == "01111111"
    assert len(FUNCTIONS) >= 16 + 7 + 3 + 1


@pytest.mark.parametrize("kwargs, words", [
    (dict(function="011"), "truth table of 2^D"),
    (dict(function="0" * 512), "truth table of 2^D"),
    (dict(X=np.zeros((4, 0)), y=np.zeros(4)), "D in [1, 8] inputs"),
    (dict(X=np.zeros((4, 9)), y=np.zeros(4)), "D in [1, 8] inputs"),
    (dict(X=np.zeros((SAMPLES_MAX + 1, 2)), y=np.zeros(SAMPLES_MAX + 1)), "S in [1, 256] samples"),
    (dict(X=np.array([[0.0, np.nan]] * 3), y=np.zeros(3)), "X must be finite"),
    (dict(X=np.zeros((3, 2)), y=np.zeros(4)), "y must be a real array of shape (3,)"),
    (dict(X=np.zeros((3, 2))), "y is required with X"),
    (dict(y=np.zeros(3)), "y without X must hold 2^D targets"),
    (dict(X=np.zeros((3, 2)), y=np.array([0.0, 1.0, 1.5]), loss="bce"), "y must be in [0, 1] for loss='bce'"),
    (dict(X=np.zeros((3, 2)), y=np.array([0.0, 1.0, -0.5]), loss="bce_logits"), "y must be in [0, 1]"),
    (dict(function="parity3", init=fastxor.init_params(2, 2)), "init has networks of D=2 inputs"),
])
def test_bad_data_is_one_clear_error(kwargs, words):
    kw = dict(n_networks=None if "init" in kwargs else 2, epochs=1)
    with pytest.raises(ValueError) as info:
        fastxor.train(**{**kw, **kwargs})
    assert words in str(info.value)


#: (function or data, hidden, lr, loss, activation, optimizer options): the reference against torch on D inputs.
TORCH_CASES = [
    ("parity3", 3, 0.5, "mse", "sigmoid", dict(momentum=0.9)),
    ("parity4", 4, 0.01, "bce", "tanh", dict(optimizer="adam")),
    ("parity5", 5, 0.3, "bce_logits", "relu", dict(nesterov=True, momentum=0.5, weight_decay=1e-3)),
    ("majority5", 2, 0.02, "mse", "tanh", dict(optimizer="adamw", weight_decay=0.01)),
    ("points", 3, 0.2, "mse", "sigmoid", dict()),
    ("mux6", 4, 0.5, "bce", "sigmoid", dict(momentum=0.9, dampening=0.2)),
]


@pytest.mark.parametrize("case", range(len(TORCH_CASES)))
def test_reference_matches_pytorch_on_d_inputs(case, rng):
    """nn.Linear(D, H), nn.Linear(H, 1) and torch.optim, 1 000 epochs, float64:
    parameters and loss history to 1e-9 (the same formulas; the sum over
    samples and inputs in another order moves them by ~1e-15)."""
    pytest.importorskip("torch")
    from fastxor.torch_compat import torch_init, train_torch

    fn, hidden, lr, loss, activation, opts = TORCH_CASES[case]
    if fn == "points":  # six real-valued points in the plane
        X, y = rng.normal(0, 1, (6, 2)), rng.uniform(0, 1, 6)
    else:
        X, y = boolean_function(fn)
    p = torch_init([int(rng.integers(0, 2**31))], hidden, inputs=X.shape[1]).astype(np.float64)
    tp, th = train_torch(p, X, y, 1000, lr, 10, loss=loss, activation=activation, **opts)
    o = dict(opts)
    mom, wd = o.pop("momentum", None), o.pop("weight_decay", None)
    r = run_backend("numpy", p, X, y, 1000, np.array([lr]), 10, momentum=mom, weight_decay=wd,
                    recipe_options=dict(o, loss=loss, activation=activation))
    for a, b in zip(tp.arrays(), r["params"].arrays()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r["loss_history"][0], th, rtol=0, atol=1e-9)


def test_torch_init_and_philox_follow_nn_linear_for_d_inputs(rng):
    """The hidden layer's init range is 1/sqrt(D): torch_init is torch's own
    module, and the Philox init's bounds scale with D as nn.Linear's."""
    torch = pytest.importorskip("torch")
    from fastxor.torch_compat import torch_init

    seed, d, h = int(rng.integers(0, 2**31)), int(rng.integers(1, 9)), int(rng.integers(1, 6))
    torch.manual_seed(seed)
    m = torch.nn.Linear(d, h)
    np.testing.assert_array_equal(torch_init([seed], h, inputs=d).W1[0], m.weight.detach().numpy())
    p = fastxor.init_params(20_000, h, int(rng.integers(0, 2**32)), inputs=d, dtype="float64")
    assert p.W1.shape == (20_000, h, d)
    assert 0.99 / np.sqrt(d) < np.abs(p.W1).max() <= 1 / np.sqrt(d)
    assert 0.99 / np.sqrt(d) < np.abs(p.b1).max() <= 1 / np.sqrt(d)
    assert 0.99 / np.sqrt(h) < np.abs(p.W2).max() <= 1 / np.sqrt(h)


def test_numba_matches_reference_on_d_inputs(rng):
    assert_random_recipes_match_reference("numba", rng, data=random_data)


def _many_samples(rng):
    """More samples than the Numba kernel unrolls: a 5- or 6-input function, or 17-40 real points."""
    if rng.random() < 0.5:
        return boolean_function(str(rng.choice(["parity5", "majority5", "mux6"])))
    s, d = int(rng.integers(17, 41)), int(rng.integers(1, 9))
    return rng.normal(0, 1.5, (s, d)), rng.uniform(0, 1, s)


def test_numba_loops_over_many_samples_and_matches_the_reference(rng):
    """Above config.NUMBA_UNROLL_SAMPLES the kernel loops over samples (an
    unrolled 7-bit parity kernel compiled for 5 minutes): the same numbers."""
    from fastxor import config
    from fastxor.backends import numba_kernel
    from fastxor.state import Recipe

    n = config.NUMBA_UNROLL_SAMPLES
    assert numba_kernel.loops_over_samples(Recipe(2, np.dtype(np.float32), inputs=6, samples=n + 1))
    assert not numba_kernel.loops_over_samples(Recipe(2, np.dtype(np.float32), inputs=4, samples=n))
    assert_random_recipes_match_reference("numba", rng, data=_many_samples)


def test_the_train_api_on_d_inputs_matches_the_reference(rng):
    """train() end to end (numba, float32, segments, history) against the
    reference backend on a random data set, and the result's shapes."""
    X, y = random_data(rng)
    kw = dict(X=X, y=y, epochs=400, seed=int(rng.integers(0, 2**32)), hidden=3, lr=0.5, record_every=50)
    a = fastxor.train(300, backend="numba", dtype="float64", **kw)
    b = fastxor.train(300, backend="numpy", dtype="float64", **kw)
    assert a.params.W1.shape == (300, 3, X.shape[1]) and a.predictions.shape == (300, len(y))
    np.testing.assert_allclose(a.params.to_flat(), b.params.to_flat(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.loss_history, b.loss_history, rtol=0, atol=1e-9)
    assert a.summary().splitlines()[1:3] == b.summary().splitlines()[1:3]


def test_resume_and_save_keep_d_inputs(tmp_path, rng):
    kw = dict(function="parity3", hidden=3, lr=1.0, seed=int(rng.integers(0, 2**32)))
    whole = fastxor.train(200, epochs=600, **kw)
    half = fastxor.train(200, epochs=250, **kw)
    path = half.save(tmp_path / "half.npz")
    more = fastxor.resume(path, 350)
    np.testing.assert_array_equal(more.params.W1, whole.params.W1)
    np.testing.assert_array_equal(more.predictions, whole.predictions)
    assert more.summary() == whole.summary()


def _data_or_32_samples(rng):
    """random_data, or a 32-sample function (above the CUDA kernel's REGISTER_SAMPLES: read from memory)."""
    return random_data(rng) if rng.random() < 0.6 else boolean_function(str(rng.choice(["parity5", "majority5"])))


@pytest.mark.gpu
def test_the_gpu_kernel_on_d_inputs_matches_the_reference(cupy_device, rng):
    """The CUDA kernel templated on D and S, through the real loader (on the
    strict fake CuPy where no GPU is), against the reference on random data
    sets and recipes, held to each network's rounding sensitivity as the
    Numba kernel is (its sums over samples run in order, the reference's
    pairwise from 8 samples on)."""
    assert_random_recipes_match_reference("cupy", rng, data=_data_or_32_samples)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_gpu_init_of_d_inputs_is_init_params(dtype, cupy_device, rng):
    """The Philox init made inside the kernel, with nn.Linear's 1/sqrt(D) for
    the hidden layer, equals init_params(inputs=D) bit for bit; the result
    has D inputs and S outputs."""
    X, y = _data_or_32_samples(rng)
    n, hidden, seed = int(rng.integers(1, 300)), int(rng.integers(1, 6)), int(rng.integers(0, 2**32))
    g = fastxor.train(n, X=X, y=y, hidden=hidden, epochs=0, seed=seed, dtype=dtype, backend="cupy")
    assert g.config["backend"] == "cupy" and g.predictions.shape == (n, len(y))
    np.testing.assert_array_equal(g.params.to_flat(), fastxor.init_params(n, hidden, seed, dtype=dtype,
                                                                          inputs=X.shape[1]).to_flat())


def test_cli_trains_a_named_function_of_d_inputs(capsys):
    """``fastxor train --function parity3`` prints what fastxor.train's summary
    says, with the 8 outputs of its stuck groups."""
    from fastxor import cli

    rc = cli.main(["train", "--function", "parity3", "--hidden", "3", "--networks", "200", "--epochs", "300",
                   "--lr", "1", "--progress", "off"])
    out = capsys.readouterr().out
    r = fastxor.train(200, epochs=300, function="parity3", hidden=3, lr=1.0)
    assert rc == 0 and "function parity3 (targets 01101001)" in out
    assert r.summary().split("backend=")[1].splitlines()[1:] == out.split("backend=")[1].split("\ntime:")[0].splitlines()[1:]


def test_statistics_of_many_outputs_merge_exactly_and_summarise(rng):
    """32 outputs per network (parity5): the stuck cells (keyed as rows, no
    int64 packing to overflow) merge from random splits into the whole run's,
    and the summary names the samples on the wrong side instead of 32 numbers."""
    r = fastxor.train(600, epochs=200, function="parity5", hidden=2, lr=float(rng.uniform(0.5, 3)),
                      seed=int(rng.integers(0, 2**32)))
    whole = r.statistics()
    assert whole.cells.shape[1] == 32 and whole.cell_counts.sum() == (~r.solved & ~r.diverged).sum()
    cut = sorted(rng.choice(np.arange(1, 600), 3, replace=False))
    parts = [fastxor.Stats.of_arrays(r.config, r.solved[a:b], r.diverged[a:b], r.solved_epoch[a:b], r.loss[a:b],
                                     r.predictions[a:b]) for a, b in zip([0, *cut], [*cut, 600])]
    merged = sum(parts[::-1])
    np.testing.assert_array_equal(merged.cells, whole.cells)
    np.testing.assert_array_equal(merged.cell_counts, whole.cell_counts)
    assert merged.stuck_groups() == whole.stuck_groups()
    text = whole.summary()
    assert "32 outputs each" in text and " wrong [" in text
    g = whole.stuck_groups()[0]
    wrong = np.flatnonzero(np.sign(np.asarray(r.config["y"]) - 0.5) * (np.asarray(g["outputs"]) - 0.5) <= 0)
    assert f"  {len(wrong)} wrong [" in text


def test_shards_and_sweep_of_d_inputs_equal_one_call(tmp_path, rng):
    """A run directory of two shards loads as the one call; a sweep's cell is
    the train() call of its options."""
    from fastxor import shards

    opts = dict(epochs=300, lr=1.5, seed=int(rng.integers(0, 2**32)), function="majority3", hidden=3)
    out = tmp_path / "run"
    shards.write_run_file(out, 100, 64, opts)
    for i, (lo, m) in enumerate(shards.plan(100, 64)):
        shards.run_shard(opts, lo, m, shards.shard_path(out, i))
    one = fastxor.train(100, **opts)
    loaded = fastxor.load(out)
    np.testing.assert_array_equal(loaded.params.W1, one.params.W1)
    np.testing.assert_array_equal(loaded.predictions, one.predictions)
    table = fastxor.sweep(lr=[1.5], hidden=[3], networks=100, epochs=300, seed=opts["seed"], function="majority3")
    rec = table.to_records(index=False) if hasattr(table, "to_records") else table
    assert rec["success_rate"][0] == one.solved.mean()


def test_analyse_and_plots_on_d_inputs(tmp_path, rng, monkeypatch):
    """The Hessian of a 3-input network (P = 5H + 1) is the gradient's finite
    difference, and the plots of a run without a plane are per-sample outputs."""
    pytest.importorskip("matplotlib")
    from fastxor import plots
    from fastxor.curvature import gradient_and_hessian

    X, y = boolean_function("parity3")
    p = fastxor.init_params(4, 3, int(rng.integers(0, 2**32)), init_scale=2.0, dtype="float64", inputs=3)
    flat = p.to_flat()
    g, hess, _ = gradient_and_hessian(flat, 3, X, y, "mse", "tanh")
    assert hess.shape == (4, 16, 16)
    from fastxor import curvature

    monkeypatch.setattr(curvature, "TANGENT_BYTES", 1)  # one network per batch: the same numbers (to rounding)
    np.testing.assert_allclose(gradient_and_hessian(flat, 3, X, y, "mse", "tanh")[1], hess, rtol=1e-12, atol=1e-15)
    monkeypatch.undo()
    step = 1e-6
    for k in range(16):
        up, down = flat.copy(), flat.copy()
        up[k] += step
        down[k] -= step
        fd = (gradient_and_hessian(up, 3, X, y, "mse", "tanh")[0] - gradient_and_hessian(down, 3, X, y, "mse", "tanh")[0])
        np.testing.assert_allclose(hess[:, :, k], fd / (2 * step), rtol=1e-5, atol=1e-8)
    r = fastxor.train(50, epochs=200, function="parity3", hidden=3)
    land = fastxor.analyse(r, probe_epochs=20)
    assert land.hessian.shape == (50, 16, 16)
    names = [q.name for q in plots.plot_result(r, tmp_path / "plots")]
    assert "sample_outputs.png" in names and "decision_surfaces.png" not in names
    assert (tmp_path / "plots" / "sample_outputs.png").stat().st_size > 1000


def test_sweep_over_functions_is_a_grid_axis(capsys, rng):
    """``function`` as a list: one launch per data set, each row the train()
    call of its function; the CLI's comma-separated --function prints the
    column that varies."""
    from fastxor import cli

    seed = int(rng.integers(0, 2**32))
    table = fastxor.sweep(lr=[0.5, 2.0], hidden=[3], networks=80, epochs=200, seed=seed,
                          function=["parity2", "parity3", "majority3"])
    rec = table.to_records(index=False) if hasattr(table, "to_records") else table
    assert list(rec["function"]) == ["parity2", "parity2", "parity3", "parity3", "majority3", "majority3"]
    for r in rec:
        one = fastxor.train(80, epochs=200, seed=seed, lr=float(r["lr"]), hidden=3, function=str(r["function"]))
        assert r["solved"] == one.solved.sum() and r["diverged"] == one.diverged.sum()
    with pytest.raises(ValueError, match="truth table"):
        fastxor.sweep(networks=5, epochs=5, function=["parity3", "011"])
    capsys.readouterr()
    rc = cli.main(["sweep", "--function", "parity2,parity3", "--hidden", "3", "--networks", "50", "--epochs", "100",
                   "--progress", "off"])
    out = capsys.readouterr().out
    assert rc == 0 and "function" in out.splitlines()[0]
    assert sum(line.split()[3] == "parity3" for line in out.splitlines()[1:-1]) == 1
