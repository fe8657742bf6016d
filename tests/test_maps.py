"""Trainability maps (``fastxor.maps``): every cell is ``fastxor.train`` of its
network, box counting on boundaries of known dimension, zoom, files, plots,
streaming in blocks, the command line."""
import tracemalloc

import numpy as np
import pytest

import fastxor
from fastxor import cli, maps
from fastxor.maps import Map, basin_map, box_counting, lr_map


def _koch(levels):
    """The Koch snowflake's vertices (dimension log 4 / log 3)."""
    pts = np.array([[0, 0], [1, 0], [0.5, -np.sqrt(3) / 2], [0, 0]])
    rot = np.array([[0.5, -np.sqrt(3) / 2], [np.sqrt(3) / 2, 0.5]])
    for _ in range(levels):
        new = []
        for a, b in zip(pts[:-1], pts[1:]):
            d = (b - a) / 3
            new += [a, a + d, a + d + rot @ d, a + 2 * d]
        pts = np.array(new + [pts[-1]])
    return pts


def _raster(poly, r):
    """The polygon's inside on an r x r grid (scanlines, even-odd rule)."""
    lo, hi = poly.min(0), poly.max(0)
    p = (poly - lo) * (0.9 * r / (hi - lo).max()) + 0.05 * r
    mask = np.zeros((r, r), bool)
    a, b = p[:-1], p[1:]
    for row in range(r):
        yc = row + 0.5
        cross = ((a[:, 1] <= yc) & (b[:, 1] > yc)) | ((b[:, 1] <= yc) & (a[:, 1] > yc))
        t = (yc - a[cross, 1]) / (b[cross, 1] - a[cross, 1])
        xs = np.sort(a[cross, 0] + t * (b[cross, 0] - a[cross, 0]))
        for x0, x1 in zip(xs[::2], xs[1::2]):
            mask[row, int(np.ceil(x0 - 0.5)):int(np.floor(x1 - 0.5)) + 1] = True
    return mask


def test_box_counting_on_shapes_of_known_dimension(rng):
    """A straight line and a circle: 1 (within 0.05: at the largest boxes a
    small circle fills every box); the Koch snowflake (log 4 / log 3 =
    1.262) within the interval and its estimate within 0.06 of it (measured
    1.221: two decades of scale read a fractal low); a filled
    or empty map has no boundary; a map too small is refused."""
    r = 1024
    yy, xx = np.mgrid[0:r, 0:r]
    slope, offset = rng.uniform(0.2, 0.8), rng.uniform(0, 200)
    for mask in (yy > slope * xx + offset, (xx - 500) ** 2 + (yy - 520) ** 2 < rng.uniform(300, 450) ** 2):
        d, (lo, hi) = box_counting(mask)
        assert abs(d - 1) < 0.05 and lo <= 1.0 + 0.01 and hi >= 1.0 - 0.04, (d, lo, hi)
    koch = np.log(4) / np.log(3)
    d, (lo, hi) = box_counting(_raster(_koch(7), r))
    assert lo < koch < hi and abs(d - koch) < 0.06, (d, lo, hi)
    for flat in (np.zeros((64, 64), bool), np.ones((64, 64), bool)):
        with pytest.raises(ValueError, match="no boundary in this map"):
            box_counting(flat)
    with pytest.raises(ValueError, match="too small for box counting"):
        box_counting(np.eye(8, dtype=bool))


