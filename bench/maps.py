"""Trainability maps at scale, and the three worked examples of the README.

``scale``: a 4096 x 4096 lr map (16.7 million networks, the seed's XOR
network and recipe, float64, 500 epochs) on the Numba backend: its wall
time against the kernel's own time for the same networks (the backend's
``run`` on prepared states, block by block, nothing else), and its peak
memory (the resident set of a process that does only the map, and of one
that only imports fastxor and compiles the kernel, for the baseline).

``examples``: (1) the seed's network (XOR 2-2-1, sigmoid, MSE, SGD; the
start torch.manual_seed(0) gives) over hidden lr x output lr in
[1e-2, 1e2]^2 at 2048^2, zoomed twice where the solved/unsolved boundary is
busiest; (2) Sohl-Dickstein's setting as near as fastxor reaches (see
``SOHL_DICKSTEIN``), its convergent/divergent boundary followed at hidden
lr 3 and zoomed over six decades; (3) a Kolen-Pollack basin map of the seed's network over two of
its first-layer weights, after two training lengths. Images go to
docs/maps/, figures to bench/results/maps-<date>.json.

Run: ``make bench-maps`` (13 minutes on 2 cores: the scale benchmark 3, the
examples 10; needs torch and matplotlib, both in the test setup).
"""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import fastxor
from fastxor.backends.numba_kernel import unrolled_only
from fastxor.bench.harness import environment
from fastxor.maps import lr_map

#: Sohl-Dickstein (2024): a one-hidden-layer network y = a1 W1 tanh(a0 W0 x),
#: width n = 16, no biases, mean-field scales a0 = sqrt(2/n), a1 = 1/n,
#: weights, inputs and targets drawn from N(0, 1), MSE, full-batch gradient
#: descent with one rate per layer; convergent when the loss over the last
#: steps stays below the initial loss. Here: D = 8 inputs (fastxor's
#: limit; his input width is n = 16), H = 16, S = 16 points, biases present
#: (starting at 0, trained), the scales folded into the initial weights
#: (V0 = a0 W0 with a0 = sqrt(2/D), V1 = a1 W1): the same dynamics with each
#: layer's rate multiplied by 1/a^2, i.e. his axes shifted by a constant in
#: log space. 500 epochs; converged means final loss < initial loss.
SOHL_DICKSTEIN = dict(inputs=8, hidden=16, samples=16, epochs=500, seed=0)


