"""Train one run on a Dask cluster: shards of networks, merged statistics,
resumable shard files (``fastxor.shards``).

Why Dask: it does the scheduling, the transport and the retries, on a laptop
(``LocalCluster``) or an existing cluster (an address or scheduler file;
dask-jobqueue, dask-kubernetes, or dask-cuda's ``LocalCUDACluster`` for one
worker per GPU), so fastxor has no scheduler or worker protocol of its own.
A worker returns its shard's ``fastxor.Stats`` (kilobytes, never
per-network arrays) and, with ``out``, writes the shard's results file
atomically: the merged statistics equal one process's, a rerun skips
finished shards, and a worker killed mid-shard costs only that shard, which
Dask reruns elsewhere.

Numba on Dask workers: Numba ignores the thread variables Dask's nanny sets
(dask/distributed#9075), so each worker process gets ``NUMBA_NUM_THREADS``
in its environment and each task calls ``numba.set_num_threads``; one task
at a time per worker process (``threads_per_worker=1``; Numba's workqueue
layer aborts on concurrent calls, numba#8563); workers are spawned, never
forked after a kernel ran; the ``WarmKernel`` plugin compiles the run's
kernel once per worker, cached on disk (``cache_dir`` sets FASTXOR_CACHE_DIR).
"""
import json
import logging
import os
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .shards import (PER_NETWORK, RUN_FILE, RunStats, ShardNotSaved, plan, prepare_out,  # noqa: F401
                     read_run_file, run_shard, shard_path, shard_stats, write_run_file)
from .machine import install_hint, usable_cores
from .options import DEFAULTS
from .stats import Stats
from .validate import check_int

try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # fastxor.shards and fastxor.load of a directory work without Dask
    _WorkerPlugin = object

__all__ = ["RunStats", "WarmKernel", "connect", "local_cluster", "train"]

#: "auto" shards last about this long on one worker (the issue's 1-10 minutes).
SHARD_SECONDS = 120.0
#: Futures in flight per worker: enough to keep every worker busy, never millions.
IN_FLIGHT_PER_WORKER = 10
#: train() options a distributed run cannot take: the shards run in the workers, in one piece each.
TRAIN_ONLY = ("progress", "interruptible", "device_arrays")
#: Starts of a local cluster before giving up: a worker process that dies while
#: starting (killed, out of memory) aborts Dask's start, and a new start replaces it.
START_TRIES = 3


def _scalar_options(options):
    """The run's options without its per-network arrays: what a warm-up or a
    calibration run of a few networks can take."""
    return {k: v for k, v in options.items() if k not in PER_NETWORK or np.ndim(v) == 0}


#: A calibration run lasts at least this long (or reaches CALIBRATION_MAX networks).
CALIBRATION_SECONDS = 0.5
CALIBRATION_MAX = 1 << 24


def _calibrate(options, threads=None, n=CALIBRATION_MAX):
    """Network-epochs per second of one worker on this run's recipe, measured
    after compiling it there: 4 096 networks (up to 2 000 epochs), then 8x as
    many until a run lasts CALIBRATION_SECONDS (or reaches ``n`` networks,
    at most CALIBRATION_MAX). Why: a GPU needs about 10^6 networks to fill
    its SMs; measured at 4 096 (32 of an H100's 132 SMs busy) its rate came
    out 10-25x low, and so did its shards."""
    from .backends.numba_kernel import unrolled_only

    opts = _scalar_options(options)
    epochs = max(1, min(options.get("epochs", DEFAULTS["epochs"]), 2_000))
    with unrolled_only():  # the kernel the shards use (a Dask run is long), not the one a short run rents
        _warm_up(opts, threads)  # compile
        size, top = 4096, max(1, min(n, CALIBRATION_MAX))
        while True:
            size = min(size, top)
            t0 = time.perf_counter()
            run_shard(dict(opts, epochs=epochs), 0, size, None, threads)
            seconds = time.perf_counter() - t0
            if seconds >= CALIBRATION_SECONDS or size >= top:
                return size * epochs / seconds
            size *= 8


def _warm_up(options, threads):
    """Compile the kernel a shard trains with: a Dask run's shards are long, so
    the unrolled one (``numba_kernel.unrolled_only``), not the looped kernel a
    run of 64 networks would rent."""
    from .backends.numba_kernel import unrolled_only

    with unrolled_only():
        run_shard(dict(options, epochs=1), 0, 64, None, threads)


