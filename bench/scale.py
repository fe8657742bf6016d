"""Scaling benchmark: where the time and memory of one run go, from 10^5 to 10^7 networks.

For each N (float32, H = 2, XOR, seed 0), in one process and one run:
- the pieces of one ``fastxor.train`` call, timed apart: initial parameters
  (Philox, Numba), training (the backend's ``run`` over all epochs, one call:
  the kernel time alone), packaging (Params from the flat state), statistics
  (``summary()``: stats and stuck groups);
- the same work end to end as one API call, and through the command line
  (``fastxor train --progress on``: epoch segments of ~0.5 s, a progress bar),
  a fresh process whose peak memory (max RSS above its RSS before training)
  is compared with the size of the outputs;
- the kernel alone again at the end: ratios are to the mean of its two
  timings, since a shared machine drifts during a run of minutes.

Run: ``make bench-scale`` (or ``python bench/scale.py --sizes 1e5,1e6,1e7``);
writes ``bench/results/scale-<date>.json``.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

import fastxor
from fastxor import backends
from fastxor.backends.numba_kernel import unrolled_only
from fastxor.bench.harness import environment, timed
from fastxor.data import boolean_function, target_sides
from fastxor.params import InitSpec, Params
from fastxor.state import Data, KernelOutput, Recipe, State, fan_in

#: Epochs per size: the kernel part takes roughly 10-40 s on a 2-core machine.
EPOCHS = {100_000: 20_000, 1_000_000: 2_000, 10_000_000: 300}


def output_bytes(r):
    """Bytes of the arrays a TrainResult holds."""
    arrays = [*r.params.arrays(), r.loss, r.predictions, r.solved, r.solved_epoch, r.diverged, r.diverged_epoch]
    return sum(a.nbytes for a in arrays) + (r.loss_history.nbytes if r.loss_history is not None else 0)


def pieces(n, epochs):
    """The parts of one train call, timed apart (no progress, one segment)."""
    X, y = boolean_function("xor")
    recipe = Recipe(2, np.dtype(np.float32))
    spec = InitSpec(n, 2, 0, 0, np.ones(n), np.float32, recipe.inputs)
    flat, t_init = timed(spec.make_flat)
    state = State.fresh(flat, np.full(n, 0.1, np.float32))
    out = KernelOutput.empty(n, recipe)
    _, t_train = timed(backends.get("numba").run, state, Data(X, y, target_sides(y)), epochs, 0, recipe, out)
    _, t_pack = timed(Params.from_flat, state.params, 2, recipe.inputs)
    return dict(init_s=t_init, train_s=t_train, package_s=t_pack,
                init_networks_per_s=n / t_init, kernel_ne_per_s=n * epochs / t_train)


def cli_run(n, epochs):
    """``fastxor train`` in a fresh process: wall seconds of ``main`` (the
    kernels are loaded first, as the API timings assume), the peak RSS above
    the process's RSS before training (bytes), and progress lines drawn."""
    code = (
        "import resource, sys, time, fastxor; from fastxor.cli import main; fastxor.train(64, epochs=1);"
        "base = int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) * 1024;"
        f"t = time.perf_counter(); rc = main(['train', '--networks', '{n}', '--epochs', '{epochs}', '--progress', 'on']);"
        "print('WALL', time.perf_counter() - t);"
        "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base); sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    vals = dict(line.split() for line in res.stdout.splitlines() if line.startswith(("WALL", "RSS")))
    segments = res.stderr.count("\r") + res.stderr.count("\n")
    return float(vals["WALL"]), int(vals["RSS"]), segments


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e5,1e6,1e7", help="comma-separated N")
    ap.add_argument("--out", default=f"bench/results/scale-{time.strftime('%Y%m%d')}.json")
    a = ap.parse_args()
    fastxor.train(64, epochs=10)  # compile / load the kernels once
    rows = []
    for n in (int(float(v)) for v in a.sizes.split(",")):
        epochs = EPOCHS.get(n, max(1, int(2e10 // n)))
        row = dict(n=n, epochs=epochs, **pieces(n, epochs))
        r, row["api_s"] = timed(fastxor.train, n, epochs=epochs)
        _, row["summary_s"] = timed(r.summary)
        row["output_bytes"] = output_bytes(r)
        del r
        row["cli_s"], row["cli_peak_bytes"], row["cli_progress_lines"] = cli_run(n, epochs)
        # the kernel alone once more, after the others: the shared machine drifts
        row["train_again_s"] = pieces(n, epochs)["train_s"]
        kernel = (row["train_s"] + row["train_again_s"]) / 2
        row["cli_over_kernel"] = row["cli_s"] / kernel
        row["api_over_kernel"] = row["api_s"] / kernel
        row["peak_over_outputs"] = row["cli_peak_bytes"] / row["output_bytes"]
        rows.append(row)
        print(f"N={n:>10,d} x {epochs} epochs: init {row['init_s']:.2f} s ({row['init_networks_per_s']:.3g} nets/s), "
              f"kernel {row['train_s']:.2f} s ({row['kernel_ne_per_s']:.3g} NE/s), package {row['package_s']:.2f} s, "
              f"summary {row['summary_s']:.2f} s | API {row['api_s']:.2f} s (x{row['api_over_kernel']:.2f} kernel), "
              f"CLI {row['cli_s']:.2f} s (x{row['cli_over_kernel']:.2f}), peak memory {row['cli_peak_bytes'] / 2**30:.2f} GiB "
              f"= {row['peak_over_outputs']:.2f} x outputs", flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(dict(environment=environment(), rows=rows), f, indent=1, default=str)
    print("saved", a.out)


if __name__ == "__main__":
    with unrolled_only():  # warm-ups load the kernel the timed runs use
        main()
