"""The GPU backend end to end: ``fastxor.train(backend="cupy")`` through the
real loader (fastxor/backends/cupy_kernel.py) and the real kernel source.

Every test takes the ``cupy_device`` fixture: real CuPy where it can run
kernels (``pytest -m gpu`` is then the GPU check), else the strict fake of
tests/fake_cupy, which compiles the exact module source as host C++, checks
every kernel argument against the entry's C signature, emulates CuPy's
``-ftz=true`` and memory pool, and guards every allocation. The module runs
unchanged on both; the tests of the fake itself are at the end.
"""
import numpy as np
import pytest

import fastxor
from fastxor import backends, config
from fastxor.backends import cupy_kernel as gpu
from fastxor.backends import numpy_reference as reference
from fastxor.data import boolean_function
from fastxor.params import init_params
from fastxor.state import Recipe

from helpers import (EPS32, assert_diverging_network_freezes, assert_float32_recipe_within_rounding,
                     assert_random_recipes_match_reference, random_config, run_backend, with_diverging_network)

pytestmark = pytest.mark.gpu


def is_fake(cupy):
    return getattr(cupy, "FAKE", False)


def assert_same_run(a, b):
    for x, y in zip(a.params.arrays(), b.params.arrays()):
        np.testing.assert_array_equal(x, y)
    for name in ("loss", "predictions", "solved_epoch", "diverged_epoch", "loss_history"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("hidden, dtype", [(1, "float32"), (2, "float32"), (3, "float32"), (8, "float32"),
                                           (2, "float64"), (5, "float64")])
def test_matches_reference(hidden, dtype, cupy_device, rng):
    """Random data, widths, learning rates, lengths and recording, against
    the NumPy reference: float64 to 1e-9; float32 within 4x the float32
    reference's own distance from float64 (how far rounding alone moves the
    trajectory) plus 64 ulp, for lr <= 1 (larger rates are chaotic, as in
    tests/test_kernel.py)."""
    for _ in range(2):
        X, y, n, epochs, lr, rec, scale, seed = random_config(rng, hidden, bool(rng.integers(2)))
        g = fastxor.train(n, epochs=epochs, lr=lr, hidden=hidden, init_scale=scale, seed=seed, X=X, y=y,
                          dtype=dtype, backend="cupy", record_every=rec)
        p = init_params(n, hidden, seed, init_scale=scale, dtype=dtype)
        r = run_backend("numpy", p, X, y, epochs, lr, rec)
        tight = lr <= 1
        gf, rf = g.params.to_flat(), r["params"].to_flat()
        if dtype == "float64":
            tol = 1e-9 * (1 + np.abs(rf))
        else:
            r64 = run_backend("numpy", p.astype(np.float64), X, y, epochs, lr, rec)["params"].to_flat()
            tol = 4 * np.abs(r64 - rf).max(axis=0) + 64 * EPS32 * (1 + np.abs(rf))
        assert (np.abs(gf - rf) <= tol)[:, tight].all()
        np.testing.assert_array_equal(g.diverged_epoch, r["diverged_epoch"])
        if dtype == "float64":
            np.testing.assert_array_equal(g.solved_epoch[tight], r["solved_epoch"][tight])
            if rec:
                np.testing.assert_allclose(g.loss_history[tight], r["loss_history"][tight], rtol=1e-9, atol=1e-12)
        *_, yk = reference.forward(g.params.astype(np.float64), X)
        np.testing.assert_allclose(g.loss, reference.loss_of(yk, y), rtol=2e-5, atol=1e-9)
        np.testing.assert_allclose(g.predictions, yk, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("hidden, dtype", [(1, "float32"), (2, "float32"), (7, "float32"), (2, "float64")])
def test_in_kernel_init_is_bit_identical_to_init_params(hidden, dtype, cupy_device, rng):
    """Per-network init scales, a random seed and a start beyond 2^32; float32
    scales stay above the flush-to-zero bound (see the next test)."""
    n = int(rng.integers(1, 300))
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    start = int(rng.choice([0, int(rng.integers(0, 2**40))]))
    scales = rng.uniform(1e-3, 3.0, n)
    g = fastxor.train(n, epochs=0, hidden=hidden, seed=seed, start=start, init_scale=scales, dtype=dtype,
                      backend="cupy")
    for a, b in zip(g.params.arrays(), init_params(n, hidden, seed, start, init_scale=scales, dtype=dtype).arrays()):
        np.testing.assert_array_equal(a, b)


def test_flush_to_zero_bound_of_the_float32_init(cupy_device, rng):
    """CuPy compiles with -ftz=true: a float32 value below 2^-126 becomes 0.
    The in-kernel init is bit-identical to ``init_params`` exactly when no
    non-zero initial value is subnormal, i.e. for init_scale >=
    ``gpu.ftz_init_scale_bound(hidden)`` (2^-103 sqrt(max(2, H)), about 1.4e-31
    for H = 2); below it the subnormal values, and only they, are 0."""
    if is_fake(cupy_device) and not cupy_device._fake.ftz_emulated():
        pytest.skip("flush-to-zero is emulated on x86 only")
    n, hidden = 400, 3
    seed = int(rng.integers(0, 2**63))
    bound = gpu.ftz_init_scale_bound(hidden)
    scales = bound * 2.0 ** rng.uniform(-40, 10, n)  # a value k 2^-23 s / sqrt(fan_in) is subnormal for small |k| s
    g = fastxor.train(n, epochs=0, hidden=hidden, seed=seed, init_scale=scales, backend="cupy").params.to_flat()
    ref = init_params(n, hidden, seed, init_scale=scales).to_flat()
    subnormal = (ref != 0) & (np.abs(ref) < np.finfo(np.float32).tiny)
    assert not subnormal[:, scales >= bound].any()
    assert subnormal[:, scales < bound].any()
    np.testing.assert_array_equal(g[~subnormal], ref[~subnormal])
    assert (g[subnormal] == 0).all()


def test_divergence_is_flagged_and_frozen(cupy_device, rng):
    for dtype in ("float32", "float64"):
        p = with_diverging_network(init_params(5, 2, int(rng.integers(0, 2**32)), dtype=dtype))
        lr = np.array([np.finfo(dtype).max * 0.5, 0.3, 0.3, 0.3, 0.3])
        g = fastxor.train(init=p, epochs=200, lr=lr, dtype=dtype, backend="cupy", record_every=10)
        assert g.diverged_epoch.tolist() == [0, -1, -1, -1, -1]
        assert np.isfinite(g.params.to_flat()).all()
        np.testing.assert_array_equal(g.params[0].W2, p[0].W2)  # frozen at its last finite state
        r = run_backend("numpy", p, *boolean_function("xor"), 200, lr, 10)
        np.testing.assert_array_equal(g.solved_epoch[1:], r["solved_epoch"][1:])


def test_random_recipes_match_reference(cupy_device, rng):
    """Every optimizer, loss, activation and option, drawn afresh, float64."""
    assert_random_recipes_match_reference("cupy", rng)


def test_float32_recipe_within_rounding(cupy_device, rng):
    assert_float32_recipe_within_rounding("cupy", rng)


def test_diverging_network_freezes_with_its_optimizer_state(cupy_device):
    assert_diverging_network_freezes("cupy")


@pytest.mark.parametrize("options", [
    dict(optimizer="adam", weight_decay=1e-3, activation="tanh", loss="bce_logits", target_loss=0.05),
    dict(optimizer="sgd", momentum=0.9, dampening=0.2, loss="bce", activation="relu", target_loss=0.1),
    dict(optimizer="adamw", weight_decay=0.01, momentum=None),
])
def test_recipe_segments_and_resume_equal_one_run(options, cupy_device, rng, tmp_path):
    """A recipe's optimizer state and step count carry across launches:
    progress segments and a saved run resumed equal one launch, bit for bit."""
    options = {k: v for k, v in options.items() if v is not None}
    n, seed = 150, int(rng.integers(0, 2**63))
    lr = rng.uniform(0.01, 0.05, n) if options["optimizer"] != "sgd" else rng.uniform(0.1, 1.0, n)
    kw = dict(seed=seed, backend="cupy", record_every=7, lr=lr, hidden=3, **options)
    one = fastxor.train(n, epochs=300, **kw)
    segmented = fastxor.train(n, epochs=300, progress=lambda d, t: None, **kw)
    assert_same_run(one, segmented)
    fastxor.train(n, epochs=113, **kw).save(tmp_path / "part.npz")
    resumed = fastxor.resume(tmp_path / "part.npz", 187, backend="cupy")
    assert_same_run(one, resumed)
    np.testing.assert_array_equal(one.optimizer_state, resumed.optimizer_state)
    if "target_loss" in options:
        np.testing.assert_array_equal(one.target_epoch, resumed.target_epoch)
        assert (one.target_epoch >= 0).any()


def _limit_to(cupy, nbytes):
    """Let this process allocate about ``nbytes`` more on the device (CuPy's
    pool limit: the same call on a real GPU and on the fake)."""
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    pool.set_limit(size=pool.used_bytes() + nbytes)


def _on_launch(monkeypatch, before):
    """Wrap the loader's kernels to call ``before()`` at each launch (real GPU
    and fake alike); the wrapper reports the kernel's local memory as it does."""
    real = gpu.get_kernel

    def wrapped(*args, **kw):
        kernel = real(*args, **kw)

        def launch(*a, **k):
            before()
            return kernel(*a, **k)
        launch.local_size_bytes = kernel.local_size_bytes
        return launch

    monkeypatch.setattr(gpu, "get_kernel", wrapped)


def _counting_launches(monkeypatch):
    """Count the loader's launches: a one-element list."""
    count = [0]
    _on_launch(monkeypatch, lambda: count.__setitem__(0, count[0] + 1))
    return count


@pytest.mark.parametrize("dtype, given", [("float32", False), ("float64", True)])
def test_chunking_on_a_device_that_holds_a_third(dtype, given, cupy_device, rng, monkeypatch):
    """A device with room for a third of the chunk buffers: several launches,
    results identical to one launch; no chunk's buffers outlive it (defect:
    every chunk's outputs stayed referenced, so the second chunk ran out of
    memory exactly when chunking was needed)."""
    n, epochs, k = 3000, 120, 7
    seed = int(rng.integers(0, 2**63))
    init = init_params(n, 2, seed, dtype=dtype) if given else "philox"
    kw = dict(epochs=epochs, seed=seed, dtype=dtype, backend="cupy", record_every=k, init=init,
              lr=rng.uniform(0.1, 2.0, n))
    whole = fastxor.train(None if given else n, **kw)
    per_net = gpu.bytes_per_network(Recipe(2, np.dtype(dtype)), -(-epochs // k), given)
    _limit_to(cupy_device, int(per_net * n / 3 / config.MEMORY_FRACTION) + 64 * 1024)
    launches = _counting_launches(monkeypatch)
    chunked = fastxor.train(None if given else n, **kw)
    assert launches[0] >= 3
    assert_same_run(whole, chunked)


def test_chunks_train_while_the_last_ones_results_come_back(fake, rng):
    """A run streamed through the GPU in chunks: two buffer sets, each with
    its stream, alternate; each chunk's kernel is queued before the previous
    chunk's results are copied back (the copies overlap the training); the
    result equals one launch's."""
    n, epochs, k = 3000, 60, 7
    kw = dict(epochs=epochs, seed=int(rng.integers(0, 2**32)), backend="cupy", record_every=k,
              lr=rng.uniform(0.1, 2.0, n), optimizer="adam")
    whole = fastxor.train(n, **kw)
    recipe = Recipe(2, np.dtype(np.float32), optimizer="adam")
    _limit_to(fake, int(gpu.bytes_per_network(recipe, -(-epochs // k), False) * n / 3 / config.MEMORY_FRACTION))
    fake._fake.trace = trace = []
    streamed = fastxor.train(n, **kw)
    assert_same_run(whole, streamed)
    np.testing.assert_array_equal(whole.optimizer_state, streamed.optimizer_state)
    launches = [i for i, (what, _) in enumerate(trace) if what == "launch"]
    streams = [trace[i][1] for i in launches]
    assert len(launches) >= 4 and len(set(streams)) == 2 and 0 not in streams
    assert all(a != b for a, b in zip(streams, streams[1:]))  # the two sets alternate
    for i, (here, after) in enumerate(zip(launches, launches[1:])):
        back = [j for j, (what, s) in enumerate(trace) if what == "to_host" and s == streams[i]]
        assert back and min(j for j in back if j > here) > after  # chunk i comes back after chunk i+1 is queued


def test_long_runs_are_split_into_launches(cupy_device, rng, monkeypatch):
    """Runs longer than LAUNCH_EPOCHS (which bounds Adam's bias-correction
    table) are several launches, continuing each other bit for bit."""
    kw = dict(seed=int(rng.integers(0, 2**63)), backend="cupy", record_every=7, optimizer="adam", lr=0.02,
              target_loss=0.1)
    one = fastxor.train(100, epochs=300, **kw)
    monkeypatch.setattr(gpu, "LAUNCH_EPOCHS", 37)
    launches = _counting_launches(monkeypatch)
    pieces = fastxor.train(100, epochs=300, **kw)
    assert launches[0] == 9  # ceil(300 / 37)
    assert_same_run(one, pieces)
    np.testing.assert_array_equal(one.optimizer_state, pieces.optimizer_state)
    np.testing.assert_array_equal(one.target_epoch, pieces.target_epoch)


def test_device_arrays_guard_and_results(cupy_device, rng):
    """device_arrays=True cannot chunk its results: a run that does not fit
    is refused up front with the numbers; one that fits equals the host run."""
    p = init_params(500, 2, int(rng.integers(0, 2**32)))
    d = fastxor.train(init=p, epochs=200, backend="cupy", device_arrays=True, record_every=20)
    h = fastxor.train(init=p, epochs=200, backend="cupy", record_every=20)
    assert type(d.loss).__module__.startswith("cupy") and type(d.params.W1).__module__.startswith("cupy")
    np.testing.assert_array_equal(d.loss.get(), h.loss)
    np.testing.assert_array_equal(d.loss_history.get(), h.loss_history)
    assert d.stats()["solved"] == h.stats()["solved"]
    assert d.summary() == h.summary()
    _limit_to(cupy_device, 200_000)
    with pytest.raises(MemoryError, match=r"device_arrays=True .*n_networks=100000 needs .* GiB"):
        fastxor.train(100_000, epochs=10, backend="cupy", device_arrays=True)
    fastxor.train(100_000, epochs=1, backend="cupy")  # chunked through the same small device


@pytest.mark.parametrize("options", [dict(target_loss=0.05), dict(function="parity3", hidden=3, lr_output=5.0)])
def test_statistics_of_results_on_the_gpu_are_computed_there(options, cupy_device, rng):
    """A result kept on the GPU is reduced there: its statistics equal the
    host result's (counts, exact epoch histograms, loss bins, stuck cells),
    and what comes to the host is the statistics themselves, no per-network
    array (up to 11 samples; with more, the stuck networks' cells are
    sorted on the host)."""
    n = 20_000
    kw = dict(epochs=600, seed=int(rng.integers(0, 2**32)), backend="cupy", lr=rng.uniform(0.05, 3.0, n), **options)
    host = fastxor.train(n, **kw)
    dev = fastxor.train(n, device_arrays=True, **kw)
    if is_fake(cupy_device):
        cupy_device._fake.copied.update(to_host=0)
    d, h = dev.statistics(), host.statistics()
    if is_fake(cupy_device):
        moved = cupy_device._fake.copied["to_host"]
        size = sum(getattr(d, k).nbytes for k in ("cells", "cell_counts", "cell_sums")) + sum(
            c.values.nbytes + c.counts.nbytes for c in (getattr(d, k) for k in HISTOGRAMS) if c is not None)
        assert moved <= size + 4096 and size < dev.loss.nbytes + dev.predictions.nbytes, (moved, size)
    assert_same_statistics(d, h)
    assert dev.summary() == host.summary()


HISTOGRAMS = ("solved_epochs", "losses", "cell_losses", "target_epochs")


def assert_same_statistics(d, h):
    """Two ``Stats`` equal: every count and histogram exactly, the cells'
    summed outputs to rounding (a GPU may sum in another order)."""
    assert 0 < h.solved < h.networks and len(h.cells) > 1  # something in every part of the statistics
    for name in ("networks", "solved", "diverged", "nonfinite_losses", "cells", "cell_counts"):
        np.testing.assert_array_equal(getattr(d, name), getattr(h, name), err_msg=name)
    for name in HISTOGRAMS:
        a, b = getattr(d, name), getattr(h, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a.values, b.values, err_msg=name)
            np.testing.assert_array_equal(a.counts, b.counts, err_msg=name)
    np.testing.assert_allclose(d.cell_sums, h.cell_sums, rtol=1e-12)
    assert d.config == h.config


@pytest.mark.parametrize("how", ["resident", "streamed", "two GPUs"])
def test_a_gpu_run_brings_back_its_statistics(how, cupy_device, rng, monkeypatch):
    """A GPU run to host arrays computes its statistics on the GPU as it ends
    (each streamed chunk's, or each GPU's, added up): they equal the
    statistics of the arrays it returns, and ``statistics()`` reads no
    per-network array. With more than 11 samples the host computes them."""
    from fastxor.stats import Stats

    n = 4000
    kw = dict(epochs=500, seed=int(rng.integers(0, 2**32)), backend="cupy", lr=rng.uniform(0.05, 3.0, n),
              target_loss=0.05)
    if how == "streamed":
        monkeypatch.setattr(gpu, "_fits_at_once", lambda *a: False)
        per_net = gpu.bytes_per_network(Recipe(2, np.dtype(np.float32), target_loss=0.05), 0, False)
        _limit_to(cupy_device, int(per_net * n / config.MEMORY_FRACTION))  # several chunks
    if how == "two GPUs":
        _gpus(cupy_device, 2)
        kw = dict(kw, devices="all")
        kw.pop("backend")
    launches = _counting_launches(monkeypatch)
    r = fastxor.train(n, **kw)
    assert r.computed_statistics is not None and launches[0] >= (3 if how == "streamed" else 1)
    if is_fake(cupy_device):
        cupy_device._fake.copied.update(to_host=0)
    computed = r.statistics()
    if is_fake(cupy_device):
        assert cupy_device._fake.copied["to_host"] == 0
    assert_same_statistics(computed, Stats.of(r))
    assert r.summary() == Stats.of(r).summary()
    parity = fastxor.train(500, epochs=50, backend="cupy", function="parity4", hidden=4)
    assert parity.computed_statistics is None and parity.statistics().networks == 500


def _ten_segments(monkeypatch):
    """Make every run with progress or Ctrl-C handling ten epoch segments."""
    from fastxor import training

    class TenSegments(training._Pacer):
        def __init__(self, n, total, **kw):
            super().__init__(n, total, **kw)
            self.next = max(1, total // 10)

        def measured(self, epochs, dt):
            pass

    monkeypatch.setattr(training, "_Pacer", TenSegments)


def test_results_on_the_gpu_train_in_segments(cupy_device, rng, monkeypatch):
    """device_arrays=True with a progress callback (ten epoch segments) and
    Ctrl-C handling: the whole state, optimizer buffers and events included,
    stays on the GPU, and equals one launch bit for bit."""
    _ten_segments(monkeypatch)
    kw = dict(epochs=300, seed=int(rng.integers(0, 2**32)), backend="cupy", record_every=7, optimizer="adam",
              lr=0.02, target_loss=0.1, device_arrays=True)
    one = fastxor.train(700, **kw)
    seen = []
    segmented = fastxor.train(700, progress=lambda d, t: seen.append(d), interruptible=True, **kw)
    assert len(seen) == 10 and seen[-1] == 300
    for name in ("loss", "predictions", "solved_epoch", "diverged_epoch", "loss_history", "target_epoch",
                 "optimizer_state"):
        a, b = getattr(one, name), getattr(segmented, name)
        assert type(b).__module__.startswith("cupy"), name
        np.testing.assert_array_equal(a.get(), b.get(), err_msg=name)
    for a, b in zip(one.params.arrays(), segmented.params.arrays()):
        np.testing.assert_array_equal(a.get(), b.get())


def test_a_result_on_the_gpu_resumes_there(cupy_device, rng):
    """``resume`` of a device_arrays result continues it on the GPU, exactly,
    without copying its state to the host, and leaves the result it started
    from as it was; on two GPUs, or from its parameters, it is copied back once."""
    kw = dict(seed=int(rng.integers(0, 2**32)), backend="cupy", record_every=9, optimizer="adam", lr=0.02,
              target_loss=0.1)
    one = fastxor.train(3000, epochs=200, **kw)
    half = fastxor.train(3000, epochs=80, device_arrays=True, **kw)
    before = half.loss.get(), half.optimizer_state.get(), half.solved_epoch.get()
    if is_fake(cupy_device):
        cupy_device._fake.copied.update(to_host=0)
    resumed = fastxor.resume(half, 120, backend="cupy")
    if is_fake(cupy_device):
        assert cupy_device._fake.copied["to_host"] < half.loss.nbytes  # not even one per-network array
    assert type(resumed.loss).__module__.startswith("cupy")
    for name in ("loss", "predictions", "solved_epoch", "diverged_epoch", "loss_history", "target_epoch",
                 "optimizer_state"):
        np.testing.assert_array_equal(getattr(one, name), getattr(resumed, name).get(), err_msg=name)
    for a, b in zip(one.params.arrays(), resumed.params.arrays()):
        np.testing.assert_array_equal(a, b.get())
    for a, b in zip(before, (half.loss, half.optimizer_state, half.solved_epoch)):
        np.testing.assert_array_equal(a, b.get())  # the result resumed from is unchanged
    _gpus(cupy_device, 2)
    assert_same_run(one, fastxor.resume(half, 120, devices="all"))
    again = fastxor.train(init=half.params, epochs=5, backend="cupy")
    assert again.params.W1.shape == (3000, 2, 2) and type(again.loss) is np.ndarray


def test_results_stay_on_the_gpu_when_they_fit(cupy_device, rng, monkeypatch):
    """device_arrays="auto": on the GPU for a cupy run whose results fit it
    with large chunks, else on the host (numba; a small GPU; several GPUs);
    anything else is refused."""
    kw = dict(epochs=20, seed=int(rng.integers(0, 2**32)), device_arrays="auto")
    on_gpu = fastxor.train(3000, backend="cupy", **kw)
    assert type(on_gpu.loss).__module__.startswith("cupy")
    assert type(fastxor.train(3000, backend="numba", **kw).loss) is np.ndarray
    monkeypatch.setattr(gpu, "device_result_fits", lambda *a: False)
    small = fastxor.train(3000, backend="cupy", **kw)
    assert type(small.loss) is np.ndarray
    np.testing.assert_array_equal(small.loss, on_gpu.loss.get())
    with pytest.raises(ValueError, match="device_arrays must be True, False or 'auto', got 'yes'"):
        fastxor.train(10, epochs=1, device_arrays="yes")


def test_the_command_line_brings_back_only_the_statistics(fake, tmp_path, capsys):
    """``fastxor train`` on the GPU without --out keeps the results there and
    prints what the host run prints, having copied back no per-network array;
    with --out every array comes back and is saved."""
    from fastxor.cli import main

    argv = ["train", "--networks", "20000", "--epochs", "300", "--backend", "cupy", "--progress", "off",
            "--lr", "2"]
    fake._fake.copied.update(to_host=0)
    assert main(argv) == 0
    moved = fake._fake.copied["to_host"]
    printed = capsys.readouterr().out
    assert main(argv + ["--out", str(tmp_path / "run.npz")]) == 0
    saved = fastxor.load(tmp_path / "run.npz")
    assert saved.summary() in printed
    per_network = saved.loss.nbytes + saved.predictions.nbytes + sum(a.nbytes for a in saved.params.arrays())
    assert moved < per_network / 5, (moved, per_network)


def test_auto_uses_the_gpu_only_from_the_crossover(cupy_device):
    assert backends.choose("auto", 1).NAME == "numba"
    assert backends.choose("auto", config.GPU_MIN_NETWORKS - 1).NAME == "numba"
    assert backends.choose("auto", config.GPU_MIN_NETWORKS).NAME == "cupy"
    assert fastxor.train(10, epochs=5).config["backend"] == "numba"
    assert fastxor.train(config.GPU_MIN_NETWORKS, epochs=2).config["backend"] == "cupy"


def test_segments_and_resume_equal_one_run(cupy_device, rng, tmp_path):
    """Progress segments, and a saved run resumed, equal one long launch."""
    n, seed = 257, int(rng.integers(0, 2**63))
    kw = dict(seed=seed, backend="cupy", record_every=9, lr=rng.uniform(0.1, 3.0, n))
    one = fastxor.train(n, epochs=400, **kw)
    seen = []
    segmented = fastxor.train(n, epochs=400, progress=lambda d, t: seen.append(d), **kw)
    assert len(seen) >= 1 and seen[-1] == 400
    assert_same_run(one, segmented)
    fastxor.train(n, epochs=130, **kw).save(tmp_path / "half.npz")
    resumed = fastxor.resume(tmp_path / "half.npz", 270, backend="cupy")
    assert_same_run(one, resumed)


def test_a_cupy_that_cannot_compile_is_not_usable(cupy_device, monkeypatch):
    """A driver without NVRTC or headers: CuPy imports and sees a device, but
    compiling fails. The backend says so, with the fix, and auto avoids it."""
    if not is_fake(cupy_device):
        pytest.skip("simulates a missing CUDA toolkit")

    def no_nvrtc(*args, **kwargs):
        raise cupy_device.cuda.compiler.CompileException("nvrtc: error: failed to open libnvrtc-builtins.so.12")

    monkeypatch.setattr(cupy_device, "RawModule", no_nvrtc)
    gpu.problem.cache_clear()
    why = gpu.problem()
    assert "cannot compile" in why and "CUDA toolkit" in why and "libnvrtc" in why
    assert backends.choose("auto", 10**7).NAME == "numba"
    with pytest.raises(ImportError, match="cannot compile"):
        fastxor.train(10, epochs=1, backend="cupy")


def test_sigmoid_worst_error_over_the_whole_float32_range(cupy_device):
    """The kernel's float32 sigmoid (expf and a reciprocal that equals IEEE
    1.0f/x for every x = 1 + e, by the argument in the kernel's comment)
    against float64 over 2^20 float32 values spread over every binade, +-0,
    +-inf, subnormals and NaN, with CuPy's flush-to-zero: at most 2 ulp on
    the host build (the host's expf is within 1 ulp), 3 on a GPU (CUDA's
    expf within 2); subnormal results 0, NaN kept."""
    fake = cupy_device
    source = gpu.module_source(Recipe(1, np.dtype(np.float32))) + (
        'extern "C" __global__ void sigmoid_of(const float* z, float* out, long long n) {\n'
        "    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
        "    if (i < n) out[i] = Math<float, false>::sigmoid(z[i]);\n}\n")
    f = fake.RawModule(code=source).get_function("sigmoid_of")
    bits = np.linspace(0, 2**32 - 1, 2**20).astype(np.uint64).astype(np.uint32)
    z = np.concatenate([bits.view(np.float32), np.float32([0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45,
                                                          88.72, -88.72, -103.0, -87.0, 17.0])])
    out = fake.empty(z.size, np.float32)
    f((-(-z.size // 128),), (128,), (fake.asarray(z), out, np.int64(z.size)))
    got = out.get()
    with np.errstate(all="ignore"):
        ref = 1 / (1 + np.exp(-z.astype(np.float64)))
    nan = np.isnan(z)
    assert np.isnan(got[nan]).all()
    tiny = ref < np.finfo(np.float32).tiny
    if not is_fake(fake) or fake._fake.ftz_emulated():
        assert (got[tiny & ~nan] == 0).all()
    ok = ~nan & ~tiny
    ulps = np.abs(got[ok] - ref[ok]) / np.spacing(ref[ok].astype(np.float32)).astype(np.float64)
    print(f"sigmoid worst error {ulps.max():.2f} ulp")
    assert ulps.max() <= (2.0 if is_fake(fake) else 3.0), ulps.max()


def test_gpu_benchmark_script_runs_end_to_end(fake, tmp_path, monkeypatch):
    """bench/gpu_bench.py (what bash bench/gpu_check.sh runs when a GPU is
    lent) at toy sizes on the fake: every section measured, nothing raised,
    every recipe's result valid against the reference -- so the rare GPU
    run is never lost to a crash of the script."""
    import json
    import runpy
    from pathlib import Path

    out = tmp_path / "gpu.json"
    fake._fake.set_devices(2)  # the devices section splits the run over two
    monkeypatch.setattr("sys.argv", ["gpu_bench.py", "--quick", "--out", str(out)])
    runpy.run_path(str(Path(__file__).resolve().parent.parent / "bench" / "gpu_bench.py"), run_name="__main__")
    res = json.loads(out.read_text())
    assert res["errors"] == []
    f = res["figures"]
    assert set(f) == {"bound_h2_float32", "cases", "fast_math", "single_network", "n_sweep_vs_numba",
                      "numba_statistics", "cli_1e7", "recipes", "peers", "scale", "devices", "nsight"}
    scale = f["scale"]
    assert scale["kernel_seconds"] > 0 and scale["cli"]["rc"] == 0 and scale["cli"]["seconds"] > 0
    assert scale["three_times_n_completed"] and scale["cli_over_kernel"] > 0
    assert f["devices"]["devices"] == 2 and f["devices"]["identical"] and f["devices"]["speedup"] > 0
    assert set(res["sm_clock_mhz"]) >= {"cases", "scale"}
    assert f["cases"][0]["valid"] and len(f["cases"]) == 8
    assert {(c["dtype"], c["hidden"]) for c in f["cases"]} == {("float32", h) for h in (2, 3, 4, 8)} | {
        ("float64", 2), ("float64", 8)}
    assert all(c["fraction_of_bound"] > 0 for c in f["cases"])
    assert f["fast_math"]["intervals_overlap"]
    assert f["numba_statistics"]["networks_whose_outcome_differs"] <= 5
    assert f["cli_1e7"]["rc"] == 0 and "solved:" in f["cli_1e7"]["stdout"]
    assert all(r["valid"] for r in f["recipes"]) and len(f["recipes"]) == 9
    peers = {r["impl"]: r for r in f["peers"]}
    assert all(r.get("valid", True) and "error" not in r for r in peers.values()), peers
    assert peers["fastxor cupy"]["fastxor_cupy_x"] == 1 and peers["torch batched (cuda)"]["why"]
    assert f["bound_h2_float32"]["instructions_per_network_epoch"] > 0


# --- the fake itself: strict where CuPy would silently misbehave ------------------


@pytest.mark.parametrize("options", [
    {}, dict(loss="bce", activation="tanh", momentum=0.9), dict(output="linear", hidden=3, lr=(0.5, 40.0)),
    dict(loss="bce_logits", optimizer="adam", lr=(0.01, 0.1), target_loss=0.1),
    dict(function="parity3", hidden=3), dict(function="0001", dtype="float64", lr=(1.0, 50.0)),
])
def test_folded_targets_and_the_entry_without_history_change_no_bit(options, cupy_device, rng, monkeypatch):
    """The kernel's compile-time targets (each sample's terms folded by hand)
    and its entry without history train exactly what the entry reading the
    targets at run time, with history, trains: every array bit for bit,
    diverging networks (NaN outputs) included."""
    n = 600
    options = dict(options)
    lo, hi = options.pop("lr", (0.1, 5.0))
    kw = dict(epochs=250, seed=int(rng.integers(0, 2**32)), backend="cupy", lr=rng.uniform(lo, hi, n), **options)
    entries = []
    real = gpu.get_kernel

    def spy(recipe, boolean=True, targets=-1, history=True):
        entries.append((targets, history))
        return real(recipe, boolean, targets, history)

    monkeypatch.setattr(gpu, "get_kernel", spy)
    folded = fastxor.train(n, **kw)
    assert entries[-1][0] >= 0 and entries[-1][1] is False
    monkeypatch.setattr(gpu, "target_bits", lambda y: -1)
    plain = fastxor.train(n, record_every=1000, **kw)  # the entry with history; targets read at run time
    assert entries[-1] == (-1, True)
    for a, b in zip(folded.params.arrays(), plain.params.arrays()):
        np.testing.assert_array_equal(a, b)
    for name in ("loss", "predictions", "solved_epoch", "diverged_epoch", "target_epoch", "optimizer_state"):
        a, b = getattr(folded, name), getattr(plain, name)
        assert (a is None) == (b is None) and (a is None or np.array_equal(a, b, equal_nan=True)), name
    if options.get("output") == "linear":
        assert folded.diverged.any() and not folded.diverged.all()


def test_an_entry_without_history_that_spills_is_not_used(monkeypatch):
    """A run recording no loss uses the entry without history unless that one
    uses local memory (register spills: seen for Adam at H = 8), where the
    entry with history is used; a run recording the loss always uses the latter."""
    from fastxor.state import Data

    class Entry:
        def __init__(self, history, spills):
            self.history, self.local_size_bytes = history, spills

    spills = {False: 0}
    monkeypatch.setattr(gpu, "get_kernel", lambda recipe, boolean=True, targets=-1, history=True: Entry(
        history, 0 if history else spills[False]))
    X, y = boolean_function("xor")
    data, recipe = Data(X, y, np.sign(y - 0.5)), Recipe(8, np.dtype(np.float32), optimizer="adam")
    assert gpu.launch_kernel(recipe, data, 0).history is False
    assert gpu.launch_kernel(recipe, data, 10).history is True
    spills[False] = 424
    assert gpu.launch_kernel(recipe, data, 0).history is True


def test_recording_the_loss_changes_no_network(cupy_device, rng):
    """A run that records its loss and one that does not train the same
    parameters, outputs and events, bit for bit."""
    kw = dict(epochs=250, seed=int(rng.integers(0, 2**32)), backend="cupy", lr=rng.uniform(0.1, 2.0, 300))
    plain, recorded = fastxor.train(300, **kw), fastxor.train(300, record_every=9, **kw)
    for x, y in zip(plain.params.arrays(), recorded.params.arrays()):
        np.testing.assert_array_equal(x, y)
    for name in ("loss", "predictions", "solved_epoch", "diverged_epoch"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(recorded, name), err_msg=name)
    assert plain.loss_history is None and recorded.loss_history.shape == (300, 28)


@pytest.mark.parametrize("options", [{}, dict(optimizer="adam", target_loss=0.05, function="parity3", hidden=3)])
def test_a_run_that_fits_stays_on_the_device_between_segments(options, fake, monkeypatch, rng):
    """Ten epoch segments of a run that fits the GPU: the state goes up once
    and comes back once, with each segment's loss history (the streamed path,
    forced, moves the whole state every segment), and both equal one launch
    bit for bit."""
    kw = dict(epochs=300, seed=int(rng.integers(0, 2**32)), backend="cupy", record_every=7,
              lr=rng.uniform(0.1, 2.0, 3000), **options)
    one = fastxor.train(3000, **kw)
    _ten_segments(monkeypatch)
    moved = {}
    for how in ("resident", "streamed"):
        if how == "streamed":
            monkeypatch.setattr(gpu, "_fits_at_once", lambda *a: False)
        fake._fake.copied.update(to_device=0, to_host=0)
        r = fastxor.train(3000, progress=lambda d, t: None, **kw)
        moved[how] = dict(fake._fake.copied)
        assert_same_run(one, r)
        for name in ("target_epoch", "optimizer_state"):
            a, b = getattr(one, name), getattr(r, name)
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), name
    history = one.loss_history.nbytes
    assert moved["resident"]["to_host"] - history < (moved["streamed"]["to_host"] - history) / 5, moved
    assert moved["resident"]["to_device"] < moved["streamed"]["to_device"] / 5, moved


@pytest.mark.parametrize("n, record_every, options, capacity", [
    (2_000_000, 0, {}, 0),  # the seed's recipe, one chunk
    (2_000_000, 1, dict(optimizer="adam"), 64 << 20),  # optimizer buffers and history, many chunks
    (1_000_000, 0, dict(function="parity4", hidden=4), 64 << 20),  # 16 samples, chunked
    (500_000, 0, dict(function="parity6", hidden=2), 0),  # 64 samples: the predictions dominate
    (1_000_000, 0, dict(dtype="float64", hidden=3), 0),
])
def test_the_host_memory_estimate_is_within_a_fifth_of_the_peak(n, record_every, options, capacity, monkeypatch,
                                                                fake):
    """``memory_bytes``, what a run is refused by before it starts, against
    the host peak tracemalloc measures (the fake's device memory is mmap'd:
    not host memory, not traced): 0.97-1.2x. It was 2x ``run_bytes`` (1.4-2x
    the peak: a 128 GiB host refused runs that fit) and at 64 samples 0.8x."""
    import tracemalloc

    from fastxor import training
    from fastxor.state import history_rows

    if capacity:
        fake._fake.set_capacity(capacity)
    seen = {}
    check = training.check_memory

    def spy(backend, n_, recipe, epochs, k, extra=0):
        seen["estimate"] = backend.memory_bytes(n_, recipe, history_rows(epochs, k))
        return check(backend, n_, recipe, epochs, k, extra)

    monkeypatch.setattr(training, "check_memory", spy)
    fastxor.train(100, epochs=2, backend="cupy", record_every=record_every, **options)  # compiled before measuring
    tracemalloc.start()
    try:
        r = fastxor.train(n, epochs=2, backend="cupy", record_every=record_every, **options)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.n_networks == n
    assert 0.97 <= seen["estimate"] / peak <= 1.2, (seen["estimate"], peak)


@pytest.fixture
def fake(cupy_device):
    if not is_fake(cupy_device):
        pytest.skip("tests of tests/fake_cupy")
    return cupy_device


SEED_F32 = Recipe(2, np.dtype(np.float32))


def _seed_kernel(fake):
    return fake.RawModule(code=gpu.module_source(SEED_F32)).get_function(gpu.entry_name(SEED_F32))


def _seed_arguments(fake, networks, **change):
    """The seed kernel's 20 arguments for ``networks`` networks, as the loader passes them."""
    n = networks
    a = dict(init=np.uint64(0), seed=np.uint64(1), start=np.uint64(0), scale=fake.asarray(np.ones(n)),
             rates=fake.asarray(np.full(n, 0.1, np.float32)), consts=fake.asarray(SEED_F32.constants()),
             bias=np.uint64(0), data=fake.zeros(16, np.float32), epoch0=np.int64(0), epochs=np.int32(3), rec=np.int32(0),
             n=np.int64(n), params=fake.empty(9 * n, np.float32), buffers=np.uint64(0),
             loss=fake.empty(n, np.float32), pred=fake.empty(4 * n, np.float32),
             solved=fake.full(n, -1, np.int64), diverged=fake.full(n, -1, np.int64), target=np.uint64(0),
             history=np.uint64(0))
    a.update(change)
    return tuple(a.values())


def test_fake_refuses_what_cupy_would_garble(fake):
    f, n = _seed_kernel(fake), 4
    f((1,), (32,), _seed_arguments(fake, n))
    for change, error in [
        (dict(epochs=np.int64(3)), "8 bytes"),                         # size differs from int
        (dict(epochs=3), "int64"),                                     # a Python int is int64
        (dict(n=np.float64(n)), "float64"),                            # kind differs
        (dict(rates=fake.asarray(np.full(n, 0.1))), "dtype float64"),  # pointee differs
        (dict(rates=np.full(n, 0.1, np.float32)), "Unsupported type"),  # a host array
        (dict(init=np.uint64(5)), "pointer"),                          # only 0 is a null pointer
        (dict(params=fake.empty((9, 2 * n), np.float32)[:, ::2]), "C-contiguous"),
    ]:
        with pytest.raises((TypeError, ValueError), match=error):
            f((1,), (32,), _seed_arguments(fake, n, **change))
    with pytest.raises(TypeError, match="takes 20 arguments"):
        f((1,), (32,), _seed_arguments(fake, n)[:-1])
    with pytest.raises(TypeError, match="tuples"):
        f(1, 32, _seed_arguments(fake, n))


def test_fake_detects_out_of_bounds_writes(fake):
    n = 5
    with pytest.raises(RuntimeError, match="outside a device allocation"):  # the loss output one network short
        _seed_kernel(fake)((1,), (32,), _seed_arguments(fake, n, loss=fake.empty(n - 1, np.float32)))


def test_fake_memory_behaves_like_cupys_pool(fake):
    fake._fake.set_capacity(10 << 20)
    pool = fake.get_default_memory_pool()
    a = fake.empty(4 << 20, dtype=np.uint8)
    free, total = fake.cuda.runtime.memGetInfo()
    assert total == 10 << 20 and free == (6 << 20)
    b = fake.empty(4 << 20, dtype=np.uint8)
    with pytest.raises(fake.cuda.memory.OutOfMemoryError) as err:  # a and b are referenced: never freed
        fake.empty(4 << 20, dtype=np.uint8)
    assert isinstance(err.value, MemoryError)
    del b
    assert pool.free_bytes() == 4 << 20 and fake.cuda.runtime.memGetInfo()[0] == 2 << 20  # pooled, not free
    c = fake.empty(3 << 20, dtype=np.uint8)  # reuses the pooled block
    assert pool.free_bytes() == 0 and pool.used_bytes() == 8 << 20
    del a, c
    assert fake.empty(9 << 20, dtype=np.uint8).nbytes == 9 << 20  # pooled blocks freed to make room
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(fake.zeros(3))


# --- several GPUs in one process (backends/cupy_devices.py) ------------------------


def _gpus(cupy, k):
    """``k`` GPUs: the fake gets them; a real machine with fewer skips."""
    if is_fake(cupy):
        cupy._fake.set_devices(k)
    elif cupy.cuda.runtime.getDeviceCount() < k:
        pytest.skip(f"needs {k} GPUs")


@pytest.mark.parametrize("networks, devices, options", [
    (1000, "all", {}),
    (1001, [2, 0], dict(optimizer="adam", target_loss=0.05, hidden=3)),  # uneven ranges, listed order
    (2, "all", dict(momentum=0.9, function="parity3", hidden=3, dtype="float64")),  # fewer networks than GPUs
])
def test_several_gpus_train_what_one_trains(networks, devices, options, cupy_device, rng):
    """The networks split among GPUs (one host thread each) give one GPU's
    run bit for bit, straight and in epoch segments (each GPU keeping its
    range on the device), with every listed GPU used and the same statistics."""
    _gpus(cupy_device, 3)
    kw = dict(epochs=300, seed=int(rng.integers(0, 2**32)), backend="cupy", record_every=7,
              lr=rng.uniform(0.1, 2.0, networks), **options)
    one = fastxor.train(networks, **kw)
    ids = [0, 1, 2] if devices == "all" else devices
    for progress in (None, lambda d, t: None):
        if is_fake(cupy_device):
            cupy_device._fake.launches_on.clear()
        r = fastxor.train(networks, devices=devices, progress=progress, **kw)
        assert_same_run(one, r)
        for name in ("target_epoch", "optimizer_state"):
            a, b = getattr(one, name), getattr(r, name)
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b)), name
        assert r.stats() == one.stats()
        assert r.config["devices"] == ids and r.config["backend"] == "cupy"
        if is_fake(cupy_device):
            assert sorted(cupy_device._fake.launches_on) == sorted(ids[:networks])


def test_gpus_run_at_once(cupy_device, rng, monkeypatch):
    """Each GPU has its own host thread: every GPU's launch waits at a
    barrier for the others' (a serial loop over the GPUs would time out)."""
    import threading

    _gpus(cupy_device, 3)
    barrier, seen = threading.Barrier(3, timeout=30), []

    def meet():
        seen.append((threading.get_ident(), cupy_device.cuda.Device().id))
        barrier.wait()

    _on_launch(monkeypatch, meet)
    fastxor.train(600, epochs=50, seed=int(rng.integers(0, 2**32)), devices="all")
    assert len(seen) == 3 and len({t for t, _ in seen}) == 3 and {d for _, d in seen} == {0, 1, 2}


@pytest.mark.parametrize("given", [False, True])
def test_small_gpus_each_stream_their_range(given, fake, rng, monkeypatch):
    """GPUs that each hold a third of their range's chunk buffers: each
    streams its networks in chunks; the result equals one large GPU's."""
    n, epochs, k = 3000, 120, 7
    seed = int(rng.integers(0, 2**63))
    init = init_params(n, 2, seed) if given else "philox"
    kw = dict(epochs=epochs, seed=seed, backend="cupy", record_every=k, init=init, lr=rng.uniform(0.1, 2.0, n))
    whole = fastxor.train(None if given else n, **kw)
    per_net = gpu.bytes_per_network(Recipe(2, np.dtype(np.float32)), -(-epochs // k), given)
    fake.get_default_memory_pool().free_all_blocks()
    fake._fake.set_devices(2)
    fake._fake.set_capacity(int(per_net * n / 2 / 3 / config.MEMORY_FRACTION) + 8 * 1024)
    launches = _counting_launches(monkeypatch)
    split = fastxor.train(None if given else n, devices=[0, 1], **kw)
    assert launches[0] >= 6 and set(fake._fake.launches_on) == {0, 1}
    assert_same_run(whole, split)


def test_resume_on_other_gpus_continues_the_run(cupy_device, rng, tmp_path):
    """A run saved from one GPU, resumed on two (API and CLI), equals one run."""
    from fastxor.cli import main

    _gpus(cupy_device, 2)
    kw = dict(seed=int(rng.integers(0, 2**32)), backend="cupy", record_every=9, optimizer="adam", lr=0.02)
    one = fastxor.train(501, epochs=400, **kw)
    fastxor.train(501, epochs=130, **kw).save(tmp_path / "half.npz")
    assert_same_run(one, fastxor.resume(tmp_path / "half.npz", 270, devices="all"))
    assert main(["train", "--resume", str(tmp_path / "half.npz"), "--epochs", "270", "--devices", "1,0",
                 "--out", str(tmp_path / "cli.npz"), "--progress", "off"]) == 0
    cli = fastxor.load(tmp_path / "cli.npz")
    assert_same_run(one, cli)
    assert cli.config["devices"] == [1, 0]


def test_devices_are_checked(fake, capsys):
    """A bad ``devices`` is one clear error naming the argument and the ids allowed."""
    from fastxor.cli import main

    fake._fake.set_devices(2)
    for devices, error in [("gpu", ValueError), ([0, 2], ValueError), ([1, 1], ValueError), ([], ValueError),
                           (True, TypeError), (1.5, TypeError), (["0"], TypeError)]:
        with pytest.raises(error, match=r"devices (must be 'all' or GPU ids in \[0, 1\] \(this machine has 2 "
                                        r"GPUs\)|lists a GPU twice)"):
            fastxor.train(10, epochs=1, devices=devices)
    assert fastxor.train(10, epochs=1, devices=1).config["devices"] == [1]
    with pytest.raises(ValueError, match="devices= chooses GPUs: it needs backend='cupy'"):
        fastxor.train(10, epochs=1, devices="all", backend="numba")
    with pytest.raises(ValueError, match="device_arrays=True keeps the result on the current GPU"):
        fastxor.train(10, epochs=1, devices="all", device_arrays=True)
    with pytest.raises(SystemExit) as usage:  # argparse's usage error
        main(["train", "--networks", "10", "--epochs", "1", "--devices", "0,x"])
    assert usage.value.code == 2
    assert main(["train", "--networks", "10", "--epochs", "1", "--devices", "3", "--progress", "off"]) == 2
    err = capsys.readouterr().err
    assert "--devices: must be all or GPU ids like 0,1, got '0,x'" in err
    assert "devices must be 'all' or GPU ids in [0, 1] (this machine has 2 GPUs), got 3" in err
    assert "Traceback" not in err


def test_host_memory_estimate_of_several_gpus(fake, monkeypatch):
    """With chunks streaming on four GPUs at once, the estimate covers the
    host peak tracemalloc measures. It counts a chunk's host copy per GPU in
    flight at once (real CuPy waits for a copy without the GIL, while the
    fake copies holding it): within 1.2x of the peak plus the three copies
    the fake does not overlap."""
    import tracemalloc

    from fastxor import training
    from fastxor.state import history_rows

    fake._fake.set_devices(4)
    fake._fake.set_capacity(32 << 20)
    seen = {}
    check = training.check_memory

    def spy(backend, n_, recipe, epochs, k, extra=0):
        seen["estimate"] = backend.memory_bytes(n_, recipe, history_rows(epochs, k))
        seen["copy"] = gpu.transit(n_ // 4, recipe, history_rows(epochs, k))[0]
        return check(backend, n_, recipe, epochs, k, extra)

    monkeypatch.setattr(training, "check_memory", spy)
    kw = dict(epochs=2, record_every=1, optimizer="adam", devices="all")
    fastxor.train(100, **kw)
    tracemalloc.start()
    try:
        fastxor.train(1_000_000, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= seen["estimate"] <= 1.2 * (peak + 3 * seen["copy"]), (seen, peak)


def test_fake_devices_follow_cuda(fake):
    """The fake's GPUs: the current device is per host thread; an array lives
    where it was made; pools and free memory are per device; a kernel or an
    operation given another device's array is refused, as on hardware."""
    import threading

    fake._fake.set_devices(2)
    assert fake.cuda.runtime.getDeviceCount() == 2 and fake.cuda.Device().id == 0
    a = fake.zeros(1000, np.float32)
    with fake.cuda.Device(1):
        b = fake.zeros(1000, np.float32)
        assert fake.cuda.Device().id == 1 and fake.cuda.runtime.getDevice() == 1
        assert fake.get_default_memory_pool().used_bytes() == 4096
        in_thread = []
        t = threading.Thread(target=lambda: in_thread.append(fake.cuda.Device().id))
        t.start()
        t.join()
        assert in_thread == [0]
        np.testing.assert_array_equal(a.get(), np.zeros(1000))  # get/set: from any device
        with pytest.raises(ValueError, match="array device = 0 while current = 1"):
            a + 1
        with pytest.raises(ValueError, match="array device = 0 while current = 1"):
            b[...] = a
        f, n = _seed_kernel(fake), 4
        f((1,), (32,), _seed_arguments(fake, n))
        with pytest.raises(ValueError, match="on device 0, launched on device 1"):
            with fake.cuda.Device(0):
                loss = fake.empty(n, np.float32)
            f((1,), (32,), _seed_arguments(fake, n, loss=loss))
    assert a.device.id == 0 and b.device.id == 1 and fake.cuda.Device().id == 0
    free = fake.cuda.runtime.memGetInfo()[0]
    with fake.cuda.Device(1):
        before = fake.cuda.runtime.memGetInfo()[0]
        big = fake.empty(1 << 20, np.uint8)
        assert fake.cuda.runtime.memGetInfo()[0] == before - (1 << 20)
    assert fake.cuda.runtime.memGetInfo()[0] == free and big.device.id == 1
    with pytest.raises(fake.cuda.runtime.CUDARuntimeError, match="invalid device ordinal"):
        fake.cuda.Device(2)
