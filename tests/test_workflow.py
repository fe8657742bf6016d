"""The research workflow: segments and resume, results files, stuck groups,
sweeps, the CLI and plots — each checked against a plain one-call run."""
import sys

import numpy as np
import pytest

import fastxor
from fastxor import cli
from fastxor.backends import numpy_reference as reference
from fastxor.params import init_params
from fastxor.result import TrainResult
from fastxor.sweep import COLUMNS, read_csv, sweep, write_csv

from helpers import assert_same_result, run_backend, with_diverging_network


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_resume_in_pieces_equals_one_run(backend, rng):
    n = int(rng.integers(2, 90))
    dtype = str(rng.choice(["float32", "float64"]))
    p = with_diverging_network(init_params(n, 2, int(rng.integers(0, 2**32)), dtype=dtype))
    lr = rng.uniform(0.1, 2.0, n)
    lr[0] = np.finfo(dtype).max * 0.5
    k = int(rng.choice([0, 1, int(rng.integers(2, 40))]))
    pieces = [int(v) for v in rng.integers(0, 300, 3)]
    kw = dict(lr=lr, dtype=dtype, backend=backend, record_every=k)
    whole = fastxor.train(init=p, epochs=sum(pieces), **kw)
    r = fastxor.train(init=p, epochs=pieces[0], **kw)
    for more in pieces[1:]:
        r = fastxor.resume(r, more, backend=backend)
    assert r.config["epochs"] == sum(pieces)
    assert_same_result(whole, r)
    assert whole.diverged[0] and whole.diverged_epoch[0] == 0


def short_segments(monkeypatch, lengths):
    """Segments of ``lengths()`` epochs each instead of ~0.5 s each."""
    from fastxor import training

    class Pacer(training._Pacer):
        def __init__(self, n, total, **kw):
            super().__init__(n, total, **kw)
            self.next = lengths()

        def measured(self, epochs, dt):
            self.next = lengths()

    monkeypatch.setattr(training, "_Pacer", Pacer)


def test_progress_segments_equal_one_call(rng, monkeypatch):
    short_segments(monkeypatch, lambda: int(rng.integers(1, 40)))
    seen = []
    kw = dict(epochs=int(rng.integers(100, 400)), lr=0.9, seed=int(rng.integers(0, 2**32)),
              record_every=int(rng.integers(1, 30)))
    a = fastxor.train(70, progress=lambda d, t: seen.append((d, t)), **kw)
    b = fastxor.train(70, **kw)
    assert_same_result(a, b)
    assert len(seen) > 3 and seen[-1] == (kw["epochs"], kw["epochs"])
    assert all(x[0] < y[0] for x, y in zip(seen, seen[1:]))


