"""The benchmark harness: one timer, one correctness check, the suite's cases.

Every implementation trains the same networks (identical initial parameters,
XOR, lr, width, float32) for the same epochs; its final parameters are
checked against fastxor's before its time counts. Epochs are calibrated so
each case runs about ``target`` seconds; the first call (JIT compilation,
kernel loading) is timed separately. Unit: network-epochs per second (NE/s),
and the ratio to fastxor's fastest backend measured in the same run.
"""
import os
import platform
import time

import numpy as np

from ..data import boolean_function
from ..machine import cpu_description, cpu_name, memory_gib, versions
from ..params import init_params
from .peers import IMPLS, RECIPES, by_name

QUICK = dict(sizes=(1, 1_000, 100_000), target=0.4, repeats=1, scaling=False)
FULL = dict(sizes=(1, 1_000, 100_000), target=2.0, repeats=2, scaling=True, widths=(1, 2, 3, 4, 8, 16))
GPU_SIZES = (1_000_000,)
TOLERANCE = 1e-4  # max |peer - fastxor| per parameter, relative to 1 + |p|, beyond rounding effects


def environment():
    """When and where a results file was measured: the date, the CPU (model,
    microarchitecture, SIMD features, measured clock, cores), memory, OS,
    GPU with its driver, and the versions of everything measured."""
    env = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cpu=cpu_name(), **cpu_description(),
               cores=os.cpu_count(), machine=platform.machine(), clock_ghz=cpu_clock_ghz(), memory_gib=memory_gib(),
               os=platform.platform(), **versions(("numba", "llvmlite", "torch", "jax", "cupy")))
    try:
        import numba

        env["numba_threads"] = numba.get_num_threads()
    except ImportError:
        pass
    from ..backends.cupy_kernel import device_description

    env["gpu"] = device_description()
    return env


def cpu_clock_ghz():
    """The core clock while busy, measured: a dependent multiply-then-add chain
    (no FMA contraction) costs 6 cycles per step on AMD Zen 3/4 and Intel since
    Skylake (3 + 3, or 4 + 4 = 8 on Intel: there this overestimates by 4/3).
    Under a hypervisor /proc/cpuinfo shows only the nominal clock."""
    import numba

    @numba.njit
    def chain(n, a):
        for _ in range(n):
            a = a * 0.9999999 + 1e-7
        return a

    chain(10, 1.0)
    n = 100_000_000
    t0 = time.perf_counter()
    chain(n, 1.0)
    return round(6 * n / (time.perf_counter() - t0) / 1e9, 2)


# --- the compute bound ------------------------------------------------------------------

#: float32 lane-operations per core per cycle assumed: 2 FMA/multiply pipes and
#: 2 add pipes, 256 bits each (AMD Zen 4; AVX-512 runs as 2 x 256 bits). An
#: optimistic bound: most of the kernel's operations need the FMA/multiply pipes.
LANE_OPS_PER_CYCLE = 4 * 256 // 32


def compute_bound(hidden=2, ghz=None, function="xor"):
    """(NE/s bound, ops per network-epoch, the assumptions) for float32 on this CPU."""
    from ..backends.numba_kernel import ops_per_network_epoch

    ops = ops_per_network_epoch(hidden, function)
    ghz = ghz or cpu_clock_ghz()
    bound = (os.cpu_count() or 1) * ghz * 1e9 * LANE_OPS_PER_CYCLE / ops
    return bound, ops, f"{os.cpu_count()} cores x {ghz} GHz x {LANE_OPS_PER_CYCLE} float32 lane-ops/cycle / {ops} ops"


# --- measuring one case -----------------------------------------------------------------


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), wall seconds): the one timer of every benchmark."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def measure(impl, n, *, target=0.5, repeats=1, hidden=2, lr=None, seed=0, check=True, recipe="seed"):
    """One implementation at one N on one recipe (a ``RECIPES`` name):
    throughput, first-call time, correctness."""
    from ..backends.numba_kernel import unrolled_only

    with unrolled_only():  # the kernel long runs use: a short warm-up would rent the looped one
        return _measure(impl, n, target, repeats, hidden, lr, seed, check, recipe)


def _measure(impl, n, target, repeats, hidden, lr, seed, check, recipe):
    options = dict(RECIPES[recipe])
    preset_lr = options.pop("lr")
    lr = preset_lr if lr is None else lr
    X, y = boolean_function("xor")
    p = init_params(n, hidden, seed, dtype="float32")
    run, setup_s = timed(impl.setup, p, X, y, lr, options)
    _, first_s = timed(run, 2)  # compilation / tracing / kernel loading
    epochs, dt = 2, 0.0
    while True:  # calibrate: grow until a run takes >= 1/8 of the target
        epochs = max(epochs * 2, int(epochs * target / 8 / dt) if dt > 0 else 0)
        _, dt = timed(run, epochs)
        if dt >= target / 8:
            break
    epochs = max(1, int(epochs * target / dt))
    times = []
    for _ in range(repeats):
        final, t = timed(run, epochs)
        times.append(t)
    t = float(np.median(times))
    row = dict(impl=impl.name, n=n, epochs=epochs, seconds=t, ne_per_s=n * epochs / t,
               first_call_s=first_s, setup_s=setup_s, max_error=None, valid=True)
    if check and impl.name != "fastxor numba":
        row.update(check_against_fastxor(final, p, epochs, lr, **options))
    return row


