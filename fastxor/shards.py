"""A run stored as shard files: the plan of shards, the task that trains one,
and the directory that holds them (``run.json`` + ``shard-NNNNNN.npz``).

Why a module apart from ``fastxor.distributed``: reading, merging and
resuming a run directory needs no Dask (``fastxor merge``, ``fastxor.load``
of a directory), and the task a worker runs needs only fastxor.

A shard is a range of networks of the run (``start``, ``n``): a pure
function of the run's configuration, bit for bit the same slice of one
``fastxor.train`` call (every backend trains each network on its own, and
network i's initial parameters depend only on the seed and i).
"""
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import options
from .stats import Stats

#: Per-network options: an (N,) array is sliced per shard.
PER_NETWORK = options.PER_NETWORK
RUN_FILE = "run.json"
#: One kernel call at a time per process: Numba's workqueue threading layer
#: aborts on concurrent parallel calls (numba#8563), and a worker's warm-up
#: thread must not overlap its first task.
KERNEL_LOCK = threading.Lock()


@dataclass(frozen=True)
class RunStats(Stats):
    """A distributed run's merged ``Stats`` plus how it ran: ``shards``
    (total), ``shards_run`` (this call; the rest were found finished in
    ``out``), ``seconds``, ``workers``, ``out``."""

    shards: int = 0
    shards_run: int = 0
    seconds: float = 0.0
    workers: int = 0
    out: str = None


def plan(n_networks, shard_networks):
    """The shards of a run: [(start, n), ...] covering 0..n_networks-1."""
    return [(lo, min(shard_networks, n_networks - lo)) for lo in range(0, n_networks, shard_networks)]


def shard_path(out, index):
    return Path(out) / f"shard-{index:06d}.npz"


def run_shard(options, lo, n, path=None, threads=None):
    """Train networks lo..lo+n-1 of the run ``options`` (fastxor.train's
    keywords, per-network arrays whole); save them to ``path`` (atomically)
    if given; return their ``Stats``. This is the task a worker runs."""
    from .training import train

    opts = dict(options)
    for k in PER_NETWORK:
        if np.ndim(opts.get(k, 0.0)) == 1:
            opts[k] = np.asarray(opts[k])[lo:lo + n]
    opts["start"] = opts.get("start", 0) + lo
    with KERNEL_LOCK:
        _numba_threads(threads, opts.get("backend", "auto"))
        r = train(n, **opts)
    if path is not None:
        try:
            r.save(path)
        except OSError as exc:
            raise ShardNotSaved(f"{exc.strerror or exc}: {exc.filename or path}") from exc
    return r.statistics()


def _numba_threads(threads, backend):
    """Give the Numba kernel this worker's share of the cores (Dask's thread
    variables do not reach Numba); nothing where the shard does not run on
    Numba (a GPU worker's cupy shards: its Numba threads are left as set)."""
    if backend not in ("auto", "numba"):
        return
    try:
        import numba
    except ImportError:
        return
    limit = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(max(1, min(threads or limit, limit)))


class ShardNotSaved(OSError):
    """A shard trained, but its file could not be written (a full disk, the
    run directory removed)."""


def load_shard(out, index, run):
    """Shard ``index`` of the run directory ``out`` (``run``: its run file),
    checked against its run: the planned networks, and every option both
    record as a single value. A shard from another run (copied in, or left by
    an edited command) is an error naming it, never merged."""
    from .result import TrainResult

    path = shard_path(out, index)
    try:
        r = TrainResult.load(path)
    except ValueError as exc:  # truncated or foreign
        raise ValueError(f"{exc}; remove {path} and rerun the same command to train that shard again") from None
    lo, n = plan(run["n_networks"], run["shard_networks"])[index]
    expect = dict(run["options"], n_networks=n, start=run["options"].get("start", 0) + lo)
    for key, want in expect.items():
        got = r.config.get(key)
        if (got is None or want is None or np.ndim(got) or isinstance(want, (list, dict))
                or (isinstance(want, str) and key in PER_NETWORK)):
            continue  # not recorded by both as one value (per-network arrays are fingerprinted whole)
        if got != want:
            raise ValueError(f"{path} does not belong to the run in {out}: its {key} is {got!r}, the run's "
                             f"{want!r}; remove it and rerun the same command to train it again")
    return r


def shard_stats(out, index, run):
    return load_shard(out, index, run).statistics()


def fingerprint(n, shard_networks, options):
    """What makes a run: its shards hold the same networks only if all of this
    agrees (every train() option, defaults included, and fastxor's version)."""
    import inspect

    from . import __version__
    from .training import train

    def jsonable(v):
        if isinstance(v, np.ndarray) or (isinstance(v, (list, tuple)) and np.ndim(v) == 1 and len(v) > 8):
            a = np.ascontiguousarray(v, dtype=np.float64)
            return f"array of {a.size}, sha256 {hashlib.sha256(a.tobytes()).hexdigest()[:16]}"
        if isinstance(v, tuple):
            return list(v)
        return v.item() if hasattr(v, "item") else v

    skip = ("n_networks", "progress", "interruptible", "device_arrays")
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items()
                if p.default is not inspect.Parameter.empty and k not in skip}
    opts = {k: jsonable(v) for k, v in sorted(dict(defaults, **options).items()) if k != "backend"}
    return dict(n_networks=n, shard_networks=shard_networks, options=opts, fastxor=__version__)


