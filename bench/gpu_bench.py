"""The GPU benchmark, run by bench/gpu_check.sh on a machine with an NVIDIA GPU.

Figures (XOR, lr 0.1, fastxor's Philox init), each section saved to the
results file as soon as it is measured (a run cut short keeps what it had):
- ``cases``: float32 and float64, H = 2, 3, 4, 8, 10^6 and 10^7 networks x
  10^5 epochs: seconds, network-epochs/s, the fraction of the GPU's
  issue-slot bound (from the compiled SASS), success rate (95 % Wilson);
  the first 1 000 networks of the float32 H = 2 case checked against numba;
- ``fast_math``: its speed and success rate beside the accurate kernel's;
- ``single_network``: 1 network x 10^5 epochs (latency bound);
- ``n_sweep_vs_numba``: cupy against numba on this host, and the N where the
  GPU overtakes the CPU;
- ``numba_statistics``: the same 10^6 seeds on the numba backend, statistics
  side by side with the GPU's;
- ``cli_1e7``: ``fastxor train --networks 10000000 --epochs 100000 --backend cupy``
  end to end (a fresh process: import, compile, init, train, summary);
- ``recipes``: every ``fastxor bench --recipe`` preset: NE/s, ratio to the
  seed's, checked against the reference;
- ``peers``: JAX (on its default device) and torch batched on CUDA, same
  GPU, same networks, checked against fastxor;
- ``scale``: the launch path at 10^8 networks x 10^4 epochs: the kernel's own
  time (launches over chunk buffers made beforehand, nothing copied back)
  against ``fastxor train`` of the same job (its in-process time and the
  whole process), and 3 x 10^8 networks completing in one process;
- ``devices``: every GPU of the machine (``devices="all"``) against one,
  results compared (skipped with one GPU);
- ``nsight``: an Nsight Compute pass over one training launch (issue-slot
  and MUFU utilisation, warp stall reasons) where ``ncu`` is installed;
- the SM clock sampled during every section (``sm_clock_mhz``).
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback


def clock_hz(cupy, props):
    """The SM clock: cudaDeviceProp.clockRate (kHz) is gone from CUDA 13's
    struct, so ask the attribute (cudaDevAttrClockRate = 13) where it is."""
    if props.get("clockRate"):
        return props["clockRate"] * 1e3
    return cupy.cuda.runtime.deviceGetAttribute(13, cupy.cuda.Device().id) * 1e3


def kernel_seconds(cupy, n, epochs):
    """The kernel's own time for ``n`` XOR networks x ``epochs`` (float32,
    H = 2, lr 0.1, the entry a run recording no loss uses): its launches over
    chunk buffers allocated beforehand, in-kernel init, nothing copied back."""
    import numpy as np

    from fastxor.backends import cupy_kernel as gpu
    from fastxor.data import boolean_function, target_sides
    from fastxor.state import Data, Recipe

    X, y = boolean_function("xor")
    data, recipe = Data(X, y, target_sides(y)), Recipe(2, np.dtype(np.float32))
    kernel = gpu.launch_kernel(recipe, data, 0)
    chunk = gpu._chunk_networks(n, recipe, 0, given_init=False)
    b = gpu._ChunkBuffers(cupy, chunk, gpu.chunk_layout(recipe, 0, False)).views(chunk)
    b["rates"][...] = 0.1
    b["scale"][...] = 1.0
    inputs = gpu._launch_inputs(cupy, data, recipe, 0, epochs)

    def launches(epochs):
        for lo in range(0, n, chunk):
            b["solved"][...] = -1
            b["diverged"][...] = -1
            gpu._call(kernel, min(chunk, n - lo), b, inputs, 0, epochs, 0, gpu.NULL, 0, lo, b["scale"], gpu.NULL)
        cupy.cuda.Device().synchronize()

    launches(1)  # loaded, warm
    t0 = time.perf_counter()
    launches(epochs)
    return time.perf_counter() - t0


class ClockSampler:
    """The SM clock (MHz, nvidia-smi) sampled every ``every`` seconds in a
    thread while a section runs: a throttled card shows in its figures."""

    def __init__(self, every=0.5):
        import threading

        self.every, self.samples, self.stop = every, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm", "--format=csv,noheader,nounits", "-i",
                                      "0"], capture_output=True, text=True, timeout=10).stdout
                self.samples.append(float(out.split()[0]))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                return  # no nvidia-smi (or no reading): nothing to sample
            self.stop.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=15)

    def summary(self):
        v = sorted(self.samples)
        return None if not v else dict(samples=len(v), min=v[0], median=v[len(v) // 2], max=v[-1])


def bound(cupy, props, hidden=2, dtype="float32", fast=False, options=None):
    """The issue-slot bound of this GPU for one kernel: SMs x 4 schedulers x
    32 thread-instructions per clock / the SASS instructions of one
    network-epoch (fastxor.bench.sass: the loader's exact source compiled
    with CuPy's options for this GPU's arch; where nvcc/cuobjdump are missing,
    the sm_90 profile committed in bench/results/sass-*.json, H = 2 float32
    only). Every instruction takes an issue slot, so this binds before the
    FP32 throughput does."""
    from pathlib import Path

    from fastxor.bench import sass

    sms, hz = props["multiProcessorCount"], clock_hz(cupy, props)
    arch = f"sm_{props['major']}{props['minor']}"
    specialised = not options  # XOR recording no loss: the entry such a run uses (cupy_kernel.launch_kernel)
    if sass.problem() is None:
        prof = sass.profile(hidden, dtype, fast, arch=arch, recipe_options=options, specialised=specialised)
        source = f"compiled here for {arch}"
    else:
        saved = sorted(Path(__file__).parent.glob("results/sass-*.json"))[-1]
        prof = next(p for p in json.loads(saved.read_text())["profiles"]
                    if (p["hidden"], p["dtype"], p["fast_math"]) == (hidden, dtype, fast) and not p.get("recipe")
                    and p.get("specialised", False) == specialised)
        source = f"{saved.name} ({prof['arch']}; {sass.problem()} here)"
    per = prof["instructions_per_network_epoch"]
    return dict(bound=sms * 4 * 32 * hz / per, sms=sms, clock_ghz=hz / 1e9, instructions_per_network_epoch=per,
                mix=prof["mix"], sass_profile=source)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tests", help="the GPU test log to embed")
    ap.add_argument("--epochs", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true",
                    help="toy sizes, checks against the reference: a smoke run of this script (e.g. on the fake CuPy)")
    ap.add_argument("--sections", help="comma-separated: measure only these sections (a rerun)")
    a = ap.parse_args()
    quick = a.quick
    M = 1_000 if quick else 1_000_000  # "10^6 networks"
    E = 200 if quick else a.epochs  # "10^5 epochs"
    sweep_sizes = (1, 100, 1_000) if quick else (1, 100, 1_000, 10_000, 100_000, 1_000_000)
    short = 200 if quick else None  # epochs of the sweep, recipe and peer cases in a smoke run
    check_backend = "numpy" if quick else "numba"

    import cupy
    import numpy as np

    import fastxor
    from fastxor.backends import cupy_kernel as gpu
    from fastxor.arrays import to_host
    from fastxor.bench.harness import check_against_fastxor, environment, timed

    res = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), python=platform.python_version(),
               fastxor=fastxor.__version__, numpy=np.__version__, cupy=cupy.__version__,
               device=gpu.device_description(), cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
               driver=cupy.cuda.runtime.driverGetVersion(), host_cpus=os.cpu_count(), environment=environment(),
               figures={}, errors=[])
    for name in ("numba", "torch", "jax"):
        try:
            res[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - absent peers are recorded as such
            res[name] = None
    props = cupy.cuda.runtime.getDeviceProperties(0)
    try:  # the clocks as found (never changed: measure the card as it is)
        res["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,temperature.gpu",
             "--format=csv"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        res["nvidia_smi"] = f"not run: {e}"
    f = res["figures"]

    def save():
        if a.tests:
            with open(a.tests) as fh:
                res["tests"] = fh.read()[-4000:]
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1, default=str)

    def section(name, fn):
        if a.sections and name not in a.sections.split(","):
            return
        t0 = time.perf_counter()
        try:
            with ClockSampler() as clock:
                f[name] = fn()
            print(name, json.dumps(f[name], default=str), flush=True)
        except Exception:  # noqa: BLE001 - record and go on: one call must report everything
            res["errors"].append(f"{name}: {traceback.format_exc()}")
            print(res["errors"][-1], flush=True)
        res.setdefault("sm_clock_mhz", {})[name] = clock.summary()
        print(f"-- {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        save()

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))  # the CuPy this process uses

    def run_cli(n, epochs, timeout=600):
        """``fastxor train`` in a fresh process: its own reported time (from the
        call to the summary) and the whole process's, its peak RSS."""
        import re

        cmd = [sys.executable, "-m", "fastxor.cli", "train", "--networks", str(n), "--epochs", str(epochs),
               "--backend", "cupy", "--progress", "off"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        wall = time.perf_counter() - t0
        inside = re.search(r"time: ([\d.]+) s", out.stdout)
        return dict(command=" ".join(["fastxor"] + cmd[3:]), rc=out.returncode, process_seconds=wall,
                    seconds=float(inside.group(1)) if inside else None, stdout=out.stdout[-3000:],
                    stderr=out.stderr[-2000:])


    def train_case(n, epochs, hidden=2, dtype="float32", fast=False):
        fastxor.train(1000, epochs=100, hidden=hidden, dtype=dtype, backend="cupy", fast_math=fast)  # compile
        r, t = timed(lambda: fastxor.train(n, epochs=epochs, hidden=hidden, dtype=dtype, backend="cupy",
                                           fast_math=fast))
        s = r.stats()
        row = dict(backend="cupy", dtype=dtype, hidden=hidden, fast_math=fast, n_networks=n, epochs=epochs,
                   seconds=t, ne_per_s=n * epochs / t, success_rate=s["success_rate"],
                   success_ci95=s["success_ci95"], diverged=s["diverged"],
                   solved_epoch_median=s["solved_epoch_quantiles"] and s["solved_epoch_quantiles"][0.5])
        try:
            b = bound(cupy, props, hidden, dtype, fast)
            row.update(instructions_per_network_epoch=b["instructions_per_network_epoch"],
                       fraction_of_bound=row["ne_per_s"] / b["bound"])
        except Exception as e:  # noqa: BLE001 - no profile for this case: the speed still counts
            row["fraction_of_bound"] = f"unknown ({type(e).__name__})"
        return r, row

    def cases():
        rows = []
        plan = [(M, E, 2, "float32"), (10 * M, E, 2, "float32"), (M, E, 2, "float64"), (M, E, 3, "float32"),
                (M, E, 4, "float32"), (M, E, 8, "float32"), (10 * M, E // 10, 2, "float64"),
                (M, E // 10, 8, "float64")]
        for n, epochs, hidden, dtype in plan:
            r, row = train_case(n, epochs, hidden, dtype)
            if (n, epochs, hidden, dtype) == (M, E, 2, "float32"):
                # the one parameter check: the first 1000 networks against the numba backend
                row.update(check_against_fastxor(r.params[:1000], fastxor.init_params(1000), epochs, 0.1,
                                                 backend=check_backend))
            rows.append(row)
            print(row, flush=True)
        return rows


    def fast_math():
        r, row = train_case(M, E, fast=True)
        acc = next(c for c in f["cases"] if (c["n_networks"], c["hidden"], c["dtype"]) == (M, 2, "float32"))
        lo, hi = row["success_ci95"]
        alo, ahi = acc["success_ci95"]
        return dict(fast=row, accurate_ne_per_s=acc["ne_per_s"], speedup=row["ne_per_s"] / acc["ne_per_s"],
                    success_rate_difference=row["success_rate"] - acc["success_rate"],
                    intervals_overlap=bool(lo <= ahi and alo <= hi))


    def single():
        epochs = short or 100_000
        _, t = timed(lambda: fastxor.train(1, epochs=epochs, backend="cupy"))
        return dict(n_networks=1, epochs=epochs, seconds=t, ne_per_s=epochs / t)


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


    def numba_statistics():
        """The same 10^6 seeds on the host's numba backend, 10^4 epochs (10^5
        would take minutes of CPU): the statistics must agree within their
        intervals (float32 rounding moves single networks near a plateau's
        end, not the rates)."""
        epochs = E // 10
        g, tg = timed(lambda: fastxor.train(M, epochs=epochs, backend="cupy"))
        r, t = timed(lambda: fastxor.train(M, epochs=epochs, backend="numba"))
        s, gs = r.stats(), g.stats()
        moved = int((to_host(r.solved) != to_host(g.solved)).sum())
        return dict(n_networks=M, epochs=epochs, numba_seconds=t, numba_ne_per_s=M * epochs / t,
                    cupy_seconds=tg, cupy_over_numba=t / tg,
                    numba_success_rate=s["success_rate"], numba_success_ci95=s["success_ci95"],
                    cupy_success_rate=gs["success_rate"], cupy_success_ci95=gs["success_ci95"],
                    networks_whose_outcome_differs=moved,
                    numba_solved_epoch_median=s["solved_epoch_quantiles"] and s["solved_epoch_quantiles"][0.5],
                    cupy_solved_epoch_median=gs["solved_epoch_quantiles"] and gs["solved_epoch_quantiles"][0.5])


    def cli():
        n = 10 * M
        row = run_cli(n, E, timeout=300)
        return dict(row, seconds=row["process_seconds"], ne_per_s=n * E / row["process_seconds"])

    def scale():
        n, epochs = 100 * M, E // 10
        kernel = kernel_seconds(cupy, n, epochs)
        one, big = run_cli(n, epochs), run_cli(3 * n, epochs, timeout=900)
        return dict(n_networks=n, epochs=epochs, kernel_seconds=kernel, kernel_ne_per_s=n * epochs / kernel,
                    cli=one, cli_over_kernel=one["seconds"] / kernel if one["seconds"] else None,
                    three_times_n=big, three_times_n_completed=big["rc"] == 0 and "solved:" in big["stdout"])

    def devices():
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 2:
            return dict(devices=count, why="one GPU: nothing to split")
        n, epochs = 10 * M, E // 10
        fastxor.train(1000, epochs=10, devices="all")  # every GPU loads the kernel
        one, t1 = timed(lambda: fastxor.train(n, epochs=epochs, backend="cupy"))
        every, tk = timed(lambda: fastxor.train(n, epochs=epochs, devices="all"))
        same = all(np.array_equal(to_host(getattr(one, k)), to_host(getattr(every, k)), equal_nan=True)
                   for k in ("loss", "predictions", "solved_epoch"))
        return dict(devices=count, n_networks=n, epochs=epochs, one_gpu_seconds=t1, all_gpus_seconds=tk,
                    speedup=t1 / tk, ne_per_s=n * epochs / tk, identical=bool(same))

    def nsight():
        import shutil

        ncu = shutil.which("ncu")
        if ncu is None:
            return dict(why="ncu (Nsight Compute) not found")
        job = f"import fastxor; fastxor.train({M}, epochs={short or 1000}, backend='cupy')"
        cmd = [ncu, "--kernel-name", "regex:fastxor_train", "--launch-count", "1", "--section", "SpeedOfLight",
               "--section", "ComputeWorkloadAnalysis", "--section", "WarpStateStats", "--section",
               "InstructionStats", "--csv", sys.executable, "-c", job]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        return dict(command=" ".join(cmd[:-3]) + " python -c ...", job=job, rc=out.returncode,
                    csv=out.stdout[-30000:], stderr=out.stderr[-3000:])


    def recipes():
        """Every ``fastxor bench --recipe`` preset on the GPU: NE/s and the ratio
        to the seed's in the same run; 1 000 networks x 1 000 epochs of each
        checked against the reference (the full recipe check is the GPU test
        module's)."""
        from fastxor.bench.peers import RECIPES

        epochs, rows = short or 10_000, []
        for name, preset in RECIPES.items():
            options = dict(preset)
            lr = options.pop("lr")
            r = fastxor.train(1000, epochs=short or 1000, lr=lr, backend="cupy", **options)  # compile + check
            check = check_against_fastxor(r.params, fastxor.init_params(1000), short or 1000, lr,
                                          backend="numpy", **options)
            _, t = timed(lambda: fastxor.train(M, epochs=epochs, lr=lr, backend="cupy", **options))
            rows.append(dict(recipe=name, n_networks=M, epochs=epochs, seconds=t, ne_per_s=M * epochs / t, **check))
            print(rows[-1], flush=True)
        seed = next(r["ne_per_s"] for r in rows if r["recipe"] == "seed")
        for r in rows:
            r["x_seed"] = r["ne_per_s"] / seed
        return rows


    def peers():
        """JAX (vmap + fori_loop under jit, on JAX's default device) and torch
        batched on CUDA, on the same GPU, same networks, checked against
        fastxor; fastxor cupy timed on the same case."""
        from fastxor.bench import peers as pe
        from fastxor.data import boolean_function

        X, y = boolean_function("xor")
        epochs, rows = short or 2_000, []
        p = fastxor.init_params(M)
        impls = {"fastxor cupy": lambda: pe._fastxor("cupy")(p, X, y, 0.1, {})}
        try:
            import jax

            impls[f"jax vmap+fori_loop ({jax.default_backend()})"] = lambda: pe._jax_setup(p, X, y, 0.1, {})
        except ImportError:
            rows.append(dict(impl="jax", why="not installed"))
        try:
            import torch

            if torch.cuda.is_available():
                impls["torch batched (cuda)"] = lambda: pe._torch_batched_setup(p, X, y, 0.1, {}, device="cuda")
            else:
                rows.append(dict(impl="torch batched (cuda)", why="torch sees no CUDA device"))
        except ImportError:
            rows.append(dict(impl="torch", why="not installed"))
        for name, setup in impls.items():
            try:
                run = setup()
                run(min(epochs, 10))  # jit / compile / load
                final, t = timed(run, epochs)
                check = check_against_fastxor(final[:1000], p[:1000], epochs, 0.1, backend=check_backend)
                rows.append(dict(impl=name, n_networks=M, epochs=epochs, seconds=t, ne_per_s=M * epochs / t,
                                 **check))
            except Exception as e:  # noqa: BLE001 - one peer failing must not hide the others
                rows.append(dict(impl=name, error=f"{type(e).__name__}: {e}"[:500]))
            print(rows[-1], flush=True)
        ours = next((r["ne_per_s"] for r in rows if r.get("impl") == "fastxor cupy" and "ne_per_s" in r), None)
        for r in rows:
            if ours and "ne_per_s" in r:
                r["fastxor_cupy_x"] = ours / r["ne_per_s"]
        return rows

    section("bound_h2_float32", lambda: bound(cupy, props))
    # most valuable first: a run cut short keeps what it had
    section("cases", cases)
    section("scale", scale)
    section("devices", devices)
    section("nsight", nsight)
    section("fast_math", fast_math)
    section("single_network", single)
    section("cli_1e7", cli)
    section("n_sweep_vs_numba", crossover)
    section("numba_statistics", numba_statistics)
    section("recipes", recipes)
    section("peers", peers)
    save()
    print("saved", a.out)


if __name__ == "__main__":
    main()
