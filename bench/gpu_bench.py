"""The GPU benchmark, run by bench/gpu_check.sh on a machine with an NVIDIA GPU.

Figures (float32, H = 2, XOR, lr 0.1, fastxor's Philox init):
- 1 000 000 networks x 100 000 epochs: seconds and network-epochs/s, accurate
  and fast-math kernels, with each one's success rate (95 % Wilson interval);
- 1 network x 100 000 epochs (latency bound);
- N sweep, cupy against numba, and the N where the GPU overtakes the CPU;
- the fraction of the GPU's FP32 / special-function bound reached.
"""
import argparse
import json
import platform
import time
import traceback


# FP32 instructions per network-epoch of the accurate kernel, H = 2, counted
# from its source: per sample, 2 hidden units x (2 FMA + 1 add + sigmoid) +
# output (2 FMA + 1 add + sigmoid) + loss/margin (4) + backprop (g: 4, per unit
# 6) -> 33 + 3 sigmoids; per epoch 4 samples + update/guard (3 x 9 + 2).
# A sigmoid = negate, expf (~8 FP32 + 1 MUFU ex2), add, IEEE divide (~8 FP32 +
# 1 MUFU rcp): ~18 FP32 + 2 MUFU.
FP32_PER_NE = 4 * (33 + 3 * 18) + 29
MUFU_PER_NE = 4 * 3 * 2


def bound(props):
    sms, clock_hz = props["multiProcessorCount"], props["clockRate"] * 1e3
    fp32 = sms * 128 * clock_hz / FP32_PER_NE  # 128 FP32 lanes per SM (sm_80/sm_90)
    mufu = sms * 16 * clock_hz / MUFU_PER_NE  # 16 special-function lanes per SM
    return dict(fp32_bound=fp32, mufu_bound=mufu, bound=min(fp32, mufu), sms=sms, clock_ghz=clock_hz / 1e9,
                fp32_per_network_epoch=FP32_PER_NE, mufu_per_network_epoch=MUFU_PER_NE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tests", help="the GPU test log to embed")
    ap.add_argument("--networks", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=100_000)
    a = ap.parse_args()

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
            r.params[:1000], fastxor.init_params(min(1000, a.networks)), a.epochs, 0.1)
        return dict(networks=a.networks, epochs=a.epochs, seconds=t, ne_per_s=a.networks * a.epochs / t, **check,
                    fraction_of_bound=a.networks * a.epochs / t / res["bound"]["bound"],
                    success_rate=s["success_rate"], success_ci95=s["success_ci95"],
                    solved_epoch_median=s["solved_epoch_quantiles"] and s["solved_epoch_quantiles"][0.5])

    section("accurate_1e6x1e5", lambda: big(False))
    section("fast_math_1e6x1e5", lambda: big(True))

    def single():
        _, t = timed(lambda: fastxor.train(1, epochs=100_000, backend="cupy"))
        return dict(seconds=t)

    section("single_network_1e5_epochs", single)

    def crossover():
        rows = []
        for backend in ("numba", "cupy"):
            fastxor.train(64, epochs=10, backend=backend)
            for n in (1, 100, 1_000, 10_000, 100_000, 1_000_000):
                epochs = 2_000
                _, t = timed(lambda: fastxor.train(n, epochs=epochs, backend=backend))
                rows.append(dict(backend=backend, n=n, epochs=epochs, seconds=t, ne_per_s=n * epochs / t))
        cpu = {r["n"]: r["ne_per_s"] for r in rows if r["backend"] == "numba"}
        over = [r["n"] for r in rows if r["backend"] == "cupy" and r["ne_per_s"] > cpu[r["n"]]]
        return dict(rows=rows, gpu_overtakes_cpu_at_n=min(over) if over else None)

    section("n_sweep_vs_numba", crossover)

    if a.tests:
        with open(a.tests) as fh:
            res["tests"] = fh.read()[-4000:]
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1, default=str)
    print("saved", a.out)


if __name__ == "__main__":
    main()
