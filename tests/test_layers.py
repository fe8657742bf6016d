"""Per-layer learning rates (``lr_output``: torch.optim with two parameter
groups) and the linear output unit, on every backend, against PyTorch and
the reference, through files, resume, sweeps and the command line."""
import numpy as np
import pytest

import fastxor
from fastxor import cli
from fastxor.data import boolean_function
from fastxor.torch_compat import torch_init

from helpers import assert_random_recipes_match_reference, assert_same_result, run_backend

#: (optimizer options, output, activation, lr, lr_output): SGD, momentum,
#: Nesterov with L2, Adam, AdamW (decoupled decay: 1 - lr wd per group).
TWO_GROUPS = [
    (dict(), "sigmoid", "sigmoid", 0.5, 2.0),
    (dict(momentum=0.9), "sigmoid", "tanh", 0.2, 0.05),
    # lr_output 0.1, not 0.2: at 0.2 (an effective 1.0 with momentum 0.8) a
    # linear output on parity3 oscillates chaotically in 8 of 12 starts
    (dict(momentum=0.8, nesterov=True, weight_decay=1e-3), "linear", "tanh", 0.05, 0.1),
    (dict(optimizer="adam"), "sigmoid", "sigmoid", 0.01, 0.05),
    (dict(optimizer="adamw", weight_decay=0.05), "linear", "relu", 0.02, 0.005),
    (dict(), "linear", "sigmoid", 0.3, 0.3),
]


def _calm_starts(rng, X, y, epochs, lr, options, n=3):
    """``n`` torch-initialised starts (float64) whose trajectories rounding
    does not move: the reference in float64 and in long double agree to
    1e-10. Why: Adam hovering where its gradient is rounding noise (or a
    ReLU unit chattering at its kink) random-walks, and any two
    implementations part there at once (seen: 1.2e-3 between float64 and
    long double runs of the reference itself, AdamW + ReLU at 2 000 epochs)."""
    opts = dict(options)
    wd, mom = opts.pop("weight_decay", None), opts.pop("momentum", None)
    lr_out = opts.pop("lr_output")
    seeds = [int(s) for s in rng.integers(0, 2**31, 4 * n)]
    p = torch_init(seeds, 3, inputs=X.shape[1])
    kw = dict(recipe_options=dict(opts, lr_output=np.full(len(seeds), lr_out)), weight_decay=wd, momentum=mom)
    a = run_backend("numpy", p.astype(np.float64), X, y, epochs, np.full(len(seeds), lr), **kw)
    b = run_backend("numpy", p.astype(np.longdouble), X, y, epochs, np.full(len(seeds), lr), **kw)
    apart = np.abs(a["params"].to_flat() - b["params"].to_flat().astype(np.float64)).max(axis=0)
    calm = np.flatnonzero(apart < 1e-10)
    assert len(calm) >= n, f"only {len(calm)} of {len(seeds)} fresh starts are not chaotic"
    return p.astype(np.float64)[calm[:n]]


@pytest.mark.parametrize("case", range(len(TWO_GROUPS)))
def test_two_parameter_groups_match_torch_float64(case, rng):
    """1 000 epochs of torch.optim with [W1, b1] at lr and [W2, b2] at
    lr_output (and the network without its final sigmoid for a linear
    output) against the reference through fastxor.train: float64 to 1e-9
    (the same formulas; a rate applied to the wrong layer moves the
    parameters by 1e-2 within a few steps), on starts whose trajectories
    rounding does not move (``_calm_starts``). The kernels are held to the
    reference by the random-recipe tests below."""
    pytest.importorskip("torch")
    from fastxor.torch_compat import train_torch

    opts, output, activation, lr, lr_out = TWO_GROUPS[case]
    function = str(rng.choice(["xor", "parity3", "majority3"]))
    X, y = boolean_function(function)
    p = _calm_starts(rng, X, y, 1000, lr, dict(opts, output=output, activation=activation, lr_output=lr_out))
    r = fastxor.train(init=p, epochs=1000, lr=lr, lr_output=lr_out, function=function, dtype="float64",
                      backend="numpy", activation=activation, output=output, record_every=100, **opts)
    for i in range(3):
        tp, th = train_torch(p, X, y, 1000, lr, 100, index=i, activation=activation, output=output,
                             lr_output=lr_out, **opts)
        assert not r.diverged[i]
        for a, b in zip(tp.arrays(), r.params[i].arrays()):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-9, err_msg=f"network {i}")
        np.testing.assert_allclose(r.loss_history[i], th, rtol=0, atol=1e-9)


def test_the_output_rate_is_the_output_layers(rng):
    """A tiny output rate freezes W2 and b2 to within it, while W1 and b1
    move at lr; the reverse freezes the hidden layer (every backend)."""
    p = fastxor.init_params(40, 2, int(rng.integers(0, 2**32)), dtype="float64")
    for backend in ("numpy", "numba"):
        a = fastxor.train(init=p, epochs=200, lr=1.0, lr_output=1e-12, backend=backend, dtype="float64")
        b = fastxor.train(init=p, epochs=200, lr=1e-12, lr_output=1.0, backend=backend, dtype="float64")
        moved = lambda q, f: np.abs(getattr(q.params, f) - getattr(p, f)).max()  # noqa: E731
        assert moved(a, "W2") < 1e-9 and moved(a, "b2") < 1e-9 and moved(a, "W1") > 1e-2
        assert moved(b, "W1") < 1e-9 and moved(b, "b1") < 1e-9 and moved(b, "W2") > 1e-2


