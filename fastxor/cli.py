"""``fastxor`` command line: train, sweep, plot (and bench, see ``fastxor.bench``)."""
import argparse
import sys
import time

from . import config
from .data import FUNCTIONS

USER_ERRORS = (ValueError, TypeError, MemoryError, ImportError, NotImplementedError, FileNotFoundError)


def _progress(args, n, epoch0=0):
    from .progress import ProgressBar

    if args.progress == "off" or (args.progress == "auto" and not sys.stderr.isatty()):
        return None
    return ProgressBar(n, epoch0=epoch0, delay=0.0 if args.progress == "on" else 1.0)


def _train(args):
    from .training import resume, train

    t0 = time.perf_counter()
    if args.resume:
        from .result import TrainResult

        old = TrainResult.load(args.resume)
        n, epoch0 = old.n_networks, old.config["epochs"]
        r = resume(old, args.epochs, backend=args.backend, progress=_progress(args, n, epoch0),
                   interruptible=True)
        ran = r.config["epochs"] - epoch0
        out = args.out or args.resume
    else:
        n = args.networks
        r = train(
            n, epochs=args.epochs, lr=args.lr, hidden=args.hidden, seed=args.seed, init=args.init,
            init_scale=args.init_scale, function=args.function, dtype=args.dtype, backend=args.backend,
            record_every=args.record_every, progress=_progress(args, n), interruptible=True,
        )
        ran, out = r.config["epochs"], args.out
    dt = time.perf_counter() - t0
    fn = r.config.get("function") or "custom"
    print(f"function {fn} (targets {''.join(f'{v:g}' for v in r.config['y'])})")
    print(r.summary())
    print(f"time: {dt:.2f} s including compilation, {n * ran / dt:.3g} network-epochs/s")
    if out:
        r.save(out)
        print(f"saved: {out}" + (" (resume with: fastxor train --resume " + str(out) + " --epochs N)"
                                 if r.config.get("interrupted") else ""))
    return 130 if r.config.get("interrupted") else 0


def _floats(text):
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def _sweep(args):
    from .sweep import sweep, write_csv

    bar = {}

    def progress(h, done, total):
        if h not in bar:
            print(f"hidden={h}", file=sys.stderr)
            bar[h] = _progress(args, args.networks * len(args.lr) * len(args.init_scale))
        if bar[h]:
            bar[h](done, total)

    t0 = time.perf_counter()
    table = sweep(
        args.lr, args.hidden, args.init_scale, networks=args.networks, epochs=args.epochs,
        seed=args.seed, init=args.init, function=args.function, dtype=args.dtype, backend=args.backend,
        progress=progress,
    )
    dt = time.perf_counter() - t0
    t = table.to_records(index=False) if hasattr(table, "to_records") else table
    print(f"{'H':>3} {'lr':>8} {'scale':>6} {'solved %':>9} {'95 % CI':>15} {'median epoch':>13} {'diverged':>9}")
    for r in t:
        print(f"{r['hidden']:>3} {r['lr']:>8g} {r['init_scale']:>6g} {100 * r['success_rate']:>9.2f} "
              f"{100 * r['ci95_low']:>7.2f}-{100 * r['ci95_high']:<7.2f} {r['solved_epoch_median']:>13.0f} "
              f"{r['diverged']:>9}")
    cells = len(t)
    print(f"time: {dt:.2f} s, {cells * args.networks * args.epochs / dt:.3g} network-epochs/s")
    if args.out:
        write_csv(table, args.out)
        print(f"saved: {args.out}")
    return 0


def _plot(args):
    from . import plots

    if str(args.path).endswith(".csv"):
        from .sweep import read_csv

        paths = plots.plot_sweep(read_csv(args.path), args.out)
    else:
        from .result import TrainResult

        paths = plots.plot_result(TrainResult.load(args.path), args.out)
    for p in paths:
        print(p)
    return 0


def _common(p, networks):
    p.add_argument("--networks", type=int, default=networks, help="networks (seeds) per run or grid cell")
    p.add_argument("--epochs", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="philox", choices=("philox", "torch"),
                   help="fastxor's deterministic init, or PyTorch's nn.Linear init of seeds seed.. (needs torch)")
    p.add_argument("--dtype", default="float32", choices=sorted(config.DTYPES))
    p.add_argument("--backend", default="auto", choices=config.BACKENDS)
    p.add_argument("--function", default="xor",
                   help=f"boolean function ({', '.join(FUNCTIONS)}) or a truth table like 0110")
    p.add_argument("--progress", default="auto", choices=("auto", "on", "off"),
                   help="progress bar on stderr (auto: on a terminal, for runs over a second)")


def parser():
    ap = argparse.ArgumentParser(prog="fastxor", description="Train millions of XOR networks at once.")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train N networks and print success statistics")
    _common(t, 100_000)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--hidden", type=int, default=2)
    t.add_argument("--init-scale", type=float, default=1.0)
    t.add_argument("--record-every", type=int, default=0, help="record the loss every K epochs (0: never)")
    t.add_argument("--out", help="save every per-network array to this .npz (fastxor.load reads it)")
    t.add_argument("--resume", metavar="NPZ",
                   help="continue the run saved in NPZ by --epochs more (saved back to NPZ unless --out)")
    s = sub.add_parser("sweep", help="grid of lr x hidden x init-scale, N seeds per cell")
    _common(s, 10_000)
    s.add_argument("--lr", type=_floats, default=[0.1], help="comma-separated, e.g. 0.05,0.1,0.5,1")
    s.add_argument("--hidden", type=_ints, default=[2], help="comma-separated, e.g. 2,3,4")
    s.add_argument("--init-scale", type=_floats, default=[1.0], help="comma-separated, e.g. 0.5,1,2")
    s.add_argument("--out", help="write the table as CSV")
    p = sub.add_parser("plot", help="figures of a results .npz or a sweep .csv")
    p.add_argument("path")
    p.add_argument("--out", default="plots", help="output directory (default: plots)")
    b = sub.add_parser("bench", help="throughput against PyTorch, JAX and NumPy on this machine")
    b.add_argument("--quick", action="store_true", help="small sizes, about two minutes")
    b.add_argument("--json", help="save the figures as JSON")
    b.add_argument("--plot", help="save throughput against N as a PNG")
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    run = {"train": _train, "sweep": _sweep, "plot": _plot}.get(args.command)
    if run is None:
        from .bench.report import main as bench_main

        run = bench_main
    try:
        return run(args)
    except USER_ERRORS as exc:
        print(f"fastxor: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fastxor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
