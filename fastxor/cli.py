"""``fastxor`` command line: train, sweep, map (see ``cli_map``), plot, analyse (and bench, see ``fastxor.bench``)."""
import argparse
import logging
import os
import signal
import sys
import time

from . import config, options
from .data import TWO_INPUT
from .outputs import check_path, save_safely

#: What a user's mistake raises: one line, no traceback (``--debug`` shows it).
USER_ERRORS = (ValueError, TypeError, MemoryError, ImportError, NotImplementedError, OSError, EOFError)

#: train options a resumed run takes from its file: option -> config key (--epochs says how many more).
RUN_SETTINGS = {o.name: o.key for o in options.TRAIN if o.name != "epochs"}
#: train's options besides --epochs, with their defaults (None on the parser: "not given", for --resume).
TRAIN_DEFAULTS = {k: v for k, v in options.DEFAULTS.items() if k != "epochs"}


def _progress(args, n, epoch0=0):
    from .progress import ProgressBar

    if args.progress == "off" or (args.progress == "auto" and not sys.stderr.isatty()):
        return None
    return ProgressBar(n, epoch0=epoch0, delay=0.0 if args.progress == "on" else 1.0)


def _conflicts(args, cfg):
    """The train options given with --resume that differ from the saved run."""
    from .data import boolean_function

    bad = []
    for opt, key in RUN_SETTINGS.items():
        given, saved = getattr(args, opt), cfg.get(key)
        if given is None:
            continue
        if opt == "function":
            same = list(boolean_function(given)[1]) == list(cfg.get("y", [])) and saved is not None
        elif opt == "betas":
            same = list(given) == list(saved or TRAIN_DEFAULTS["betas"])
        elif isinstance(saved, (list, tuple)) or hasattr(saved, "shape"):
            same = False  # a per-network array: a single value never matches it
        elif saved is None and opt in TRAIN_DEFAULTS and opt not in ("seed", "target_loss"):
            same = given == TRAIN_DEFAULTS[opt]  # a file from before the option existed
        else:
            same = given == saved
        if not same:
            shown = "an array per network" if hasattr(saved, "shape") else saved
            bad.append(f"--{opt.replace('_', '-')} {given} (saved: {shown})")
    return bad


def _distributed(args):
    """``fastxor train`` on a Dask cluster (--workers / --scheduler / --scheduler-file)."""
    from . import distributed

    if args.devices is not None:
        raise ValueError("--devices drives several GPUs from one process; on a Dask cluster each GPU worker "
                         "uses its own GPU (dask-cuda's LocalCUDACluster): drop --devices")
    if args.resume:
        raise ValueError("--resume continues a single-process .npz run; a distributed run resumes by "
                         "rerunning the same command with the same --out directory")
    opts = {k: (v if getattr(args, k) is None else getattr(args, k)) for k, v in TRAIN_DEFAULTS.items()}
    n = opts.pop("networks")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    t0 = time.perf_counter()
    try:
        r = distributed.train(
            n, client=args.scheduler, workers=args.workers, scheduler_file=args.scheduler_file,
            shard_networks="auto" if args.shard_networks is None else args.shard_networks,  # 0 is refused
            out=args.out, progress=args.progress != "off",
            epochs=args.epochs, backend=args.backend, **opts)
    except KeyboardInterrupt:
        if args.out:
            print(f"fastxor: interrupted; the finished shards are in {args.out}: rerun the same command to "
                  "finish the run", file=sys.stderr)
        raise
    dt = time.perf_counter() - t0
    _print_function(r.config)
    print(r.summary())
    print(f"time: {dt:.2f} s including compilation, {n * args.epochs / dt:.3g} network-epochs/s")
    print(f"shards: {r.shards}, {r.shards_run} trained now on {r.workers} workers"
          + (f", {r.shards - r.shards_run} found finished in {args.out}" if r.shards_run < r.shards else ""))
    if args.out:
        print(f"saved: {args.out} (fastxor merge {args.out}; fastxor.load reads it)")
    return 0


def _print_function(config):
    fn = config.get("function") or "custom"
    print(f"function {fn} (targets {''.join(f'{v:g}' for v in config['y'])})")


def _merge(args):
    from .shards import merge

    r, found = merge(args.path)
    _print_function(r.config)
    print(r.summary())
    if found < r.shards:
        print(f"INCOMPLETE: {found} of {r.shards} shards finished; rerun the command that made {args.path} "
              "to finish the run")
        return 1
    return 0