def busiest_boundary(m, window=32):
    """The (x, y) centre of the window of cells holding most boundary cells
    (the trainable/untrainable edge): where to zoom next."""
    t = m.trainable
    edge = np.zeros(t.shape, bool)
    edge[:, :-1] |= t[:, 1:] != t[:, :-1]
    edge[:-1, :] |= t[1:, :] != t[:-1, :]
    ry, rx = (t.shape[0] // window) * window, (t.shape[1] // window) * window
    counts = edge[:ry, :rx].reshape(ry // window, window, rx // window, window).sum(axis=(1, 3))
    i, j = np.unravel_index(np.argmax(counts), counts.shape)
    ci, cj = i * window + window // 2, j * window + window // 2
    return float(m.x[cj]), float(m.y[ci])


def edge_point(m, x):
    """The point of the trainable/untrainable boundary in the column nearest
    ``x``, the lowest flip (to follow one boundary down the zooms)."""
    j = int(np.argmin(np.abs(np.log(m.x) - np.log(x)))) if m.log else int(np.argmin(np.abs(m.x - x)))
    col = m.trainable[:, j]
    flips = np.flatnonzero(col[:-1] != col[1:])
    if not flips.size:
        return busiest_boundary(m)
    i = int(flips[0])
    return float(m.x[j]), float(np.sqrt(m.y[i] * m.y[i + 1]) if m.log else (m.y[i] + m.y[i + 1]) / 2)


def _dimension(m):
    try:
        d, (lo, hi) = m.boundary_dimension()
        return dict(estimate=d, scales=[lo, hi])
    except ValueError as exc:
        return dict(error=str(exc))


def _record(m, png, **extra):
    m.plot(png)
    shares = {m.outcome_labels[int(c)]: float(k / m.outcome.size)
              for c, k in zip(*np.unique(m.outcome, return_counts=True))}
    return dict(extra, x=[float(m.x[0]), float(m.x[-1])], y=[float(m.y[0]), float(m.y[-1])],
                resolution=list(m.spec["resolution"]), epochs=m.spec["epochs"], criterion=m.criterion,
                trainable=float(m.trainable.mean()), outcomes=shares, dimension=_dimension(m),
                resolved=m.resolved, seconds=m.seconds, image=str(png))


def examples(out_dir, quick=False):
    out_dir.mkdir(parents=True, exist_ok=True)
    r1, r2, r3 = (256, 128, 128) if quick else (2048, 512, 1024)
    rows = {}
    seed_net = fastxor.torch_init([0], 2).astype(np.float64)
    print("1. the seed's network, hidden lr x output lr", flush=True)
    m = lr_map((1e-2, 1e2), (1e-2, 1e2), resolution=r1, epochs=2000, init=seed_net)
    level = [_record(m, out_dir / "xor-lr-map.png", zoom=1)]
    for k, factor in enumerate((30, 1000), start=1):
        c = busiest_boundary(m)
        m = m.zoom(c, factor if k == 1 else factor / 30)
        level.append(_record(m, out_dir / f"xor-lr-map-zoom{k}.png", zoom=factor, center=list(c)))
    rows["xor_lr_map"] = level
    for row in level:
        print(f"   zoom x{row['zoom']}: {row['seconds']:.0f} s, dimension {row['dimension']}", flush=True)

    print("2. Sohl-Dickstein's setting (tanh, linear output, MSE)", flush=True)
    sd = SOHL_DICKSTEIN
    rng = np.random.default_rng(sd["seed"])
    X = rng.standard_normal((sd["samples"], sd["inputs"]))
    y = rng.standard_normal(sd["samples"])
    a0, a1 = np.sqrt(2 / sd["inputs"]), 1 / sd["hidden"]
    start = fastxor.Params(a0 * rng.standard_normal((1, sd["hidden"], sd["inputs"])), np.zeros((1, sd["hidden"])),
                           a1 * rng.standard_normal((1, 1, sd["hidden"])), np.zeros((1, 1)))
    m = lr_map((1e-3, 1e3), (1e-3, 1e3), resolution=r2, epochs=sd["epochs"], init=start, X=X, y=y,
               activation="tanh", output="linear")
    level = [_record(m, out_dir / "sohl-dickstein-lr-map.png", zoom=1)]
    total, c = 1, (3.0, None)  # follow the divergence edge at hidden lr 3 (the chaotic corner: see the README)
    for k, factor in enumerate((100, 100, 100), start=1):
        c = edge_point(m, c[0])
        m = m.zoom(c, factor)
        total *= factor
        level.append(_record(m, out_dir / f"sohl-dickstein-zoom{k}.png", zoom=total, center=list(c)))
    rows["sohl_dickstein"] = dict(setting=sd, levels=level)
    for row in level:
        print(f"   zoom x{row['zoom']:g}: {row['seconds']:.0f} s, dimension {row['dimension']}", flush=True)

    print("3. Kolen-Pollack basin map of the seed's network", flush=True)
    level = []
    for epochs in (1000, 10000):
        m = fastxor.basin_map(seed_net, ("W1[0,0]", "W1[1,1]"), 10.0, resolution=r3, epochs=epochs, lr=0.5)
        level.append(_record(m, out_dir / f"xor-basin-{epochs}.png", lr=0.5))
        print(f"   {epochs} epochs: {m.seconds:.0f} s, dimension {level[-1]['dimension']}", flush=True)
    rows["kolen_pollack"] = level
    return rows


def _child_map(resolution, epochs):
    """In a fresh process: the map alone, then its peak resident set."""
    t0 = time.perf_counter()
    m = lr_map((1e-2, 1e2), (1e-2, 1e2), resolution=resolution, epochs=epochs, backend="numba")
    wall = time.perf_counter() - t0
    print(json.dumps(dict(wall=wall, map_seconds=m.seconds, peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          * 1024, solved=float(m.solved.mean()))))


def _child_baseline():
    """In a fresh process: import fastxor and compile the map's kernel (one tiny map)."""
    lr_map(resolution=4, epochs=1, backend="numba")
    print(json.dumps(dict(peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)))


def _kernel_seconds(resolution, epochs):
    """The Numba backend's own time for the map's networks: ``run`` on
    prepared states in the map's blocks, timed around ``run`` only."""
    from fastxor.backends import numba_kernel
    from fastxor.maps import BLOCK, _axis
    from fastxor.state import Data, KernelOutput, Recipe, State
    from fastxor.data import boolean_function, target_sides

    X, y = boolean_function("xor")
    data = Data(X, y, target_sides(y))
    recipe = Recipe(2, np.dtype(np.float64), lr_output=True)
    ax = _axis(1e-2, 1e2, resolution, True)
    start = fastxor.init_params(1, 2, 0, dtype="float64").to_flat()
    n = resolution * resolution
    total = 0.0
    for lo in range(0, n, BLOCK):
        m = min(BLOCK, n - lo)
        i, j = np.divmod(np.arange(lo, lo + m), resolution)
        state = State.fresh(np.repeat(start, m, axis=1), ax[j].copy(), recipe=recipe, lr_output=ax[i].copy())
        out = KernelOutput.empty(m, recipe)
        t0 = time.perf_counter()
        numba_kernel.run(state, data, epochs, 0, recipe, out)
        total += time.perf_counter() - t0
    return total


def scale(resolution, epochs):
    def child(*args):
        res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
        return json.loads(res.stdout.strip().splitlines()[-1])

    base = child("_baseline")
    full = child("_map", str(resolution), str(epochs))
    kernel = _kernel_seconds(resolution, epochs)
    n = resolution * resolution
    row = dict(resolution=resolution, networks=n, epochs=epochs, dtype="float64", backend="numba",
               map_seconds=full["map_seconds"], kernel_seconds=kernel, ratio=full["map_seconds"] / kernel,
               map_network_epochs_per_s=n * epochs / full["map_seconds"],
               kernel_network_epochs_per_s=n * epochs / kernel,
               peak_rss_bytes=full["peak_rss"], baseline_rss_bytes=base["peak_rss"])
    print(f"{resolution}^2 = {n} networks x {epochs} epochs: map {row['map_seconds']:.1f} s, kernel alone "
          f"{kernel:.1f} s: x{row['ratio']:.3f}; peak RSS {row['peak_rss_bytes'] / 2**30:.2f} GiB "
          f"(import + compile alone: {row['baseline_rss_bytes'] / 2**30:.2f} GiB)", flush=True)
    return row


def main():
    if sys.argv[1:2] == ["_map"]:
        return _child_map(int(sys.argv[2]), int(sys.argv[3]))
    if sys.argv[1:2] == ["_baseline"]:
        return _child_baseline()
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("scale", "examples", "all"))
    ap.add_argument("--resolution", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="small examples (a minute)")
    ap.add_argument("--images", default="docs/maps")
    ap.add_argument("--json", default=time.strftime("bench/results/maps-%Y%m%d.json"))
    args = ap.parse_args()
    doc = dict(environment=environment())
    path = Path(args.json)
    if path.exists():
        doc = dict(json.loads(path.read_text()), environment=environment())
    if args.what in ("scale", "all"):
        doc["scale"] = scale(args.resolution, args.epochs)
    if args.what in ("examples", "all"):
        doc["examples"] = examples(Path(args.images), args.quick)
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    with unrolled_only():  # warm-ups load the kernel the timed runs use
        main()
