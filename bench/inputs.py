"""D-input benchmark: the Numba kernel on XOR, 3-bit and 4-bit parity, as
network-epochs/s, sample-epochs/s, and the fraction of the CPU's op-count
bound each reaches (``harness.compute_bound`` on the kernel generated for
that data), measured in one run, interleaved (a shared machine drifts).

float32, the seed's recipe (sigmoid, MSE, SGD), H = D (XOR 2-2-1, parity3
3-3-1, parity4 4-4-1), N = 100 000 networks, the kernel alone (``backend.run``
over all epochs, compiled beforehand; each variant's compile time from an
empty kernel cache is reported too). The issue's target: parity3 and parity4
reach >= 0.8x the bound fraction XOR's H = 2 kernel reaches.

Run: ``make bench-inputs`` (or ``python bench/inputs.py``); writes
``bench/results/inputs-<date>.json``.
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np

from fastxor import backends
from fastxor.backends.numba_kernel import ops_per_network_epoch
from fastxor.backends.numba_kernel import unrolled_only
from fastxor.bench.harness import compute_bound, cpu_clock_ghz, environment, timed
from fastxor.data import boolean_function, target_sides
from fastxor.params import init_params
from fastxor.state import Data, KernelOutput, Recipe, State

#: name -> (function, hidden width)
CASES = {"xor 2-2-1": ("xor", 2), "parity3 3-3-1": ("parity3", 3), "parity4 4-4-1": ("parity4", 4)}


def run_once(function, hidden, flat, epochs):
    X, y = boolean_function(function)
    n = flat.shape[1]
    recipe = Recipe(hidden, np.dtype(np.float32), inputs=X.shape[1], samples=len(y))
    state = State.fresh(flat.copy(), np.full(n, 0.5, np.float32), recipe=recipe)
    out = KernelOutput.empty(n, recipe)
    _, t = timed(backends.get("numba").run, state, Data(X, y, target_sides(y)), epochs, 0, recipe, out)
    return t


def _gpu_instructions():
    """The CUDA kernel's SASS instructions per network-epoch for each case
    (sm_90, nvcc here; no GPU needed), or why they could not be counted."""
    from fastxor.bench import sass

    why = sass.problem()
    if why:
        return dict(skipped=why)
    out = {}
    for name, (f, h) in CASES.items():
        X, y = boolean_function(f)
        prof = sass.profile(h, recipe_options=dict(inputs=X.shape[1], samples=len(y)))
        out[name] = dict(instructions_per_network_epoch=prof["instructions_per_network_epoch"],
                         per_sample_epoch=prof["instructions_per_network_epoch"] / len(y), mix=prof["mix"],
                         h100_issue_bound_ne_per_s=prof["h100_issue_bound_ne_per_s"])
        print(f"GPU {name}: {prof['instructions_per_network_epoch']} SASS instructions per network-epoch (sm_90)")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=time.strftime("bench/results/inputs-%Y%m%d.json"))
    args = ap.parse_args()
    os.environ.setdefault("FASTXOR_CACHE_DIR", tempfile.mkdtemp(prefix="fastxor-bench-"))  # cold compiles
    n, epochs = args.networks, args.epochs
    flats = {name: init_params(n, h, 0, dtype="float32", inputs=boolean_function(f)[0].shape[1]).to_flat()
             for name, (f, h) in CASES.items()}
    compile_s = {}
    for name, (f, h) in CASES.items():  # first use: compile (timed with one tiny run)
        t0 = time.perf_counter()
        run_once(f, h, flats[name][:, :64], 1)
        compile_s[name] = time.perf_counter() - t0
    ghz = cpu_clock_ghz()
    times = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name, (f, h) in CASES.items():
            times[name].append(run_once(f, h, flats[name], epochs))
    rows = []
    print(f"{'case':<15} {'NE/s':>9} {'sample-E/s':>11} {'ops/NE':>7} {'bound NE/s':>11} {'of bound':>9} "
          f"{'x xor':>6} {'compile s':>10}")
    for name, (f, h) in CASES.items():
        rate = n * epochs / float(np.median(times[name]))
        bound, ops, model = compute_bound(h, ghz, f)
        rows.append(dict(case=name, function=f, hidden=h, samples=len(boolean_function(f)[1]), ne_per_s=rate,
                         sample_epochs_per_s=rate * len(boolean_function(f)[1]), ops_per_network_epoch=ops,
                         bound_ne_per_s=bound, bound_fraction=rate / bound, bound_model=model,
                         compile_s=compile_s[name]))
    xor = rows[0]["bound_fraction"]
    for r in rows:
        r["bound_fraction_ratio_to_xor"] = r["bound_fraction"] / xor
        print(f"{r['case']:<15} {r['ne_per_s']:>9.3g} {r['sample_epochs_per_s']:>11.3g} {r['ops_per_network_epoch']:>7} "
              f"{r['bound_ne_per_s']:>11.3g} {100 * r['bound_fraction']:>8.1f}% {r['bound_fraction_ratio_to_xor']:>6.2f} "
              f"{r['compile_s']:>10.1f}", flush=True)
    gpu = _gpu_instructions()
    with open(args.json, "w") as f:
        json.dump(dict(networks=n, epochs=epochs, dtype="float32", recipe="seed", lr=0.5, rows=rows,
                       gpu_sass=gpu, environment=environment()), f, indent=1)
    print(f"saved {args.json}")


if __name__ == "__main__":
    with unrolled_only():  # warm-ups load the kernel the timed runs use
        main()