class WarmKernel(_WorkerPlugin):
    """A Dask worker plugin: points the kernel caches at ``cache_dir`` and
    compiles the run's kernel once per worker process, in a thread (the
    worker's event loop keeps answering heartbeats; ``KERNEL_LOCK`` keeps the
    first task from running a kernel beside it)."""

    name = "fastxor-warm-kernel"

    def __init__(self, options, threads=None, cache_dir=None):
        self.options, self.threads, self.cache_dir = options, threads, cache_dir

    async def setup(self, worker):
        import asyncio

        if self.cache_dir:  # every compiled kernel of fastxor (the user's own Numba code keeps its cache)
            from . import jit_cache

            os.environ["FASTXOR_CACHE_DIR"] = str(self.cache_dir)
            jit_cache.reset()
        opts = _scalar_options(self.options)
        await asyncio.to_thread(_warm_up, opts, self.threads)


def local_cluster(workers=None, threads=None, cache_dir=None):
    """A ``distributed.LocalCluster`` of ``workers`` processes (default 2, at
    most the cores), one task at a time each, each with ``threads`` Numba
    threads (default: the cores shared out), spawned."""
    import dask
    from distributed import LocalCluster

    cores = usable_cores()
    if workers is not None and check_int("workers", workers, 1) > cores:
        raise ValueError(f"workers must be in [1, {cores}] for a local cluster (the cores this process may "
                         f"use), got {workers}; for more, start a cluster and pass its client or scheduler file")
    workers = workers or max(1, min(cores, 2))
    threads = threads or max(1, cores // workers)
    env = {"NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": "1"}
    if cache_dir:
        env["FASTXOR_CACHE_DIR"] = str(cache_dir)
    for _ in range(START_TRIES):
        try:
            with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}), warnings.catch_warnings():
                # no dashboard; the scheduler's health server moves off a busy port 8787 (another cluster's)
                warnings.filterwarnings("ignore", "Port 8787 is already in use", UserWarning)
                return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, env=env,
                                    dashboard_address=None, silence_logs=logging.ERROR)
        except RuntimeError as exc:  # "Nanny failed to start.": LocalCluster has closed what it started
            failure = exc
    raise RuntimeError(f"a local Dask cluster of {workers} worker processes failed to start {START_TRIES} times "
                       f"(a worker process died while starting: {failure}); see the workers' messages above")


