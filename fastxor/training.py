"""``fastxor.train`` and ``fastxor.resume``: validate, choose a backend, run
it in epoch segments, package the result.

Why segments: SGD is a Markov chain in the parameters, so training epochs
[a, b) and then [b, c) gives exactly what one run over [a, c) gives — if the
epoch numbers of solved/diverged events and of loss-history columns are
offset. That one mechanism gives progress reporting, a clean Ctrl-C that keeps
the finished epochs, and ``resume`` of a saved run, on every backend.
"""
import os
import time

import numpy as np

from . import config
from .data import check_data, target_sides
from .machine import available_memory
from .params import InitSpec, Params, array_module, n_params
from .result import TrainResult
from .validate import check_dtype, check_int, check_per_network


def available_backends():
    """Backends usable here, fastest first (a GPU first when CuPy can use one)."""
    from .gpu import gpu_problem

    out = ["cupy"] if gpu_problem() is None else []
    try:
        import numba  # noqa: F401

        out.append("numba")
    except ImportError:
        pass
    out.append("numpy")
    return out


def _resolve_backend(backend):
    if not isinstance(backend, str) or backend not in config.BACKENDS:
        raise ValueError(f"backend must be one of {list(config.BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return available_backends()[0]
    if backend == "numba" and "numba" not in available_backends():
        raise ImportError("backend='numba' needs Numba: pip install numba (a core dependency of fastxor)")
    if backend == "cupy":
        from .gpu import gpu_problem

        problem = gpu_problem()
        if problem is not None:
            raise ImportError(f"backend='cupy' cannot run here: {problem}")
    return backend


def estimate_bytes(n, hidden, epochs, record_every, dtype, backend):
    """Peak bytes a run allocates for its inputs, work arrays and outputs."""
    item = np.dtype(dtype).itemsize
    rows = -(-epochs // record_every) if record_every else 0
    per_net = (
        4 * n_params(hidden) * item  # initial Params, flat copy, final Params, float64 init
        + 4 * n_params(hidden) * 8 * (backend == "numpy")  # reference temporaries
        + (1 + 4 + 2) * item + 2 * 8 + 2 * 8  # loss, predictions, lr, epochs
        + 2 * rows * item  # loss history (kernel layout and transposed copy)
    )
    return n * per_net


def _check_memory(n, hidden, epochs, record_every, dtype, backend):
    need = estimate_bytes(n, hidden, epochs, record_every, dtype, backend)
    avail = available_memory()
    if avail is not None and need > config.MEMORY_FRACTION * avail:
        raise MemoryError(
            f"this run needs about {need / 2**30:.1f} GiB for n_networks={n}"
            + (f" with record_every={record_every} ({-(-epochs // record_every)} loss values per network)"
               if record_every else "")
            + f", more than {config.MEMORY_FRACTION:.0%} of the {avail / 2**30:.1f} GiB available; "
            "use fewer networks, a larger record_every, or train in batches (start=...)"
        )


def solved_by_sides(predictions, sides):
    """All predictions strictly on their target's side of 0.5 (the final
    parameters; a chaotic network may have solved earlier and left again)."""
    xp = array_module(predictions)
    return (xp.asarray(sides) * (predictions.astype(xp.float64) - 0.5) > 0).all(axis=1)


def _backend_function(name, fast_math=False, device_arrays=False):
    """``f(params, X, y, sides, epochs, lr, record_every) -> dict`` (as reference.train)."""
    if name == "cupy":
        from . import gpu

        return lambda p, X, y, sides, epochs, lr, k: gpu.train(
            p, X, y, sides, epochs, lr, k, fast=fast_math, device_arrays=device_arrays)
    if name == "numba":
        from . import cpu_kernel

        return cpu_kernel.train
    from . import reference

    return lambda p, X, y, sides, epochs, lr, k: reference.train(p, X, y, epochs, lr, k)


def _segment(run, p, X, y, sides, rates, epoch0, epochs, k):
    """Epochs [epoch0, epoch0 + epochs) of a longer run, as one kernel result
    with global epoch numbers. The kernel records the loss at its local epochs
    0, k, 2k, ...; so first step to the next multiple of k without recording."""
    parts = []
    lead = (-epoch0) % k if k else 0
    if lead and epochs:
        a = min(lead, epochs)
        parts.append((epoch0, run(p, X, y, sides, a, rates, 0)))
        p, epoch0, epochs = parts[-1][1]["params"], epoch0 + a, epochs - a
    if epochs or not parts:
        parts.append((epoch0, run(p, X, y, sides, epochs, rates, k)))
    out = dict(parts[-1][1])
    if len(parts) == 1 and parts[0][0] == 0:
        return out  # epoch numbers are already global (and arrays may be on a GPU)
    for key in ("solved_epoch", "diverged_epoch"):
        ev = np.full(p.n_networks, -1, dtype=np.int64)
        for e0, o in reversed(parts):  # the earliest event wins
            ev = np.where(o[key] >= 0, o[key] + e0, ev)
        out[key] = ev
    hist = [o["loss_history"] for _, o in parts if o["loss_history"] is not None]
    out["loss_history"] = hist[0] if hist else (np.empty((p.n_networks, 0), p.dtype) if k else None)
    return out


def _merge(acc, seg):
    """A run so far followed by its next segment."""
    if acc is None:
        return seg
    out = dict(seg)
    for key in ("solved_epoch", "diverged_epoch"):
        out[key] = np.where(acc[key] >= 0, acc[key], seg[key])
    if acc["loss_history"] is not None:
        out["loss_history"] = np.concatenate([acc["loss_history"], seg["loss_history"]], axis=1)
    return out


class _Pacer:
    """Epoch-segment lengths of about ``seconds`` each, from the measured rate."""

    def __init__(self, n, total, seconds=0.5):
        self.n, self.left, self.seconds = n, total, seconds
        self.next = max(1, min(total, int(2e7 // n)))  # ~0.1 s before the first measurement

    def take(self):
        e = max(1, min(self.left, self.next))
        self.left -= e
        return e

    def measured(self, epochs, dt):
        if dt > 0:
            self.next = max(1, int(epochs * self.seconds / dt))


def _run_epochs(run, p, X, y, sides, rates, epoch0, epochs, k, progress, interruptible):
    """Train in segments; returns (result dict, epochs done, interrupted)."""
    if progress is None and not interruptible:
        return _segment(run, p, X, y, sides, rates, epoch0, epochs, k), epochs, False
    pacer, acc, done = _Pacer(p.n_networks, epochs), None, 0
    report = progress if callable(progress) else (lambda d, t: None)
    try:
        while acc is None or pacer.left > 0:
            e = pacer.take()
            t0 = time.perf_counter()
            seg = _segment(run, p, X, y, sides, rates, epoch0 + done, e, k)
            acc, done, p = _merge(acc, seg), done + e, seg["params"]
            pacer.measured(e, time.perf_counter() - t0)
            report(done, epochs)
    except KeyboardInterrupt:
        if not interruptible:
            raise
        if acc is None:  # not one segment finished: the untrained state
            acc = _segment(run, p, X, y, sides, rates, epoch0, 0, k)
        return acc, done, True
    return acc, done, False


def _package(out, cfg, sides):
    return TrainResult(
        params=out["params"],
        loss=out["loss"],
        predictions=out["predictions"],
        solved=solved_by_sides(out["predictions"], sides),
        solved_epoch=out["solved_epoch"],
        diverged=out["diverged_epoch"] >= 0,
        diverged_epoch=out["diverged_epoch"],
        loss_history=out["loss_history"],
        config=cfg,
    )


def _describe(values):
    v = np.asarray(values)
    return f"{v[0]:g}" if np.all(v == v[0]) else f"{v.min():g}..{v.max():g}"


def train(
    n_networks=None, *, epochs=100_000, lr=0.1, hidden=2, seed=0, init=None, X=None, y=None,
    dtype="float32", backend="auto", record_every=0, init_scale=1.0, start=0,
    progress=None, interruptible=False, fast_math=False, device_arrays=False,
):
    """Train many 2-H-1 sigmoid networks with the seed's full-batch SGD.

    Parameters
    ----------
    n_networks : int >= 1, optional if ``init`` is given.
    epochs : int >= 0, SGD steps.
    lr : float > 0, or (N,) array: a learning rate per network.
    hidden : int in [1, 32], hidden width H (ignored when ``init`` is given).
    seed, start : the deterministic init of networks start..start+N-1, see
        ``init_params``; init_scale: a number or an (N,) array (per network).
    init : Params, optional: start from these parameters instead.
    X, y : (4, 2) inputs and (4,) targets; XOR by default.
    dtype : "float32" (the seed's) or "float64".
    backend : "auto" (fastest here), "numba" or "numpy" (the reference).
    record_every : int >= 0; k > 0 records the loss at epochs 0, k, 2k, ...
    progress : None, or ``f(epochs_done, epochs_total)`` called after each
        segment of about half a second (results are identical either way).
    interruptible : True: Ctrl-C ends training at the last finished segment
        and returns it (``config["interrupted"]``, ``config["epochs"]`` done).
    fast_math : cupy only: a hardware tanh.approx sigmoid (faster, not
        bit-comparable; see the README for its effect on success rates).
    device_arrays : cupy only: leave the result's arrays on the GPU (CuPy).

    Returns
    -------
    TrainResult
    """
    dt = check_dtype(dtype)
    epochs = check_int("epochs", epochs, 0, config.EPOCHS_MAX)
    record_every = check_int("record_every", record_every, 0, config.EPOCHS_MAX)
    name = _resolve_backend(backend)
    X, y = check_data(X, y)
    if init is not None:
        if not isinstance(init, Params):
            raise TypeError(f"init must be a fastxor.Params, got {type(init).__name__}")
        p = init.validated(dt)
        if n_networks is not None and check_int("n_networks", n_networks, 1) != p.n_networks:
            raise ValueError(
                f"n_networks={n_networks} does not match init, which holds {p.n_networks} networks"
            )
        n, hidden = p.n_networks, p.hidden
    else:
        if n_networks is None:
            raise TypeError("n_networks is required unless init is given")
        n = check_int("n_networks", n_networks, 1, 2**40)
        hidden = check_int("hidden", hidden, config.HIDDEN_MIN, config.HIDDEN_MAX)
        p = None
    rates = check_per_network("lr", lr, n, low=0.0, low_open=True)
    scales = None if init is not None else check_per_network("init_scale", init_scale, n, low=0.0)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable f(done, total), got {progress!r}")
    if (fast_math or device_arrays) and name != "cupy":
        raise ValueError(f"fast_math and device_arrays need backend='cupy', not {name!r}")
    if device_arrays and (progress is not None or interruptible):
        raise ValueError("device_arrays=True runs in one piece: no progress or interruptible")
    if not device_arrays:
        _check_memory(n, hidden, epochs, record_every, dt, name)
    if p is None:
        spec = InitSpec(n, hidden, check_int("seed", seed, 0, config.SEED_MAX),
                        check_int("start", start, 0, 2**64 - 1 - n), scales, dt)
        p = spec if name == "cupy" else spec.make()  # the GPU makes it in registers
    sides = target_sides(y)
    out, done, interrupted = _run_epochs(
        _backend_function(name, fast_math, device_arrays), p, X, y, sides, rates, 0, epochs, record_every, progress, interruptible
    )
    given = init is not None
    cfg = dict(
        n_networks=n, epochs=done, hidden=hidden, seed=None if given else seed,
        start=None if given else start,
        init_scale=None if given else (float(scales[0]) if np.all(scales == scales[0]) else scales),
        init="given" if given else "philox", dtype=np.dtype(dt).name, backend=name,
        fast_math=fast_math,
        record_every=record_every, X=X.tolist(), y=y.tolist(),
        lr=float(rates[0]) if np.all(rates == rates[0]) else rates, lr_desc=_describe(rates),
    )
    if interrupted:
        cfg.update(interrupted=True, epochs_requested=epochs)
    return _package(out, cfg, sides)


def resume(result, epochs, *, backend="auto", progress=None, interruptible=False):
    """Continue a run by ``epochs`` more: identical to one longer run.

    ``result``: a TrainResult (or a path saved by ``TrainResult.save``). The
    learning rates, data, dtype and record_every are the original run's;
    solved/diverged epochs and the loss history continue where they stopped.
    """
    if isinstance(result, (str, os.PathLike)):
        from .results_file import load

        result = load(result)
    if not isinstance(result, TrainResult):
        raise TypeError(f"result must be a TrainResult or a results-file path, got {type(result).__name__}")
    more = check_int("epochs", epochs, 0, config.EPOCHS_MAX)
    c = result.config
    name = _resolve_backend(backend)
    done = check_int("result.config['epochs']", c["epochs"], 0)
    n = result.n_networks
    k = c.get("record_every", 0)
    rates = check_per_network("lr", c["lr"], n, low=0.0, low_open=True)
    X, y = check_data(np.array(c["X"]), np.array(c["y"]))
    p = result.params.validated(check_dtype(c["dtype"]), "result.params")
    _check_memory(n, p.hidden, more, k, p.dtype, name)
    sides = target_sides(y)
    seg, ran, interrupted = _run_epochs(
        _backend_function(name, c.get("fast_math", False) and name == "cupy"), p, X, y, sides, rates, done, more, k, progress, interruptible
    )
    before = dict(
        solved_epoch=result.solved_epoch, diverged_epoch=result.diverged_epoch,
        loss_history=result.loss_history if k else None,
    )
    out = _merge(before, seg)
    cfg = dict(c, epochs=done + ran, backend=name)
    cfg.pop("interrupted", None)
    cfg.pop("epochs_requested", None)
    if interrupted:
        cfg.update(interrupted=True, epochs_requested=done + more)
    return _package(out, cfg, sides)