def test_an_output_rate_equal_to_lr_changes_nothing(rng):
    """lr_output = lr trains exactly the one-rate run (the kernel reads the
    same value from a second row; AdamW: its decay factors too)."""
    p = fastxor.init_params(70, 2, int(rng.integers(0, 2**32)))
    lr = rng.uniform(0.005, 0.05, 70)
    opts = dict(optimizer="adamw", weight_decay=0.01)  # rows lr, lr_output, decay, decay_output
    a = fastxor.train(init=p, epochs=300, lr=lr, backend="numba", **opts)
    b = fastxor.train(init=p, epochs=300, lr=lr, lr_output=lr, backend="numba", **opts)
    assert_same_result(a, b)


def _with_split_rates_and_linear_output(backend, rng):
    """``backend`` on random recipes with lr_output and (for MSE) a linear
    output forced (the random recipes of the other tests draw them only
    sometimes)."""
    import helpers

    draw = helpers.random_recipe

    def forced(rng_, n):
        opts, mom, wd, lr = draw(rng_, n)
        if "lr_output" not in opts:
            opts["lr_output"] = lr * np.exp(rng_.uniform(-1.5, 0.5, n))
        if opts["loss"] == "mse" and opts.get("output") != "linear":
            helpers.calm_linear_output(opts, lr)
        return opts, mom, wd, lr

    helpers.random_recipe = forced
    try:
        assert_random_recipes_match_reference(backend, rng)
    finally:
        helpers.random_recipe = draw


def test_numba_matches_the_reference_with_split_rates_and_linear_output(rng):
    _with_split_rates_and_linear_output("numba", rng)


def test_gpu_kernel_matches_the_reference_with_split_rates_and_linear_output(cupy_device, rng):
    """The CUDA kernel (through the strict fake CuPy where there is no GPU)."""
    _with_split_rates_and_linear_output("cupy", rng)


def test_linear_output_diverges_and_is_flagged():
    """A linear output at a large rate diverges: flagged, frozen at its last
    finite state, never a crash; the solved test is the side of 0.5."""
    p = fastxor.init_params(50, 2, 3, dtype="float64")
    for backend in ("numpy", "numba"):
        r = fastxor.train(init=p, epochs=300, lr=0.5, lr_output=np.geomspace(0.01, 100, 50), output="linear",
                          backend=backend, dtype="float64")
        assert r.diverged[-10:].all() and not r.diverged[:5].any()
        assert np.isfinite(r.params.to_flat()).all()
        side = np.where(np.array(r.config["y"]) > 0.5, 1, -1)
        np.testing.assert_array_equal(r.solved, ((r.predictions - 0.5) * side > 0).all(axis=1))


def test_bad_options_are_one_clear_error():
    with pytest.raises(ValueError, match="output='linear' trains with loss='mse'"):
        fastxor.train(10, epochs=1, output="linear", loss="bce")
    with pytest.raises(ValueError, match="output must be one of 'sigmoid', 'linear'"):
        fastxor.train(10, epochs=1, output="softmax")
    with pytest.raises(ValueError, match=r"lr_output must be a finite number in \(0.0, inf\)"):
        fastxor.train(10, epochs=1, lr_output=0.0)
    with pytest.raises(ValueError, match=r"lr_output must be a number or a real array of shape \(10,\)"):
        fastxor.train(10, epochs=1, lr_output=np.ones(3))
    with pytest.raises(ValueError, match="lr_output=1e-50 rounds to 0 in float32"):
        fastxor.train(10, epochs=1, lr_output=1e-50)


def test_files_resume_and_summary_keep_both(rng, tmp_path):
    """Per-network output rates and the linear output survive save/load, and
    resume continues them exactly; the summary says so."""
    lr_out = rng.uniform(0.05, 0.5, 30)
    whole = fastxor.train(30, epochs=400, lr=0.2, lr_output=lr_out, output="linear", activation="tanh",
                          record_every=50)
    half = fastxor.train(30, epochs=150, lr=0.2, lr_output=lr_out, output="linear", activation="tanh",
                         record_every=50)
    half.save(tmp_path / "half.npz")
    back = fastxor.load(tmp_path / "half.npz")
    np.testing.assert_array_equal(back.config["lr_output"], lr_out)
    assert back.config["output"] == "linear"
    assert_same_result(fastxor.resume(back, 250), whole)
    text = whole.summary()
    assert f"lr_output={lr_out.min():g}..{lr_out.max():g}" in text and "linear output" in text


def test_sweep_axes_and_cli(tmp_path, capsys):
    """sweep's lr_output and output axes: every cell as train would give it;
    the CLI's --lr-output and --output."""
    t = fastxor.sweep(lr=[0.5], lr_output=[0.1, 2.0], output=["sigmoid", "linear"], networks=64, epochs=500,
                      activation="tanh")
    t = t.to_records(index=False) if hasattr(t, "to_records") else t
    assert len(t) == 4
    for r in t:
        one = fastxor.train(64, epochs=500, lr=0.5, lr_output=r["lr_output"], output=r["output"], activation="tanh")
        assert r["solved"] == one.solved.sum() and r["diverged"] == one.diverged.sum()
    assert cli.main(["train", "--networks", "200", "--epochs", "300", "--lr-output", "2", "--output", "linear",
                     "--activation", "tanh", "--progress", "off"]) == 0
    out = capsys.readouterr().out
    one = fastxor.train(200, epochs=300, lr_output=2.0, output="linear", activation="tanh")
    assert f"solved: {one.solved.sum()} (" in out and "lr_output=2" in out