def prepare_out(out, n, shard_networks, options, resume):
    """Create or check the output directory; the shard size it fixes (or None)."""
    out = Path(out)
    if out.suffix == ".npz" or (out.exists() and not out.is_dir()):
        raise ValueError(f"out {out}: a distributed run writes a directory of shard files, not a file")
    if not out.parent.is_dir():
        raise ValueError(f"out {out}: the directory {out.parent} does not exist")
    run_file = out / RUN_FILE
    if run_file.exists():
        saved = read_run_file(out)
        if shard_networks == "auto":
            shard_networks = saved.get("shard_networks")
        mine = fingerprint(n, shard_networks, options)
        diff = [k for k in ("n_networks", "shard_networks") if saved.get(k) != mine[k]]
        diff += [f"{k} {saved['options'].get(k)!r} vs {mine['options'].get(k)!r}"
                 for k in sorted(set(saved["options"]) | set(mine["options"]))
                 if saved["options"].get(k) != mine["options"].get(k)]
        if diff:
            raise ValueError(f"out {out} holds another run (it differs in: {', '.join(map(str, diff))}); "
                             "give another directory, or remove it")
        if not resume and any(out.glob("shard-*.npz")):
            raise ValueError(f"out {out} already holds finished shards; resume=True continues the run")
        return shard_networks
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"out {out} is a directory that holds other files; give a new or empty directory")
    return None


def write_run_file(out, n, shard_networks, options):
    out = Path(out)
    out.mkdir(exist_ok=True)
    tmp = out / f".{RUN_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(fingerprint(n, shard_networks, options), indent=1))
    os.replace(tmp, out / RUN_FILE)


def load(out):
    """The whole ``TrainResult`` of a finished run directory (every shard
    concatenated, in order): what one ``fastxor.train`` call returns."""
    from .params import Params
    from .result import _ARRAYS, _OPTIONAL, TrainResult
    from .state import PARAM_FIELDS

    out = Path(out)
    run = read_run_file(out)
    shards = plan(run["n_networks"], run["shard_networks"])
    missing = [i for i in range(len(shards)) if not shard_path(out, i).exists()]
    if missing:
        raise ValueError(f"{out}: {len(missing)} of {len(shards)} shards are not finished (first: "
                         f"{shard_path(out, missing[0]).name}); rerun the same command to finish them")
    from .machine import require_memory

    first = load_shard(out, 0, run)
    arrays = [*first.params.arrays(), *(getattr(first, k) for k in _ARRAYS + _OPTIONAL)]
    per_network = sum(a.nbytes for a in arrays if a is not None) / first.n_networks
    require_memory(2 * per_network * run["n_networks"], f"fastxor.load({str(out)!r}) of {run['n_networks']} "
                   "networks (fastxor merge gives its statistics without loading it)")
    parts = [first] + [load_shard(out, i, run) for i in range(1, len(shards))]
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    params = Params(*(np.concatenate([getattr(p.params, k) for p in parts]) for k in PARAM_FIELDS))
    config = dict(parts[0].config, n_networks=run["n_networks"], start=parts[0].config.get("start"))
    for k in PER_NETWORK:
        vals = [p.config.get(k) for p in parts]
        if any(np.ndim(v) == 1 for v in vals):
            config[k] = np.concatenate([np.broadcast_to(v, (p.n_networks,)) for v, p in zip(vals, parts)])
    if "lr" in config and np.ndim(config["lr"]) == 1:
        from .training import _describe

        config["lr_desc"] = _describe(config["lr"])
    opt_state = (np.concatenate([p.optimizer_state for p in parts], axis=1)
                 if parts[0].optimizer_state is not None else None)
    return TrainResult(
        params=params, **{k: cat(k) for k in _ARRAYS},
        **{k: cat(k) for k in _OPTIONAL if k != "optimizer_state" and getattr(parts[0], k) is not None},
        optimizer_state=opt_state, config=config, versions=parts[0].versions,
    )


def merge(out):
    """(RunStats of the finished shards in ``out``, the number of shards in the
    run): the statistics without a cluster."""
    out = Path(out)
    run = read_run_file(out)
    shards = plan(run["n_networks"], run["shard_networks"])
    found = [i for i in range(len(shards)) if shard_path(out, i).exists()]
    if not found:
        raise ValueError(f"{out}: no finished shard yet (0 of {len(shards)})")
    merged = sum(shard_stats(out, i, run) for i in found)
    fields = {f: getattr(merged, f) for f in Stats.__dataclass_fields__}
    return RunStats(**fields, shards=len(shards), shards_run=0, out=str(out)), len(found)


def read_run_file(out):
    run_file = Path(out) / RUN_FILE
    if not Path(out).is_dir():
        raise ValueError(f"{out}: no such directory")
    if not run_file.is_file():
        raise ValueError(f"{out} is not a fastxor run directory (no {RUN_FILE})")
    try:
        run = json.loads(run_file.read_text())
        int(run["n_networks"]), int(run["shard_networks"])
        if not isinstance(run["options"], dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{run_file} is not a readable fastxor run file") from None
    return run