def _train(args):
    from .result import TrainResult
    from .training import resume, train

    if args.workers is not None or args.scheduler or args.scheduler_file:
        return _distributed(args)
    if args.resume:
        if os.path.isdir(args.resume) and not args.out:
            raise ValueError(f"--resume {args.resume} is a directory (a distributed run's?): it is saved back to a "
                             "single .npz file, so give one with --out (or rerun the distributed run's command to "
                             "finish that run)")
        old = TrainResult.load(args.resume)
        bad = _conflicts(args, old.config)
        if bad:
            raise ValueError(f"--resume {args.resume} continues the saved run with its own settings; "
                             f"these differ from it: {', '.join(bad)}. Drop them (only --epochs, "
                             "--backend, --devices, --out and --progress apply to a resumed run)")
    out = args.out or args.resume
    if out:
        check_path(out, ".npz", "--out" if args.out else "--resume", force=args.force, own=args.resume)
    t0 = time.perf_counter()
    if args.resume:
        n, epoch0 = old.n_networks, old.config["epochs"]
        r = resume(old, args.epochs, backend=args.backend, progress=_progress(args, n, epoch0),
                   interruptible=True, devices=args.devices)
        ran = r.config["epochs"] - epoch0
    else:
        opts = {k: (v if getattr(args, k) is None else getattr(args, k)) for k, v in TRAIN_DEFAULTS.items()}
        n = opts["networks"]
        r = train(
            n, epochs=args.epochs, lr=opts["lr"], hidden=opts["hidden"], seed=opts["seed"],
            init=opts["init"], init_scale=opts["init_scale"], function=opts["function"], dtype=opts["dtype"],
            backend=args.backend, record_every=opts["record_every"], progress=_progress(args, n),
            interruptible=True, devices=args.devices, device_arrays="auto" if not out else False,
            **{k: opts[k] for k in RECIPE_OPTIONS},
        )
        ran = r.config["epochs"]
    dt = time.perf_counter() - t0
    _print_function(r.config)
    print(r.summary())
    print(f"time: {dt:.2f} s including compilation, {n * ran / dt:.3g} network-epochs/s")
    if out:
        where, warning = save_safely(r.save, out, replace=args.force or out == args.resume)
        if warning:
            print(f"fastxor: warning: {warning}", file=sys.stderr)
        print(f"saved: {where}" + (" (resume with: fastxor train --resume " + str(where) + " --epochs N)"
                                   if r.config.get("interrupted") else ""))
    return 130 if r.config.get("interrupted") else 0


#: The training-recipe options ``train`` and ``sweep`` share (fastxor.train's names).
RECIPE_OPTIONS = options.RECIPE


def _option_argument(p, name, lists):
    """The option ``name`` of the option table on parser ``p``: its flag, type,
    help and default; ``lists`` (sweep): a grid axis takes comma-separated
    values, and the defaults are given (train's are None: "not given", for
    --resume)."""
    o = options.BY_NAME[name]
    many = lists and o.axis
    help_ = options.help_text(name) + (" (comma-separated: a grid axis)" if many else "")
    if o.kind is bool:
        p.add_argument(o.flag, action="store_const", const=True, default=o.default if lists else None, help=help_)
        return
    if o.choices:
        kind = _names(o.choices, many)
    elif many or isinstance(o.default, tuple):
        kind = _numbers(o.kind)
    else:
        kind = o.kind
    default = None
    if lists:
        default = [o.default] if many else list(o.default) if isinstance(o.default, tuple) else o.default
    p.add_argument(o.flag, type=kind, default=default, help=help_)


