"""One tiny case of the benchmark suite (the real runs: ``fastxor bench``, ``make bench``)."""
import json

import numpy as np
import pytest

from fastxor import cli
from fastxor.backends import numba_kernel
from fastxor.bench import harness, report
from fastxor.bench.peers import IMPLS, RECIPES, Impl, by_name
from fastxor.params import Params


def test_suite_measures_checks_and_reports(capsys, tmp_path, monkeypatch):
    wrong = Impl("wrong lr", "", "", lambda p, X, y, lr, o: by_name("numpy vectorised").setup(p, X, y, 1.5 * lr, o))
    monkeypatch.setattr(harness, "IMPLS", (by_name("fastxor numba"), by_name("numpy vectorised"), wrong,
                                         Impl("absent peer", "no_such_module_xyz", "pip install xyz", None)))
    monkeypatch.setitem(harness.QUICK, "sizes", (1, 300))
    monkeypatch.setitem(harness.QUICK, "target", 0.05)
    rep = harness.run_suite(harness.QUICK, log=lambda s: None)
    rows = {(r["impl"], r["n"]): r for r in rep["rows"]}
    assert rows["numpy vectorised", 300]["valid"] and rows["numpy vectorised", 300]["max_error"] < 1e-5
    assert not rows["wrong lr", 300]["valid"]  # a wrong computation never counts
    fx = rows["fastxor numba", 300]
    assert fx["ne_per_s"] == fx["n"] * fx["epochs"] / fx["seconds"] and fx["fastxor_speedup"] == 1.0
    assert rep["skipped"] == [dict(impl="absent peer", why="not installed (pip install xyz)", install="pip install xyz")]
    text = report.format_report(rep)
    assert "WRONG" in text and "skipped: absent peer (not installed (pip install xyz))" in text
    assert "compute bound" in text
    json.dumps(rep, default=str)


def test_every_peer_trains_the_same_networks(rng):
    """Each installed peer's final parameters equal fastxor's (the check the
    benchmark applies before a time counts), on fresh random networks."""
    from fastxor.data import boolean_function
    from fastxor.params import init_params
    from fastxor.training import train

    X, y = boolean_function("xor")
    p = init_params(3, 2, int(rng.integers(0, 2**32)))
    ref = train(init=p, epochs=150, lr=0.5).params
    for impl in IMPLS:
        if impl.available():
            got = impl.setup(p, X, y, 0.5, {})(150)
            assert isinstance(got, Params)
            for a, b in zip(got.arrays(), ref.arrays()):
                np.testing.assert_allclose(np.asarray(a), b, atol=2e-5, err_msg=impl.name)


@pytest.mark.parametrize("recipe", ["nesterov", "adamw", "bce"])
def test_recipe_peers_train_the_same_networks(recipe, rng):
    """``fastxor bench --recipe``: every installed peer that implements recipes
    (torch.optim + nn criteria, JAX with the optimizer written out) ends
    where fastxor does, by the benchmark's own check on fresh networks
    (against the reference here, so no kernel variant is compiled); the
    seed-only peers are reported as skipped, not run."""
    from fastxor.data import boolean_function
    from fastxor.params import init_params

    X, y = boolean_function("xor")
    p = init_params(3, 2, int(rng.integers(0, 2**32)))
    options = dict(RECIPES[recipe])
    lr = options.pop("lr")
    checked = 0
    for impl in IMPLS:
        if impl.recipes and impl.available() and not impl.name.startswith("fastxor"):
            got = impl.setup(p, X, y, lr, options)(200)
            verdict = harness.check_against_fastxor(got, p, 200, lr, backend="numpy", **options)
            assert verdict["valid"], (impl.name, verdict)
            checked += 1
    assert checked >= 2  # the torch peers (torch is in the test set-up); JAX where installed
    rep = harness.run_suite(dict(harness.QUICK, sizes=(5,), target=0.02), impls=["numpy vectorised"],
                            log=lambda s: None, recipe=recipe)
    assert rep["skipped"] == [dict(impl="numpy vectorised", why="trains the seed's recipe only")]
    assert rep["recipe"]["name"] == recipe


def test_op_count_and_bound_are_stated():
    ops = numba_kernel.ops_per_network_epoch(2)
    assert 12 * numba_kernel.SIGMOID_OPS < ops < 12 * numba_kernel.SIGMOID_OPS + 400
    bound, ops2, how = harness.compute_bound()
    assert ops2 == ops and bound > 0 and str(ops) in how


def test_bench_command_parses():
    args = cli.parser().parse_args(["bench", "--quick", "--json", "x.json"])
    assert args.quick and args.json == "x.json" and args.recipe == "seed"
    assert cli.parser().parse_args(["bench", "--recipe", "adam"]).recipe == "adam"


def test_proc_field_reads_cpuinfo_and_meminfo_layouts(tmp_path):
    from fastxor.machine import proc_field

    f = tmp_path / "info"
    f.write_text("processor\t: 0\nmodel name\t: Some CPU @ 3GHz\nMemAvailable:    1024 kB\n")
    assert proc_field(f, "model name") == "Some CPU @ 3GHz"
    assert proc_field(f, "MemAvailable") == "1024 kB"
    assert proc_field(f, "missing") is None
    assert proc_field(tmp_path / "absent", "model name") is None


def test_benchmarks_time_the_kernel_long_runs_use(monkeypatch):
    """Within ``numba_kernel.unrolled_only`` a short warm-up run loads the
    unrolled kernel, the one the timed long runs use, not the looped kernel
    a short run rents; outside it, the same short run rents the looped one."""
    import fastxor
    from fastxor import config

    monkeypatch.setattr(numba_kernel, "_LOADED", {})
    with numba_kernel.unrolled_only():
        fastxor.train(10, epochs=5, hidden=3, backend="numba")
        fastxor.train(10, epochs=0, hidden=3, backend="numba")
        assert config.NUMBA_LOOPED_MAX_WORK < 0
    assert {key[-1] for key in numba_kernel._LOADED} == {False}
    assert config.NUMBA_LOOPED_MAX_WORK > 0
    numba_kernel._LOADED.clear()
    monkeypatch.setattr(numba_kernel, "_RENTED", {})
    monkeypatch.setattr(numba_kernel, "_compiled_on_disk_or_here", lambda *a: False)
    fastxor.train(10, epochs=5, hidden=3, backend="numba")
    assert {key[-1] for key in numba_kernel._LOADED} == {True}
