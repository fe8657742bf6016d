"""fastxor.Stats: merged statistics of any split equal one run's."""
import numpy as np
import pytest

import fastxor
from fastxor.stats import LOSS_BINS_PER_DECADE, Counts, Stats


def _split_stats(r, bounds):
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        sl = slice(lo, hi)
        parts.append(Stats.of_arrays(r.config, r.solved[sl], r.diverged[sl], r.solved_epoch[sl], r.loss[sl],
                                     r.predictions[sl], None if r.target_epoch is None else r.target_epoch[sl]))
    return parts


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng()
    seed = int(rng.integers(0, 2**32))
    print("run seed", seed)
    # a varied run: per-network lr, some networks built to diverge, a target, plateaus and solutions
    p = fastxor.init_params(6000, 2, seed)
    W1, b1, W2, b2 = (a.copy() for a in p.arrays())
    lr = rng.choice([0.1, 0.5, 2.0, 40.0], size=6000)
    big = np.finfo(np.float32).max * 0.99
    for i in rng.choice(6000, 20, replace=False):  # as tests/helpers.with_diverging_network
        W1[i], b1[i], W2[i, 0], b2[i], lr[i] = 0.0, 0.0, (big, -big), 2.0, big / 2
    return fastxor.train(init=fastxor.Params(W1, b1, W2, b2), epochs=1500, lr=lr, target_loss=0.05,
                         backend="numba")


def test_merged_random_splits_equal_one_run(run, rng):
    whole = run.statistics()
    assert whole.solved > 0 and whole.diverged > 0 and whole.cell_counts.sum() > 0 and whole.target_epochs.total > 0
    for _ in range(5):
        k = int(rng.integers(2, 9))
        bounds = [0, *sorted(rng.choice(np.arange(1, run.n_networks), k - 1, replace=False)), run.n_networks]
        parts = _split_stats(run, bounds)
        rng.shuffle(parts)  # merge order must not matter
        merged = sum(parts)
        for name in ("networks", "solved", "diverged", "nonfinite_losses"):
            assert getattr(merged, name) == getattr(whole, name)
        for name in ("solved_epochs", "losses", "cell_losses", "target_epochs"):
            a, b = getattr(merged, name), getattr(whole, name)
            np.testing.assert_array_equal(a.values, b.values)
            np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(merged.cells, whole.cells)
        np.testing.assert_array_equal(merged.cell_counts, whole.cell_counts)
        np.testing.assert_allclose(merged.cell_sums, whole.cell_sums, rtol=1e-12)
        assert merged.summary() == whole.summary()
        assert merged.config == whole.config


def test_figures_against_numpy(run):
    s = run.stats()
    at = run.solved_epoch[run.solved_epoch >= 0]
    exact = np.quantile(at, list(s["solved_epoch_quantiles"]))
    np.testing.assert_allclose(list(s["solved_epoch_quantiles"].values()), exact, rtol=1e-12)
    finite = run.loss[np.isfinite(run.loss)]
    bin_width = 10 ** (1 / LOSS_BINS_PER_DECADE) - 1
    np.testing.assert_allclose(list(s["loss_quantiles"].values()), np.quantile(finite, list(s["loss_quantiles"])),
                               rtol=bin_width)
    te = run.target_epoch[run.target_epoch >= 0]
    t = s["target"]
    assert t["reached"] == te.size and t["epoch_mean"] == pytest.approx(te.mean(), rel=1e-12)
    half = 1.959963984540054 * te.std(ddof=1) / np.sqrt(te.size)
    np.testing.assert_allclose(t["epoch_mean_ci95"], (te.mean() - half, te.mean() + half), rtol=1e-10)
    assert s["solved"] == run.solved.sum() and s["diverged"] == run.diverged.sum()
    groups = run.statistics().stuck_groups()
    exact_groups = run.stuck_groups()
    assert [g["count"] for g in groups] == [g["count"] for g in exact_groups]
    for g, e in zip(groups, exact_groups):
        np.testing.assert_allclose(g["outputs"], e["outputs"], rtol=1e-9)
        assert g["median_loss"] == pytest.approx(e["median_loss"], rel=2 * bin_width)


def test_counts_quantiles_are_numpys(rng):
    x = rng.integers(0, 50, size=int(rng.integers(1, 300)))
    qs = rng.uniform(0, 1, 7)
    np.testing.assert_allclose(list(Counts.of(x).quantiles(qs).values()), np.quantile(x, qs), rtol=1e-12)
    a, b = Counts.of(x[: len(x) // 2]), Counts.of(x[len(x) // 2:])
    c = a + b
    np.testing.assert_array_equal(c.values, Counts.of(x).values)
    np.testing.assert_array_equal(c.counts, Counts.of(x).counts)


def test_different_runs_are_not_merged(run):
    other = fastxor.train(100, epochs=1500, hidden=3, target_loss=0.05).statistics()
    with pytest.raises(ValueError, match="different runs: hidden 2 vs 3"):
        run.statistics() + other
    no_target = fastxor.train(100, epochs=1500).statistics()
    with pytest.raises(ValueError, match="target_loss"):
        run.statistics() + no_target


def test_a_merge_never_counts_a_network_twice_nor_mixes_seeds():
    a = fastxor.train(40, epochs=20, seed=3)
    b = fastxor.train(40, epochs=20, seed=3, start=40)
    whole = fastxor.train(80, epochs=20, seed=3)
    merged = Stats.of(b) + Stats.of(a)
    assert merged.config["networks_at"] == [(0, 80)] and merged.summary() == whole.statistics().summary()
    with pytest.raises(ValueError, match="networks 0..39 of seed 3 would be counted twice"):
        Stats.of(a) + Stats.of(a)
    with pytest.raises(ValueError, match="seed 3 vs 4"):
        Stats.of(a) + Stats.of(fastxor.train(40, epochs=20, seed=4, start=40))