def check_against_fastxor(final, p, epochs, lr, backend="numba", **options):
    """Is ``final`` what fastxor computes from ``p``? Two float32 programs
    differ by rounding, which some networks amplify (near a plateau's end):
    each network may differ by TOLERANCE plus 4x the distance between
    fastxor's float32 and float64 results for it."""
    from ..training import train

    ref = train(init=p, epochs=epochs, lr=lr, backend=backend, **options).params.to_flat().astype(np.float64)
    ref64 = train(init=p, epochs=epochs, lr=lr, dtype="float64", backend=backend, **options).params.to_flat()
    got = final.astype(np.float64).to_flat()
    err = np.abs(got - ref).max(axis=0)
    allowed = TOLERANCE * (1 + np.abs(ref).max(axis=0)) + 4 * np.abs(ref64 - ref).max(axis=0)
    return dict(max_error=float(err.max()), valid=bool((err <= allowed).all()))


def run_suite(mode=QUICK, impls=None, log=print, recipe="seed"):
    """Measure every implementation at every size on ``recipe`` (a ``RECIPES``
    name); returns the report dict."""
    impls = [i for i in IMPLS if impls is None or i.name in impls]
    rows, skipped = [], []
    sizes = list(mode["sizes"])
    for impl in impls:
        if recipe != "seed" and not impl.recipes:
            skipped.append(dict(impl=impl.name, why="trains the seed's recipe only"))
            log(f"skipped {impl.name}: it trains the seed's recipe only")
            continue
        if not impl.available():
            skipped.append(dict(impl=impl.name, why=f"not installed ({impl.extra})", install=impl.extra))
            log(f"skipped {impl.name}: not installed ({impl.extra})")
            continue
        impl_sizes = sizes + (list(GPU_SIZES) if impl.device == "gpu" else [])
        for n in impl_sizes:
            if n > impl.max_networks:
                continue
            if impl.name == "fastxor numpy" and n == 1:
                continue  # the reference's Python loop: per-epoch overhead only
            row = measure(impl, n, target=mode["target"], repeats=mode["repeats"], recipe=recipe)
            rows.append(row)
            log(f"{impl.name:22s} N={n:>9,d} {row['ne_per_s']:10.3g} NE/s"
                + ("" if row["valid"] else f"  WRONG (max error {row['max_error']:.2g})"))
    best = {}
    for r in rows:
        if r["impl"].startswith("fastxor") and r["valid"]:
            best[r["n"]] = max(best.get(r["n"], 0.0), r["ne_per_s"])
    for r in rows:
        r["fastxor_speedup"] = best[r["n"]] / r["ne_per_s"] if r["n"] in best else None
    env = environment()
    bound, ops, how = compute_bound(ghz=env["clock_ghz"])
    report = dict(environment=env, mode=mode, recipe=dict(name=recipe, **RECIPES[recipe]), rows=rows, skipped=skipped,
                  compute_bound=dict(ne_per_s=bound, ops_per_network_epoch=ops, model=how))
    if mode.get("scaling") and recipe == "seed":
        report["scaling"] = scaling(log=log)
    if mode.get("widths") and recipe == "seed":
        report["widths"] = widths(mode["widths"], log=log)
    return report


def widths(hidden_sizes, n=16_384, target=1.0, log=print):
    """fastxor numba against its NumPy reference for each hidden width (the
    kernel is generated per width, so each is its own program); the
    reference's result is checked against the kernel's as in the main table."""
    out = []
    for h in hidden_sizes:
        kernel = measure(by_name("fastxor numba"), n, target=target, hidden=h)
        ref = measure(by_name("fastxor numpy"), n, target=target, hidden=h)
        row = dict(hidden=h, n=n, numba_ne_per_s=kernel["ne_per_s"], numpy_ne_per_s=ref["ne_per_s"],
                   numba_over_numpy=kernel["ne_per_s"] / ref["ne_per_s"], agree=ref["valid"],
                   max_error=ref["max_error"], compile_s=kernel["first_call_s"])
        out.append(row)
        log(f"width H={h:>2d}: numba {row['numba_ne_per_s']:.3g} NE/s, numpy {row['numpy_ne_per_s']:.3g},"
            f" x{row['numba_over_numpy']:.0f}" + ("" if row["agree"] else "  WRONG"))
    return out


def scaling(epochs=2_000, n=100_000, log=print):
    """Time against N (fixed epochs) and against epochs (fixed N) for fastxor's
    compiled backends: linear scaling, and where a GPU overtakes the CPU."""
    from ..backends.numba_kernel import unrolled_only
    from ..training import available_backends, train

    out = []
    with unrolled_only():  # the kernel long runs use: the warm-up would rent the looped one
        for backend in [b for b in available_backends() if b in ("numba", "cupy")]:
            train(64, epochs=10, backend=backend)  # compile / load
            for nn in (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000):
                _, t = timed(lambda: train(nn, epochs=epochs, backend=backend))
                out.append(dict(backend=backend, n=nn, epochs=epochs, seconds=t, ne_per_s=nn * epochs / t))
                log(f"scaling {backend} N={nn:>9,d} epochs={epochs}: {t:.3f} s {nn * epochs / t:.3g} NE/s")
            for ee in (500, 2_000, 8_000):
                _, t = timed(lambda: train(n // 10, epochs=ee, backend=backend))
                out.append(dict(backend=backend, n=n // 10, epochs=ee, seconds=t, ne_per_s=n // 10 * ee / t))
                log(f"scaling {backend} N={n // 10:>9,d} epochs={ee}: {t:.3f} s {n // 10 * ee / t:.3g} NE/s")
    return out