@pytest.mark.parametrize("dtype, backend", [("float64", "numba"), ("float32", "numba"), ("float64", "numpy")])
def test_every_lr_map_cell_is_train_of_its_network(dtype, backend, rng):
    """Row i, column j of the map is ``train`` of the start network with
    lr = x[j], lr_output = y[i]: checked on all cells in one train call and
    on single cells with scalar rates (the map's blocks: 7 cells)."""
    seed, index = int(rng.integers(0, 2**32)), int(rng.integers(0, 1000))
    m = lr_map((0.05, 20), (0.02, 50), resolution=(9, 6), epochs=300, seed=seed, index=index, dtype=dtype,
               backend=backend, block=7, activation="tanh")
    assert m.shape == (6, 9) and len(m.x) == 9 and len(m.y) == 6
    np.testing.assert_allclose(m.x[[0, -1]], (0.05, 20))
    np.testing.assert_allclose(np.diff(np.log(m.x)), np.log(400) / 8)
    start = fastxor.init_params(1, 2, seed, start=index, dtype=dtype)
    i, j = np.divmod(np.arange(54), 9)
    all_cells = fastxor.Params(*(np.repeat(a, 54, axis=0) for a in start.arrays()))
    r = fastxor.train(init=all_cells, epochs=300, lr=m.x[j], lr_output=m.y[i], dtype=dtype, backend=backend,
                      activation="tanh")
    np.testing.assert_array_equal(m.solved_epoch.ravel(), r.solved_epoch)
    np.testing.assert_array_equal(m.diverged_epoch.ravel(), r.diverged_epoch)
    np.testing.assert_array_equal(m.loss.ravel(), r.loss.astype(np.float64))
    for i, j in ((0, 0), (5, 8), (2, 6)):
        one = fastxor.train(init=start, epochs=300, lr=m.x[j], lr_output=m.y[i], dtype=dtype, backend=backend,
                            activation="tanh")
        assert one.solved_epoch[0] == m.solved_epoch[i, j] and one.loss[0] == m.loss[i, j]
        # outcome 0: solved at some epoch and never diverged (a network may solve and leave it again at high lr)
        assert (m.outcome[i, j] == 0) == bool(one.solved_epoch[0] >= 0 and one.diverged_epoch[0] < 0)


def test_every_basin_map_cell_starts_where_it_says(rng):
    """Cell (i, j) trains centre + x[j] u + y[i] v, with u, v the named
    parameters' unit vectors; random directions are orthonormal, and
    filter-normalised ones have each neuron's norm of the centre and no
    bias entries."""
    center = fastxor.init_params(1, 3, int(rng.integers(0, 2**32)), dtype="float64")
    m = basin_map(center, ("W1[2,1]", "b2"), ((-2, 1), (-0.5, 3)), resolution=(5, 4), epochs=400, lr=0.7)
    for i, j in ((0, 0), (3, 4), (1, 2)):
        p = center.astype(np.float64)
        W1, b2 = p.W1.copy(), p.b2.copy()
        W1[0, 2, 1] += m.x[j]
        b2[0, 0] += m.y[i]
        one = fastxor.train(init=fastxor.Params(W1, p.b1, p.W2, b2), epochs=400, lr=0.7, dtype="float64")
        assert one.solved_epoch[0] == m.solved_epoch[i, j] and one.loss[0] == m.loss[i, j]
        start = fastxor.train(init=fastxor.Params(W1, p.b1, p.W2, b2), epochs=0, dtype="float64")
        np.testing.assert_allclose(m.initial_loss[i, j], start.loss[0], rtol=1e-13)
    r = basin_map(center, "random", 1.0, resolution=4, epochs=0, direction_seed=3)
    u, v = r.spec["directions"]
    np.testing.assert_allclose([u @ u, v @ v, u @ v], [1, 1, 0], atol=1e-12)
    f = basin_map(center, "random", 1.0, resolution=4, epochs=0, direction_seed=3, filter_normalize=True)
    for w in f.spec["directions"]:
        d = fastxor.Params.from_flat(w[:, None].copy(), 3, 2)
        np.testing.assert_allclose(np.linalg.norm(d.W1[0], axis=1), np.linalg.norm(center.W1[0], axis=1))
        np.testing.assert_allclose(np.linalg.norm(d.W2[0]), np.linalg.norm(center.W2[0]))
        assert not d.b1.any() and not d.b2.any()


def test_outcomes_name_solved_stuck_groups_and_divergence():
    """A linear-output map where large rates diverge: outcome -1 exactly
    where diverged, 0 exactly where solved, the rest grouped by outputs;
    trainable follows the criterion ("converged" is the default here)."""
    m = lr_map((0.01, 30), (0.01, 30), resolution=24, epochs=400, output="linear", activation="tanh")
    assert m.criterion == "converged"
    start = fastxor.train(init=fastxor.init_params(1, 2, 0, dtype="float64"), epochs=0, output="linear",
                          activation="tanh", dtype="float64")
    np.testing.assert_allclose(m.initial_loss, start.loss[0], rtol=1e-15)
    np.testing.assert_array_equal(m.trainable, ~m.diverged & (m.loss < start.loss[0]))
    m.criterion = "finite"
    np.testing.assert_array_equal(m.outcome == -1, m.diverged)
    np.testing.assert_array_equal(m.outcome == 0, m.solved & ~m.diverged)
    np.testing.assert_array_equal(m.trainable, ~m.diverged)
    assert m.diverged.any() and m.solved.any() and (m.outcome > 0).any()
    assert m.outcome_labels[-1] == "diverged" and m.outcome_labels[0] == "solved"
    assert set(np.unique(m.outcome)) <= set(m.outcome_labels)
    assert m.diverged[-1, -1] and not m.diverged[0, 0]