def connect(client=None, workers=None, scheduler_file=None, threads=None, cache_dir=None):
    """(Client, close): ``client`` a ``distributed.Client`` (kept open), an
    address string, or None for a new local cluster of ``workers`` processes
    (closed by ``close()``)."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError(f"fastxor.distributed needs Dask: {install_hint('dask')}") from None
    if client is not None and not isinstance(client, (str, Client)):
        raise TypeError(f"client must be a distributed.Client, an address string or None, got "
                        f"{type(client).__name__}")
    if isinstance(client, Client):
        return client, lambda: None
    if scheduler_file is not None:
        if not Path(scheduler_file).is_file():
            raise ValueError(f"scheduler_file {scheduler_file}: no such file")
        try:  # what dask-scheduler --scheduler-file writes: a JSON object with the address
            info = json.loads(Path(scheduler_file).read_text())
            ok = isinstance(info, dict) and isinstance(info.get("address"), str)
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise ValueError(f"scheduler_file {scheduler_file} is not a Dask scheduler file (a JSON object with "
                             "the scheduler's \"address\", as `dask scheduler --scheduler-file` writes)")
        c = Client(scheduler_file=str(scheduler_file), timeout="30s")
        return c, c.close
    if isinstance(client, str):
        c = Client(client, timeout="30s")
        return c, c.close
    cluster = local_cluster(workers, threads, cache_dir)
    c = Client(cluster)

    def close():
        c.close()
        cluster.close()
    return c, close


def _validated(n_networks, train_options):
    """(n, options), checked here before any task is sent: a bad argument is
    one clear error on the client, not one per shard."""
    from . import config
    from .training import train
    from .validate import check_choice, check_int

    bad = [k for k in TRAIN_ONLY if k in train_options]
    if bad:
        raise ValueError(f"{bad[0]} is not an option of a distributed run: shards run in the workers"
                         + (" and make their own initial parameters ('philox' or 'torch' only)"
                            if bad[0] == "init" and not isinstance(train_options["init"], str) else ""))
    n = check_int("n_networks", n_networks, 1, 2**40)
    opts = dict(train_options)
    check_choice("backend", opts.get("backend", "auto"), config.BACKENDS)
    for k in PER_NETWORK:
        if np.ndim(opts.get(k, 0.0)) == 1 and len(opts[k]) != n:
            raise ValueError(f"{k} has {len(opts[k])} values; a per-network {k} needs n_networks={n} values")
    probe = {k: (np.asarray(v)[:1] if k in PER_NETWORK and np.ndim(v) == 1 else v) for k, v in opts.items()}
    train(1, **dict(probe, epochs=0, backend="numpy", fast_math=False))  # every other check of train()
    return n, opts


def _warm(client, options, threads, cache_dir):
    """Register ``WarmKernel``. A worker that dies while warming (its comm
    closes) costs nothing: the scheduler keeps the plugin for the worker that
    replaces it, and the run goes on with the others."""
    try:
        client.register_plugin(WarmKernel(options, threads, cache_dir))
    except OSError as exc:  # distributed's CommClosedError
        logging.getLogger("fastxor").info("a Dask worker died while compiling the kernel (%s); the run goes on "
                                          "without it", exc)


def _n_workers(client):
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # before distributed 2025.4
        info = client.scheduler_info()
    return max(1, len(info.get("workers", {})))


def _auto_shard(client, n, options, n_workers, threads):
    """Shard size from one worker's measured speed: about SHARD_SECONDS each,
    but at least 4 shards per worker when N allows, and at least 1024 networks
    (a multiple of 64, the CPU kernel's SIMD chunk)."""
    rate = client.submit(_calibrate, options, threads, n, pure=False).result()
    epochs = max(1, options.get("epochs", DEFAULTS["epochs"]))
    size = int(rate * SHARD_SECONDS / epochs)
    size = min(size, -(-n // (4 * n_workers)))
    size = max(size, 1024)
    return min(n, -(-size // 64) * 64)


def train(n_networks, *, client=None, workers=None, shard_networks="auto", out=None, resume=True, progress=True,
          scheduler_file=None, threads=None, cache_dir=None, **train_options):
    """Train ``n_networks`` networks (``fastxor.train``'s ``**train_options``)
    as shards on a Dask cluster; return the merged ``RunStats`` (per-network
    arrays never travel; with ``out``, each shard is saved there and
    ``fastxor.load(out)`` gives the whole ``TrainResult``).

    client : a ``distributed.Client``, a scheduler address ("tcp://host:8786"),
        or None: a ``LocalCluster`` of ``workers`` processes (closed at the end).
    scheduler_file : a Dask scheduler file, instead of ``client``.
    shard_networks : networks per shard, or "auto" (about 2 minutes of one
        worker, measured on a worker first).
    out : a directory: one results file per shard, written atomically; a
        shard whose file exists is finished, so the same call resumes
        (``resume=False`` refuses a directory with finished shards). A
        directory holding another run is refused.
    progress : a bar over shards on stderr (done/total, network-epochs/s, ETA),
        or a callable ``f(shards_done, shards_total)``.
    threads : Numba threads per task (default: the worker's NUMBA_NUM_THREADS).
    cache_dir : the kernel cache directory on every worker (FASTXOR_CACHE_DIR).
    """
    t0 = time.perf_counter()
    n, options = _validated(n_networks, train_options)
    if shard_networks != "auto":
        from .validate import check_int

        shard_networks = check_int("shard_networks", shard_networks, 1, n)
    done = {}
    if out is not None:  # refused before a cluster starts; a finished run fixes the shard size
        shard_networks = prepare_out(out, n, shard_networks, options, resume) or shard_networks
        if shard_networks != "auto" and (Path(out) / RUN_FILE).exists():  # its finished shards, each checked
            run = read_run_file(out)
            done = {i: shard_stats(out, i, run) for i in range(len(plan(n, shard_networks)))
                    if shard_path(out, i).exists()}
    cl, close = connect(client, workers, scheduler_file, threads, cache_dir)
    try:
        n_workers = _n_workers(cl)
        _warm(cl, options, threads, cache_dir)
        if shard_networks == "auto":
            shard_networks = _auto_shard(cl, n, options, n_workers, threads)
        if out is not None:
            write_run_file(out, n, shard_networks, options)
        shards = plan(n, shard_networks)
        jobs = [(i, options, lo, m, None if out is None else str(shard_path(out, i)))
                for i, (lo, m) in enumerate(shards) if i not in done]
        bar = _bar(progress, len(shards), len(done), n * options.get("epochs", DEFAULTS["epochs"]) / len(shards))
        done.update(_run(cl, jobs, threads, n_workers, bar))
    finally:
        close()
    return _run_stats([done[i] for i in range(len(shards))], len(jobs), time.perf_counter() - t0, n_workers, out)


def _run_stats(parts, ran, seconds, workers, out):
    merged = sum(parts)
    fields = {f: getattr(merged, f) for f in Stats.__dataclass_fields__}
    return RunStats(**fields, shards=len(parts), shards_run=ran, seconds=seconds, workers=workers,
                    out=None if out is None else str(out))


def train_many(runs, *, client=None, workers=None, shard_networks="auto", progress=False, threads=None,
               cache_dir=None):
    """Several runs' shards through one queue (a sweep's grid cells): ``runs``
    is a list of (n_networks, train_options); returns their ``RunStats`` in
    order. No output files (``train(out=)`` for one run)."""
    t0 = time.perf_counter()
    checked = [_validated(n, opts) for n, opts in runs]
    cl, close = connect(client, workers, None, threads, cache_dir)
    try:
        n_workers = _n_workers(cl)
        jobs, owner = [], []
        for r, (n, options) in enumerate(checked):
            size = shard_networks
            if size == "auto":
                total = sum(m for m, _ in checked)
                size = max(1024, -(-total // (4 * n_workers * len(checked)))) if total else 1
            for lo, m in plan(n, min(size, n)):
                owner.append(r)
                jobs.append((len(jobs), options, lo, m, None))
        bar = _bar(progress, len(jobs), 0, sum(n * o.get("epochs", DEFAULTS["epochs"]) for n, o in checked) / max(1, len(jobs)))
        done = _run(cl, jobs, threads, n_workers, bar)
    finally:
        close()
    seconds = time.perf_counter() - t0
    return [_run_stats([done[j] for j in range(len(jobs)) if owner[j] == r], sum(1 for o in owner if o == r),
                       seconds, n_workers, None) for r in range(len(checked))]


def _run(client, jobs, threads, n_workers, bar):
    """Submit the shard ``jobs`` (index, options, lo, n, path), at most
    IN_FLIGHT_PER_WORKER per worker at a time, topped up as they finish;
    {index: Stats}. A shard that fails every try (Dask retries a killed
    worker's task elsewhere, then raises KilledWorker) is an error naming the
    shard, never a hang."""
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]  # keys unique per call: Dask would reuse another run's result
    results, queue, index = {}, list(jobs), {}
    limit = max(2, IN_FLIGHT_PER_WORKER * n_workers)

    def submit(job):
        i, options, lo, m, path = job
        f = client.submit(_task, options, lo, m, path, threads, pure=False, key=f"fastxor-shard-{i}-{token}")
        index[f.key] = (job, f)
        return f

    pending = as_completed([submit(queue.pop(0)) for _ in range(min(limit, len(queue)))])
    try:
        for f in pending:
            (i, _, lo, m, path), _ = index.pop(f.key)
            try:
                results[i] = f.result()
            except Exception as exc:  # noqa: BLE001 - reported with the shard it belongs to
                what = (f"it killed every worker that ran it ({exc})" if type(exc).__name__ == "KilledWorker"
                        else f"{type(exc).__name__}: {exc}")
                raise RuntimeError(f"shard {i} (networks {lo}..{lo + m - 1}) failed: {what}") from None
            if isinstance(results[i], NotSaved):
                raise OSError(f"shard {i} (networks {lo}..{lo + m - 1}) could not be saved: {results[i].error}; "
                              f"the shards saved in {Path(path).parent} are kept: make room there (or restore the "
                              "directory) and rerun the same command")
            if bar:
                bar()
            if queue:
                pending.add(submit(queue.pop(0)))
    finally:
        left = [f for _, f in index.values()]
        if left:
            client.cancel(left)
    return results


@dataclass(frozen=True)
class NotSaved:
    """A shard trained but its file could not be written (a full disk, the
    ``out`` directory removed): returned, not raised, so the client reports
    one line and no worker logs an error with its traceback."""

    error: str


def _task(options, lo, m, path, threads):
    """What a worker runs for one shard (a test replaces it to crash a worker)."""
    try:
        return run_shard(options, lo, m, path, threads)
    except ShardNotSaved as exc:
        return NotSaved(str(exc))


def _bar(progress, total, already, ne_per_shard):
    if not progress:
        return None
    if callable(progress):
        state = {"done": already}

        def tick():
            state["done"] += 1
            progress(state["done"], total)
        return tick
    from .progress import ShardProgress

    return ShardProgress(total, already, ne_per_shard)


