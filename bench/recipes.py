"""Recipe benchmark: network-epochs per second of each training recipe on the
Numba kernel, as a ratio to the seed's recipe (sigmoid, MSE, plain SGD)
measured in the same run, interleaved (a shared machine drifts).

float32, H = 2, XOR, N = 100 000 networks: the kernel alone (``backend.run``
over all epochs, one call, compiled beforehand; the compile time of each
variant's first use is reported too, from an empty kernel cache).

Run: ``make bench-recipes`` (or ``python bench/recipes.py``); writes
``bench/results/recipes-<date>.json``.
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np

from fastxor import backends
from fastxor.backends.numba_kernel import unrolled_only
from fastxor.bench.harness import environment, timed
from fastxor.data import boolean_function, target_sides
from fastxor.params import init_params
from fastxor.state import Data, KernelOutput, Recipe, State

#: name -> (Recipe options, momentum, weight decay, lr)
RECIPES = {
    "seed (sgd, mse, sigmoid)": (dict(), None, None, 0.1),
    "momentum 0.9": (dict(momentum=True), 0.9, None, 0.1),
    "nesterov + weight decay": (dict(momentum=True, nesterov=True, weight_decay=True), 0.9, 1e-4, 0.1),
    "tanh hidden": (dict(activation="tanh"), None, None, 0.1),
    "relu hidden": (dict(activation="relu"), None, None, 0.1),
    "bce": (dict(loss="bce"), None, None, 0.1),
    "bce_logits": (dict(loss="bce_logits"), None, None, 0.1),
    "adam": (dict(optimizer="adam"), None, None, 0.01),
    "adamw + weight decay": (dict(optimizer="adamw", weight_decay=True), None, 0.01, 0.01),
    "momentum + target_loss": (dict(momentum=True, target_loss=0.01), 0.9, None, 0.1),
}


def run_once(name, n, epochs, p, data):
    opts, mom, wd, lr = RECIPES[name]
    recipe = Recipe(2, np.dtype(np.float32), **opts)
    state = State.fresh(p.copy(), np.full(n, lr, np.float32), recipe=recipe,
                        momentum=None if mom is None else np.full(n, mom),
                        weight_decay=None if wd is None else np.full(n, wd))
    out = KernelOutput.empty(n, recipe)
    _, t = timed(backends.get("numba").run, state, data, epochs, 0, recipe, out)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--networks", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=time.strftime("bench/results/recipes-%Y%m%d.json"))
    args = ap.parse_args()
    os.environ.setdefault("FASTXOR_CACHE_DIR", tempfile.mkdtemp(prefix="fastxor-bench-"))  # cold compiles
    n, epochs = args.networks, args.epochs
    X, y = boolean_function("xor")
    data = Data(X, y, target_sides(y))
    p = init_params(n, 2, 0, dtype="float32").to_flat()
    compile_s = {}
    for name in RECIPES:  # first use: compile (timed with one tiny run)
        t0 = time.perf_counter()
        run_once(name, 64, 1, p[:, :64].copy(), data)
        compile_s[name] = time.perf_counter() - t0
    times = {name: [] for name in RECIPES}
    for _ in range(args.repeats):  # interleaved: every recipe sees the same machine drift
        for name in RECIPES:
            times[name].append(run_once(name, n, epochs, p, data))
    seed = n * epochs / np.median(times["seed (sgd, mse, sigmoid)"])
    rows = []
    print(f"{'recipe':<28} {'NE/s':>9} {'x seed':>7} {'compile s':>10}")
    for name in RECIPES:
        rate = n * epochs / float(np.median(times[name]))
        rows.append(dict(recipe=name, ne_per_s=rate, ratio_to_seed=rate / seed, compile_s=compile_s[name]))
        print(f"{name:<28} {rate:>9.3g} {rate / seed:>7.2f} {compile_s[name]:>10.1f}", flush=True)
    with open(args.json, "w") as f:
        json.dump(dict(networks=n, epochs=epochs, dtype="float32", hidden=2, rows=rows, environment=environment()),
                  f, indent=1)
    print(f"saved {args.json}")


if __name__ == "__main__":
    with unrolled_only():  # warm-ups load the kernel the timed runs use
        main()