def test_zoom_is_deterministic_and_float64_resolves_ten_decades(rng):
    m = lr_map((0.1, 10), (0.1, 10), resolution=8, epochs=200)
    a = m.zoom((2.0, 0.5), 1e10, resolution=(6, 5))
    b = m.zoom((2.0, 0.5), 1e10, resolution=(6, 5))
    for f in ("x", "y", "solved_epoch", "diverged_epoch", "loss", "outcome"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert a.resolved and (np.diff(a.x) > 0).all() and (np.diff(a.y) > 0).all()
    np.testing.assert_allclose(np.sqrt(a.x[0] * a.x[-1]), 2.0, rtol=1e-12)
    np.testing.assert_allclose(a.x[-1] / a.x[0], 100 ** 1e-10, rtol=1e-9)
    m32 = lr_map((0.1, 10), (0.1, 10), resolution=8, epochs=10, dtype="float32")
    with pytest.warns(UserWarning, match="float32 cannot tell every cell's coordinates apart"):
        z = m32.zoom((2.0, 0.5), 1e10)
    assert not z.resolved and "float32 cannot tell" in z.summary()


def test_save_load_and_plot(tmp_path):
    m = basin_map("philox", "random", 2.0, resolution=16, epochs=300, lr=2.0, seed=4)
    assert repr(m) == f"<fastxor.Map basin 16 x 16, 300 epochs, {100 * m.solved.mean():.1f} % trainable (solved)>"
    m.save(tmp_path / "m.npz")
    back = Map.load(tmp_path / "m.npz")
    for f in ("x", "y", "solved_epoch", "diverged_epoch", "loss", "outcome"):
        np.testing.assert_array_equal(getattr(back, f), getattr(m, f))
    assert back.outcome_labels == m.outcome_labels and back.criterion == m.criterion
    np.testing.assert_array_equal(back.spec["directions"], m.spec["directions"])
    z1, z2 = m.zoom((0.1, -0.2), 4), back.zoom((0.1, -0.2), 4)
    np.testing.assert_array_equal(z1.loss, z2.loss)
    with pytest.raises(ValueError, match="not a map"):
        Map.load(fastxor.train(5, epochs=1).save(tmp_path / "run.npz"))
    pytest.importorskip("matplotlib")
    assert m.plot(tmp_path / "m.png").stat().st_size > 10_000


def _peak(**kw):
    tracemalloc.start()
    try:
        m = lr_map((0.1, 10), (0.1, 10), epochs=50, dtype="float32", **kw)
        return m, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _streams(backend, small, big):
    """The same map in blocks of 1000 cells or in one: identical. Streamed,
    each further cell costs its share of the map's arrays and the final
    grouping (measured 68 B), not a training's (about 280 B a network on
    the Numba backend): the traced peak grows by < 100 B a cell from small^2
    to big^2 cells, and is under half the peak of training all big^2 cells
    in one block."""
    lr_map(resolution=4, epochs=1, dtype="float32", backend=backend)  # compiled before measuring
    whole, whole_peak = _peak(resolution=big, block=2**19, backend=backend)
    _, small_peak = _peak(resolution=small, block=1000, backend=backend)
    streamed, big_peak = _peak(resolution=big, block=1000, backend=backend)
    np.testing.assert_array_equal(whole.loss, streamed.loss)
    np.testing.assert_array_equal(whole.outcome, streamed.outcome)
    assert (big_peak - small_peak) / (big**2 - small**2) < 100, (small_peak, big_peak)
    assert big_peak < whole_peak / 2, (big_peak, whole_peak)


def test_a_map_streams_in_blocks():
    _streams("numba", 128, 256)


def test_a_map_streams_in_blocks_on_the_gpu_backend(cupy_device):
    """The same through the CUDA kernel's loader (the strict fake CuPy without
    a GPU, whose device arrays are host arrays tracemalloc sees)."""
    _streams("cupy", 128, 256)


def test_gpu_backend_streams_a_map(cupy_device):
    """The CUDA kernel (through the strict fake CuPy without a GPU) in blocks:
    every cell equal to one train call of all cells on it."""
    m = lr_map((0.1, 10), (0.1, 10), resolution=(7, 5), epochs=200, backend="cupy", block=8)
    start = fastxor.init_params(1, 2, 0, dtype="float64")
    i, j = np.divmod(np.arange(35), 7)
    r = fastxor.train(init=fastxor.Params(*(np.repeat(a, 35, axis=0) for a in start.arrays())), epochs=200,
                      lr=m.x[j], lr_output=m.y[i], dtype="float64", backend="cupy")
    np.testing.assert_array_equal(m.loss.ravel(), r.loss)
    np.testing.assert_array_equal(m.solved_epoch.ravel(), r.solved_epoch)


def test_bad_map_arguments_are_clear():
    with pytest.raises(TypeError, match=r"lr is not an option of a map \(the map's axes\)"):
        lr_map(resolution=4, lr=0.3)
    with pytest.raises(TypeError, match="n_networks is not an option of a map"):
        basin_map(resolution=4, n_networks=5)
    with pytest.raises(ValueError, match="momentum must be one number for the whole map"):
        basin_map(resolution=4, momentum=np.ones(3))
    with pytest.raises(ValueError, match="hidden_lr must have lo < hi"):
        lr_map((1.0, 0.1))
    with pytest.raises(ValueError, match=r"output_lr\[0\] must be a finite number in \(0.0, inf\)"):
        lr_map((0.1, 1), (0.0, 1))
    with pytest.raises(ValueError, match="init must hold one network"):
        lr_map(init=fastxor.init_params(2, 2, 0))
    with pytest.raises(ValueError, match=r"direction 'W1\[0\]' must name a parameter|is not a parameter"):
        basin_map(directions=("W1[0]", "b2"))
    with pytest.raises(ValueError, match="criterion must be one of 'solved', 'finite'"):
        lr_map(criterion="fast")
    with pytest.raises(ValueError, match=r"resolution\[0\] must be in \[2, 65536\]"):
        lr_map(resolution=1)


def test_command_line(tmp_path, capsys):
    out, png = tmp_path / "m.npz", tmp_path / "m.png"
    args = ["map", "lr", "--resolution", "12,10", "--epochs", "300", "--out", str(out), "--progress", "off",
            "--activation", "tanh"]
    assert cli.main(args) == 0
    text = capsys.readouterr().out
    m = Map.load(out)
    same = lr_map(resolution=(12, 10), epochs=300, activation="tanh")
    np.testing.assert_array_equal(m.loss, same.loss)
    assert f"{100 * same.solved.mean():6.2f} %  solved" in text
    assert cli.main(["map", "zoom", str(out), "--center", "1,1", "--factor", "100", "--out",
                     str(tmp_path / "z.npz"), "--progress", "off"]) == 0
    z = Map.load(tmp_path / "z.npz")
    np.testing.assert_array_equal(z.loss, m.zoom((1, 1), 100).loss)
    assert cli.main(["map", "basin", "--directions", "W1[0,1],W2[0,0]", "--resolution", "16", "--epochs", "100",
                     "--lr", "0.5", "--progress", "off"]) == 0
    capsys.readouterr()
    assert cli.main(["map", "lr", "--resolution", "8", "--output", "linear", "--loss", "bce"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "output='linear' trains with loss='mse'" in err
    if pytest.importorskip("matplotlib"):
        assert cli.main(["map", "zoom", str(out), "--center", "1,1", "--factor", "2", "--plot", str(png),
                         "--progress", "off"]) == 0
        assert png.stat().st_size > 10_000


def test_outputs_kept_limit_falls_back_to_one_unsolved_outcome(monkeypatch):
    monkeypatch.setattr(maps, "OUTPUTS_KEPT_MAX", 10)
    m = lr_map(resolution=8, epochs=100)
    assert set(np.unique(m.outcome)) <= {0, 1, -1} and "outputs not kept" in m.outcome_labels[1]