def test_interrupt_keeps_finished_epochs_and_resumes_exactly(rng, monkeypatch):
    short_segments(monkeypatch, lambda: 50)
    calls = []

    def ctrl_c_on_third(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    kw = dict(epochs=400, lr=0.7, seed=int(rng.integers(0, 2**32)), record_every=7)
    r = fastxor.train(40, progress=ctrl_c_on_third, interruptible=True, **kw)
    assert r.config["interrupted"] and r.config["epochs"] == calls[-1]
    assert r.loss_history.shape[1] == -(-calls[-1] // 7)
    rest = fastxor.resume(r, 400 - r.config["epochs"])
    assert "interrupted" not in rest.config
    assert_same_result(rest, fastxor.train(40, **kw))
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        fastxor.train(40, progress=ctrl_c_on_third, **kw)  # not interruptible: re-raised


def test_real_ctrl_c_is_held_to_the_end_of_a_segment(rng, monkeypatch, default_signal_handlers):
    """A SIGINT that arrives while a segment runs stops training at that
    segment's end: the state is never half advanced, so resume is exact."""
    import os
    import signal

    short_segments(monkeypatch, lambda: int(rng.integers(20, 60)))
    calls = []

    def sigint_on_second(done, total):
        calls.append(done)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    kw = dict(epochs=500, lr=0.7, seed=int(rng.integers(0, 2**32)), record_every=9)
    r = fastxor.train(70, progress=sigint_on_second, interruptible=True, **kw)
    assert r.config["interrupted"] and r.config["epochs"] in calls[1:3]
    assert_same_result(fastxor.resume(r, 500 - r.config["epochs"]), fastxor.train(70, **kw))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_results_file_round_trip(tmp_path, rng):
    n = 33
    lr = rng.uniform(0.1, 1.0, n)
    r = fastxor.train(n, epochs=300, lr=lr, init_scale=rng.uniform(0.5, 2, n), record_every=10,
                      dtype="float64", seed=int(rng.integers(0, 2**32)))
    path = r.save(tmp_path / "run.npz")
    back = fastxor.load(path)
    assert_same_result(r, back)
    assert back.params.dtype == np.float64
    np.testing.assert_array_equal(back.config["lr"], lr)
    assert {k: v for k, v in back.config.items() if k not in ("lr", "init_scale")} == {
        k: v for k, v in r.config.items() if k not in ("lr", "init_scale")}
    assert back.versions["fastxor"] == fastxor.__version__ and "numpy" in back.versions
    assert_same_result(fastxor.resume(path, 50), fastxor.resume(r, 50))
    with pytest.raises(ValueError, match="must end in .npz"):
        r.save(tmp_path / "run.txt")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a readable fastxor results file"):
        fastxor.load(tmp_path / "other.npz")


def test_solved_means_the_final_parameters_solve_it(rng):
    """``solved`` is about the final parameters, as the reference's forward
    pass of them says (large rates, lr 4-8), ``solved_epoch`` about the first time."""
    r = fastxor.train(500, epochs=2000, lr=rng.uniform(4, 8, 500), seed=int(rng.integers(0, 2**32)))
    X, y = fastxor.boolean_function("xor")
    *_, out = reference.forward(r.params.astype(np.float64), X)  # the final parameters, recomputed
    margin = ((y > 0.5) * 2 - 1) * (out - 0.5)
    clear = np.abs(margin).min(axis=1) > 1e-4  # float32 predictions: away from the 0.5 boundary
    np.testing.assert_array_equal(r.solved[clear], (margin[clear] > 0).all(axis=1))
    assert (r.solved_epoch[r.solved] >= 0).all()
    assert 0 < r.solved.sum() < 500


def test_stuck_groups_find_planted_clusters(rng):
    centres = np.array([[0.05, 0.66, 0.66, 0.67], [0.5, 0.5, 0.5, 0.5], [0.06, 0.94, 0.5, 0.5]])
    sizes = [int(v) for v in rng.integers(5, 200, 3)]
    pred = np.concatenate([c + rng.uniform(-0.01, 0.01, (s, 4)) for c, s in zip(centres, sizes)])
    n_solved = 20
    pred = np.concatenate([pred, np.tile([0.02, 0.98, 0.98, 0.02], (n_solved, 1))])
    n = len(pred)
    solved = np.arange(n) >= n - n_solved
    p = init_params(n, 2, 0)
    r = TrainResult(p, ((pred - [0, 1, 1, 0]) ** 2).mean(1), pred, solved, np.where(solved, 5, -1),
                    np.zeros(n, bool), np.full(n, -1))
    groups = r.stuck_groups()
    assert sorted(g["count"] for g in groups) == sorted(sizes)
    for g in groups:
        c = centres[sizes.index(g["count"])] if sizes.count(g["count"]) == 1 else None
        if c is not None:
            np.testing.assert_allclose(g["outputs"], c, atol=0.01)
    assert "unsolved networks by where they ended" in r.summary()


def test_sweep_cells_equal_separate_runs(rng, monkeypatch):
    seed = int(rng.integers(0, 2**32))
    lrs, scales = [0.3, 1.5], [0.7, 2.0]
    monkeypatch.setitem(sys.modules, "pandas", None)  # the structured-array path
    t = sweep(lrs, [2, 3], scales, networks=40, epochs=400, seed=seed)
    assert isinstance(t, np.ndarray) and len(t) == 8 and t.dtype.names == tuple(c for c, _ in COLUMNS)
    for row in t[rng.choice(8, 3, replace=False)]:
        one = fastxor.train(40, epochs=400, lr=row["lr"], hidden=int(row["hidden"]),
                            init_scale=row["init_scale"], seed=seed)
        assert row["solved"] == one.solved.sum() and row["diverged"] == one.diverged.sum()
        assert row["loss_median"] == pytest.approx(float(np.median(one.loss)), rel=2.4e-3)  # binned: fastxor.stats
        at = one.solved_epoch[one.solved_epoch >= 0]
        if at.size:
            assert row["solved_epoch_median"] == np.median(at)
        lo, hi = fastxor.wilson_interval(row["solved"], 40)
        assert (row["ci95_low"], row["ci95_high"]) == (lo, hi)


def test_sweep_csv_round_trip_and_dataframe(tmp_path, rng):
    pd = pytest.importorskip("pandas")
    t = sweep([0.2, 0.9], 2, 1.0, networks=30, epochs=200, seed=int(rng.integers(0, 2**32)))
    assert isinstance(t, pd.DataFrame) and list(t.columns) == [c for c, _ in COLUMNS]
    back = read_csv(write_csv(t, tmp_path / "s.csv"))
    for c, _ in COLUMNS:
        np.testing.assert_array_equal(back[c], t[c].to_numpy())


@pytest.mark.parametrize("bad, match", [
    (dict(lr=[0.1, -1]), "lr must be a finite number"),
    (dict(hidden=[0]), r"hidden must be in \[1, 32\]"),
    (dict(init_scale=[]), "init_scale must list at least one value"),
    (dict(networks=0), "networks must be in"),
    (dict(init="xavier"), "init must be 'philox' or 'torch'"),
])
def test_sweep_bad_input(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sweep(**{**dict(networks=5, epochs=1), **bad})


def test_per_network_init_scale_equals_one_scale_at_a_time(rng):
    s = rng.uniform(0, 3, 10)
    seed = int(rng.integers(0, 2**32))
    p = init_params(10, 3, seed, init_scale=s, dtype="float64").to_flat()
    for i in range(10):
        q = init_params(10, 3, seed, init_scale=float(s[i]), dtype="float64").to_flat()
        np.testing.assert_array_equal(p[:, i], q[:, i])
    with pytest.raises(ValueError, match=r"init_scale\[1\] must be a finite number"):
        init_params(2, 2, 0, init_scale=[1.0, -1.0])


def test_to_torch_outputs_equal_predictions(rng):
    torch = pytest.importorskip("torch")
    r = fastxor.train(20, epochs=500, lr=0.8, seed=int(rng.integers(0, 2**32)))
    i = int(rng.integers(0, 20))
    m = r.to_torch(i)
    with torch.no_grad():
        out = m(torch.tensor(r.config["X"], dtype=torch.float32)).numpy()[:, 0]
    np.testing.assert_allclose(out, r.predictions[i], rtol=1e-6, atol=1e-7)
    with pytest.raises(IndexError, match=r"index must be in \[0, 20\)"):
        r.to_torch(20)


def test_cli_train_save_resume_plot_sweep(tmp_path, capsys, rng):
    seed = str(int(rng.integers(0, 2**32)))
    out = tmp_path / "r.npz"
    args = ["--networks", "50", "--seed", seed, "--record-every", "25", "--progress", "off"]
    assert cli.main(["train", "--epochs", "300", "--out", str(out), *args]) == 0
    assert cli.main(["train", "--resume", str(out), "--epochs", "200", "--progress", "off"]) == 0
    text = capsys.readouterr().out
    assert "solved:" in text and "95 % CI" in text and "saved:" in text
    assert_same_result(fastxor.load(out), fastxor.train(50, epochs=500, seed=int(seed), record_every=25))
    pytest.importorskip("matplotlib")
    assert cli.main(["plot", str(out), "--out", str(tmp_path / "plots")]) == 0
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert names == {"loss_curves.png", "solved_epochs.png", "final_losses.png", "decision_surfaces.png"}
    csv = tmp_path / "s.csv"
    assert cli.main(["sweep", "--lr", "0.5,1", "--hidden", "2", "--init-scale", "1,2", "--networks", "20",
                     "--epochs", "100", "--out", str(csv), "--progress", "off"]) == 0
    assert len(read_csv(csv)) == 4
    assert cli.main(["plot", str(csv), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "success_rate.png").stat().st_size > 1000


@pytest.mark.parametrize("argv, match", [
    (["train", "--networks", "0"], r"n_networks must be in \[1,"),
    (["train", "--networks", "5", "--lr", "nan"], "lr must be a finite number"),
    (["train", "--networks", "5", "--function", "0120"], r"a truth table of 2\^D 0/1 digits"),
    (["train", "--resume", "/nonexistent/r.npz"], "/nonexistent/r.npz: no such file"),
])
def test_cli_errors_name_the_argument(argv, match, capsys):
    assert cli.main(argv) == 2
    assert __import__("re").search(match, capsys.readouterr().err)


def test_cli_messages_go_to_the_stderr_of_the_moment(monkeypatch):
    """The CLI's compile announcements follow sys.stderr: a stream swapped
    and closed after cli.main (a test's capture, a notebook) is never written
    to again (it was: "Logging error ... I/O operation on closed file")."""
    import io
    import logging

    log = logging.getLogger("fastxor")
    monkeypatch.setattr(log, "handlers", [])
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    cli._announce_compiles()
    log.info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    with monkeypatch.context() as m:
        m.setattr(logging, "raiseExceptions", True)
        m.setattr(logging.Handler, "handleError", lambda self, record: pytest.fail("wrote to a closed stream"))
        log.info("two")
    assert second.getvalue() == "fastxor: two\n"


def test_loss_history_columns_are_reference_losses(rng):
    """A resumed run's history columns are the losses of epochs 0, k, 2k, ...
    computed directly by the reference at those epochs."""
    p = init_params(8, 2, int(rng.integers(0, 2**32)), dtype="float64")
    r = fastxor.resume(fastxor.train(init=p, epochs=13, record_every=5, dtype="float64"), 9)
    X, y = np.asarray(r.config["X"]), np.asarray(r.config["y"])
    for col, e in enumerate(r.history_epochs):
        q = run_backend("numpy", p, X, y, int(e), np.full(8, 0.1))["params"]
        *_, out = reference.forward(q, X)
        np.testing.assert_allclose(r.loss_history[:, col], reference.loss_of(out, y), rtol=1e-12)


def test_torch_init_scaled_and_sweep_with_torch_init(rng):
    pytest.importorskip("torch")
    seeds = [int(s) for s in rng.integers(0, 2**31, 4)]
    base, scaled = fastxor.torch_init(seeds, 3), fastxor.torch_init(seeds, 3, init_scale=1.7)
    for a, b in zip(base.arrays(), scaled.arrays()):
        np.testing.assert_array_equal(b, (a.astype(np.float64) * 1.7).astype(np.float32))
    t = sweep(0.5, 3, 1.7, networks=4, epochs=50, seed=seeds[0], init="torch")
    one = fastxor.train(init=fastxor.torch_init(range(seeds[0], seeds[0] + 4), 3, 1.7), epochs=50, lr=0.5)
    assert t["loss_median"][0] == pytest.approx(float(np.median(one.loss)), rel=2.4e-3)  # binned: fastxor.stats


def test_plots_release_their_figures(tmp_path):
    """Every figure written to a file is closed: a loop of plots (a notebook,
    a batch of runs) does not accumulate pyplot figures."""
    plt = pytest.importorskip("matplotlib.pyplot")
    from fastxor import plots

    r = fastxor.train(30, epochs=50, record_every=10, backend="numpy")
    before = set(plt.get_fignums())
    for i in range(3):
        plots.plot_result(r, tmp_path / f"run{i}")
    assert set(plt.get_fignums()) == before and len(list(tmp_path.rglob("*.png"))) >= 9


@pytest.mark.parametrize("n, fixed, per_epoch", [
    (1_000, 1e-4, 1_000 / 3e8),  # CPU, a small run
    (10_000_000, 0.08, 1e7 / 3e8),  # CPU, 10^7 networks
    (10_000_000, 0.4, 1e7 / 7.5e10),  # GPU, 10^7
    (300_000_000, 12.0, 3e8 / 7.5e10),  # GPU, 3e8: a 10 s cap made one-epoch segments here
    (1_000_000_000, 40.0, 1e9 / 7.5e10),  # GPU, 10^9
])
def test_the_pacer_keeps_the_fixed_cost_small_at_any_size(n, fixed, per_epoch):
    """The pacer driven by a simulated machine whose every segment costs
    ``fixed`` plus ``per_epoch`` per epoch (10^5 epochs): no one-epoch
    segments after the first few, at most 3 segments before the lengths are
    measured, and the fixed costs within 2 % of the wall time plus those
    first segments' (a run shorter than one target segment pays them anyway)."""
    from fastxor.training import _Pacer

    epochs = 100_000
    pacer, lengths, spent = _Pacer(n, epochs, fixed=fixed), [], 0.0
    while pacer.left > 0:
        e = pacer.take()
        lengths.append(e)
        pacer.measured(e, fixed + e * per_epoch)
    compute = epochs * per_epoch
    ramp = next(i for i, e in enumerate(lengths) if e * per_epoch >= 0.05 or i == len(lengths) - 1)
    assert ramp <= 3, lengths[:10]
    assert min(lengths[ramp + 1:-1], default=2) > 1  # never collapses to single epochs
    steady = (len(lengths) - ramp - 1) * fixed
    assert steady <= 0.02 * (compute + steady) + fixed, lengths[:10]  # the last segment may be short
    assert len(lengths) * fixed <= 0.02 * (compute + steady) + (ramp + 2) * fixed
