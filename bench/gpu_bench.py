"""The GPU benchmark, run by bench/gpu_check.sh on a machine with an NVIDIA GPU.

Figures (float32, H = 2, XOR, lr 0.1, fastxor's Philox init):
- 1 000 000 networks x 100 000 epochs: seconds and network-epochs/s, accurate
  and fast-math kernels, with each one's success rate (95 % Wilson interval);
- 1 network x 100 000 epochs (latency bound);
- N sweep, cupy against numba, and the N where the GPU overtakes the CPU;
- the fraction of the GPU's issue-slot bound reached (from the compiled SASS);
- every training recipe of ``fastxor bench --recipe``: NE/s, ratio to the
  seed's, checked against the numba backend.
"""
import argparse
import json
import platform
import time
import traceback


def bound(props):
    """The issue-slot bound of this GPU for the float32 H = 2 kernel: SMs x 4
    schedulers x 32 thread-instructions per clock / the SASS instructions of
    one network-epoch (fastxor.bench.sass: the loader's exact source compiled
    with CuPy's options for this GPU's arch; where nvcc/cuobjdump are missing,
    the sm_90 profile committed in bench/results/sass-*.json). Every
    instruction takes an issue slot, so this binds before FP32 throughput."""
    from pathlib import Path

    from fastxor.bench import sass

    sms, clock_hz = props["multiProcessorCount"], props["clockRate"] * 1e3
    arch = f"sm_{props['major']}{props['minor']}"
    if sass.problem() is None:
        prof, source = sass.profile(2, "float32", arch=arch), f"compiled here for {arch}"
    else:
        saved = sorted(Path(__file__).parent.glob("results/sass-*.json"))[-1]
        prof = next(p for p in json.loads(saved.read_text())["profiles"]
                    if (p["hidden"], p["dtype"], p["fast_math"]) == (2, "float32", False) and not p.get("recipe"))
        source = f"{saved.name} ({prof['arch']}; {sass.problem()} here)"
    per = prof["instructions_per_network_epoch"]
    issue = sms * 4 * 32 * clock_hz / per
    return dict(bound=issue, sms=sms, clock_ghz=clock_hz / 1e9, instructions_per_network_epoch=per,
                mix=prof["mix"], sass_profile=source)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tests", help="the GPU test log to embed")
    ap.add_argument("--networks", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true",
                    help="toy sizes, checks against the reference: a smoke run of this script (e.g. on the fake CuPy)")
    a = ap.parse_args()
    sweep_sizes = (1, 100, 1_000) if a.quick else (1, 100, 1_000, 10_000, 100_000, 1_000_000)
    short = 200 if a.quick else None  # epochs of the sweep and recipe cases in a smoke run
    check_backend = "numpy" if a.quick else "numba"

    import cupy
    import numpy as np

    import fastxor
    from fastxor.backends import cupy_kernel as gpu
    from fastxor.bench.harness import check_against_fastxor, timed

    res = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), python=platform.python_version(),
               fastxor=fastxor.__version__, numpy=np.__version__, cupy=cupy.__version__,
               device=gpu.device_description(), cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
               driver=cupy.cuda.runtime.driverGetVersion(), figures={}, errors=[])
    props = cupy.cuda.runtime.getDeviceProperties(0)
    res["bound"] = bound(props)
    f = res["figures"]

    def section(name, fn):
        try:
            f[name] = fn()
            print(name, json.dumps(f[name], default=str), flush=True)
        except Exception:  # noqa: BLE001 - record and go on: one call must report everything
            res["errors"].append(f"{name}: {traceback.format_exc()}")
            print(res["errors"][-1], flush=True)

    def big(fast):
        fastxor.train(1000, epochs=100, backend="cupy", fast_math=fast)  # compile / load
        r, t = timed(lambda: fastxor.train(a.networks, epochs=a.epochs, backend="cupy", fast_math=fast))
        s = r.stats()
        # the benchmark's one correctness check: the first 1000 networks against the numba backend
        check = {} if fast else check_against_fastxor(
            r.params[:1000], fastxor.init_params(min(1000, a.networks)), a.epochs, 0.1, backend=check_backend)
        return dict(networks=a.networks, epochs=a.epochs, seconds=t, ne_per_s=a.networks * a.epochs / t, **check,
                    fraction_of_bound=a.networks * a.epochs / t / res["bound"]["bound"],
                    success_rate=s["success_rate"], success_ci95=s["success_ci95"],
                    solved_epoch_median=s["solved_epoch_quantiles"] and s["solved_epoch_quantiles"][0.5])

    section("accurate_1e6x1e5", lambda: big(False))
    section("fast_math_1e6x1e5", lambda: big(True))

    def single():
        epochs = short or 100_000
        _, t = timed(lambda: fastxor.train(1, epochs=epochs, backend="cupy"))
        return dict(epochs=epochs, seconds=t)

    section("single_network_1e5_epochs", single)

    def crossover():
        rows = []
        for backend in ("numba", "cupy"):
            fastxor.train(64, epochs=10, backend=backend)
            for n in sweep_sizes:
                epochs = short or 2_000
                _, t = timed(lambda: fastxor.train(n, epochs=epochs, backend=backend))
                rows.append(dict(backend=backend, n=n, epochs=epochs, seconds=t, ne_per_s=n * epochs / t))
        cpu = {r["n"]: r["ne_per_s"] for r in rows if r["backend"] == "numba"}
        over = [r["n"] for r in rows if r["backend"] == "cupy" and r["ne_per_s"] > cpu[r["n"]]]
        return dict(rows=rows, gpu_overtakes_cpu_at_n=min(over) if over else None)

    section("n_sweep_vs_numba", crossover)

    def recipes():
        """Every ``fastxor bench --recipe`` preset on the GPU: NE/s, the ratio to
        the seed's recipe in the same run, and its 1 000 first networks checked
        against backend="numba" (the benchmark's own tolerance)."""
        from fastxor.bench.peers import RECIPES

        n, epochs, rows = min(a.networks, 1_000_000), short or 10_000, []
        for name, preset in RECIPES.items():
            options = dict(preset)
            lr = options.pop("lr")
            fastxor.train(1000, epochs=10, lr=lr, backend="cupy", **options)  # compile / load
            r, t = timed(lambda: fastxor.train(n, epochs=epochs, lr=lr, backend="cupy", **options))
            check = check_against_fastxor(r.params[:1000], fastxor.init_params(min(n, 1000)), epochs, lr,
                                          backend=check_backend, **options)
            rows.append(dict(recipe=name, networks=n, epochs=epochs, seconds=t, ne_per_s=n * epochs / t, **check))
        seed = next(r["ne_per_s"] for r in rows if r["recipe"] == "seed")
        for r in rows:
            r["x_seed"] = r["ne_per_s"] / seed
        return rows

    section("recipes", recipes)

    if a.tests:
        with open(a.tests) as fh:
            res["tests"] = fh.read()[-4000:]
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1, default=str)
    print("saved", a.out)


if __name__ == "__main__":
    main()