def _names(allowed, lists):
    """An argparse type: one of ``allowed`` (``lists``: comma-separated, a list)."""
    def parse(text):
        items = [v.strip() for v in text.split(",")]
        bad = [v for v in items if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{bad[0]!r} is not one of {', '.join(allowed)}")
        return items if lists else items[0]
    return parse


def _numbers(kind):
    """An argparse type: a comma-separated list of ``kind`` with no empty item."""
    def parse(text):
        items = [v.strip() for v in text.split(",")]
        if not text.strip() or any(not v for v in items):
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.1,0.5, got {text!r}"
                                             " (an empty item)")
        try:
            return [kind(v) for v in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {'integers' if kind is int else 'numbers'}, got {text!r}") from None
    parse.__name__ = "list of " + kind.__name__
    return parse


def _sweep(args):
    from .sweep import interrupted, sweep, write_csv

    bar = {}

    per_launch = (args.networks * len(args.lr) * len(args.lr_output) * len(args.init_scale) * len(args.momentum)
                  * len(args.weight_decay))

    def progress(label, done, total):
        if label not in bar:
            print(label, file=sys.stderr)
            bar[label] = _progress(args, per_launch)
        if bar[label]:
            bar[label](done, total)

    if args.out:
        check_path(args.out, ".csv", "--out", force=args.force)
    t0 = time.perf_counter()
    functions = [f.strip() for f in args.function.split(",")]  # a grid axis, like the others
    table = sweep(
        args.lr, args.hidden, args.init_scale, networks=args.networks, epochs=args.epochs,
        seed=args.seed, init=args.init, function=functions, dtype=args.dtype, backend=args.backend,
        progress=progress, interruptible=True, **{k: getattr(args, k) for k in RECIPE_OPTIONS},
    )
    dt = time.perf_counter() - t0
    t = table.to_records(index=False) if hasattr(table, "to_records") else table
    recipe_cols = [c for c in ("function", "lr_output", "optimizer", "loss", "activation", "output", "momentum",
                               "weight_decay")
                   if len(set(t[c].tolist())) > 1]  # the data and recipe axes that vary
    target = args.target_loss is not None
    print(f"{'H':>3} {'lr':>8} {'scale':>6} " + "".join(f"{c:>12} " for c in recipe_cols)
          + f"{'solved %':>9} {'95 % CI':>15} {'median epoch':>13} {'diverged':>9}"
          + (f" {'target %':>9} {'target median':>13}" if target else ""))
    for r in t:
        print(f"{r['hidden']:>3} {r['lr']:>8g} {r['init_scale']:>6g} "
              + "".join(f"{r[c]:>12} " if isinstance(r[c], str) else f"{r[c]:>12g} " for c in recipe_cols)
              + f"{100 * r['success_rate']:>9.2f} "
              f"{100 * r['ci95_low']:>7.2f}-{100 * r['ci95_high']:<7.2f} {r['solved_epoch_median']:>13.0f} "
              f"{r['diverged']:>9}"
              + (f" {100 * r['target_rate']:>9.2f} {r['target_epoch_median']:>13.0f}" if target else ""))
    done = sum(int(e) for e in t["epochs"]) * args.networks
    print(f"time: {dt:.2f} s including compilation, {done / dt:.3g} network-epochs/s")
    grid = (len(functions) * len(args.hidden) * len(args.optimizer) * len(args.loss) * len(args.activation)
            * len(args.output) * per_launch // args.networks)
    stopped = interrupted(table, args.epochs, grid)
    if stopped:
        print(f"fastxor: interrupted: {len(t)} of {grid} cells, those of the last launch at the epoch it reached "
              "(the epochs column)", file=sys.stderr)
    if args.out:
        where, warning = save_safely(lambda p: write_csv(table, p), args.out, replace=args.force)
        if warning:
            print(f"fastxor: warning: {warning}", file=sys.stderr)
        print(f"saved: {where}")
    return 130 if stopped else 0


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


def _analyse(args):
    from .landscape import analyse
    from .result import TrainResult

    if args.plot:
        from .plots import output_dir

        output_dir(args.plot, "--plot")  # a bad --plot fails before the analysis, not after
    land = analyse(TrainResult.load(args.path), probe_epochs=args.probe_epochs, backend=args.backend)
    print(land.summary())
    if args.plot:
        for p in land.plot(args.plot):
            print(p)
    return 0


def _common(p, networks):
    """The options train and sweep share; ``networks``: sweep's default per
    grid cell, or None for train (whose unset options are told apart from a
    resumed run's settings)."""
    D, o = options.DEFAULTS, options.BY_NAME
    p.add_argument("--networks", type=int, default=networks,
                   help=o["networks"].allowed + f" (default {networks or D['networks']})")
    # --epochs has its default in train too: there it counts the epochs to add to a resumed run
    p.add_argument("--epochs", type=int, default=D["epochs"], help=options.help_text("epochs"))
    for name in ("seed", "init", "dtype"):
        _option_argument(p, name, lists=networks is not None)
    p.add_argument("--backend", default="auto", choices=config.BACKENDS)
    p.add_argument("--function", default=None if networks is None else D["function"],
                   help=f"{o['function'].allowed}: {', '.join(TWO_INPUT)}; parity2..parity8, majority3/5/7, mux6; "
                        "or a truth table of 2^D digits like 0110 or 01101001 (inputs in binary counting order)"
                        + ("; comma-separated: a grid axis" if networks else f" (default {D['function']})"))
    p.add_argument("--progress", default="auto", choices=("auto", "on", "off"),
                   help="progress bar on stderr (auto: on a terminal, for runs over a second)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def _devices(text):
    """``--devices``: all, or comma-separated GPU ids (checked against the machine by train)."""
    if text == "all":
        return text
    try:
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be all or GPU ids like 0,1, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (argparse prints the whole usage, 12-14 lines)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser():
    ap = _Parser(prog="fastxor", description="Train millions of XOR networks at once.")
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train N networks and print success statistics")
    _common(t, None)  # None: unset options are told apart from a resumed run's settings
    for name in ("lr", "hidden", "init_scale", "record_every", *options.RECIPE):
        _option_argument(t, name, lists=False)
    t.add_argument("--devices", type=_devices, default=None, metavar="all|IDS",
                   help="train on these GPUs at once: all, or ids like 0,1 (implies --backend cupy; "
                        "default: the current GPU)")
    t.add_argument("--out", help="save every per-network array to this .npz (fastxor.load reads it)")
    t.add_argument("--resume", metavar="NPZ",
                   help="continue the run saved in NPZ by --epochs more (saved back to NPZ unless --out)")
    d = t.add_argument_group("on a Dask cluster (the dask extra); --out is then a directory of "
                             "shard files, and rerunning the same command resumes it")
    d.add_argument("--workers", type=int, default=None, help="a local cluster of K worker processes")
    d.add_argument("--scheduler", metavar="ADDRESS", help="an existing cluster's scheduler, e.g. tcp://host:8786")
    d.add_argument("--scheduler-file", metavar="FILE", help="an existing cluster's scheduler file")
    d.add_argument("--shard-networks", type=int, default=None,
                   help="networks per shard (default: about 2 minutes of one worker, measured)")
    m = sub.add_parser("merge", help="the statistics of a distributed run's directory of shard files")
    m.add_argument("path", help="the --out directory of fastxor train --workers/--scheduler")
    s = sub.add_parser("sweep", help="grid of lr x hidden x init-scale x recipe, N seeds per cell")
    _common(s, options.SWEEP_NETWORKS)
    for name in ("lr", "hidden", "init_scale", *options.RECIPE):
        _option_argument(s, name, lists=True)
    s.add_argument("--out", help="write the table as CSV")
    from .cli_map import add_parser as add_map

    add_map(sub, _option_argument)
    a = sub.add_parser("analyse", help="classify every network's end point: solved, saddle, plateau, local "
                                       "minimum (gradient, Hessian, weight growth)")
    a.add_argument("path", help="a results .npz (fastxor train --out)")
    a.add_argument("--probe-epochs", type=int, default=None,
                   help="epochs the unsolved networks keep training to see their weights grow "
                        "(default: a tenth of the run, 1000 to 10000)")
    a.add_argument("--backend", default="auto", choices=config.BACKENDS)
    a.add_argument("--plot", help="also write the Hessian spectra and weight-norm figures into this directory")
    p = sub.add_parser("plot", help="figures of a results .npz or a sweep .csv")
    p.add_argument("path")
    p.add_argument("--out", default="plots", help="output directory (default: plots)")
    b = sub.add_parser("bench", help="throughput against PyTorch, JAX and NumPy on this machine")
    b.add_argument("--quick", action="store_true", help="small sizes, about two minutes")
    b.add_argument("--json", help="save the figures as JSON")
    b.add_argument("--plot", help="save throughput against N as a PNG")
    b.add_argument("--force", action="store_true", help="overwrite existing --json / --plot files")
    b.add_argument("--recipe", default="seed", choices=list(_bench_recipes()),
                   help="the training recipe every implementation runs (default: the seed's SGD/MSE/sigmoid)")
    return ap


def _bench_recipes():
    from .bench.peers import RECIPES

    return RECIPES


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when it writes: a
    notebook, a test's capture or a caller may swap (and close) the stream
    that was current when the handler was made."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns one: ignored
        pass


def _announce_compiles():
    """Kernel compilations (seconds each, first use of a variant) shown on
    stderr, so a pause before training is explained, not silent."""
    log = logging.getLogger("fastxor")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("fastxor: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv=None):
    args = parser().parse_args(argv)
    _announce_compiles()
    from . import cli_map

    run = {"train": _train, "sweep": _sweep, "plot": _plot, "analyse": _analyse, "merge": _merge,
           "map": lambda a: cli_map.run(a, _progress)}.get(args.command)
    if run is None:
        from .bench.report import main as bench_main

        run = bench_main
    try:
        return run(args)
    except BrokenPipeError:  # `fastxor train ... | head`: the reader has gone, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit must not fail
        return 0
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"fastxor: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting: no traceback
        print("fastxor: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, or a case not foreseen: still one line, the traceback with --debug
        if args.debug:
            raise
        print(f"fastxor: error: {type(exc).__name__}: {_one_line(exc)} (unexpected: `fastxor --debug "
              f"{args.command} ...` shows where; please report it)", file=sys.stderr)
        return 1


def _one_line(exc):
    """The error in one line: its message, or its type when it has none."""
    text = (getattr(exc, "strerror", None) and f"{exc.strerror}: {exc.filename}") if isinstance(exc, OSError) else None
    text = text or str(exc) or type(exc).__name__
    return " ".join(text.split())


def entry():
    """The ``fastxor`` command: ``main()``, then the objects left are frozen
    (``gc.freeze``) so that the interpreter's last garbage collection does
    not walk every object NumPy and Numba made: 0.15 s of a 0.6 s warm run.
    Only for a process that is about to exit; callers in a process that goes
    on use ``main``."""
    code = main()
    import gc

    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
