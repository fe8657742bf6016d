"""``fastxor.train`` and ``fastxor.resume``: validate, choose a backend, run
it in epoch segments, package the result.

Why segments: SGD is a Markov chain in the parameters, so training epochs
[a, b) and then [b, c) gives exactly what one run over [a, c) gives. Every
backend counts epochs globally from ``State.epoch`` and writes the loss
history into the run's one history array, so a segment costs no copying and
no merging: that one mechanism gives progress reporting, a clean Ctrl-C that
keeps the finished epochs, and ``resume`` of a saved run, on every backend.

Data flow: arguments -> ``State`` (flat (P, N) parameters, made once) ->
``backend.run`` per segment, in place -> ``TrainResult`` (Params built once).
"""
import contextlib
import dataclasses
import math
import os
import signal
import time

import numpy as np

from . import backends, config
from .arrays import array_module, to_host
from .data import check_data, check_targets, function_of, solved_by, target_sides
from .machine import require_memory
from .outputs import HeldSignals
from .inits import initial_parameters
from .params import Params
from .progress import resolve as resolve_progress
from .result import TrainResult
from .state import Data, KernelOutput, Recipe, State, history_rows
from .options import DEFAULTS as D
from .options import RECIPE
from .validate import check_dtype, check_in_dtype, check_int, check_per_network, check_recipe


def available_backends():
    """Backends usable here, in ``auto``'s order of preference."""
    return backends.available()


def check_memory(backend, n, recipe, epochs, record_every, extra=0):
    """Refuse, before allocating, a run whose peak memory would not fit
    (``extra``: bytes the caller holds besides the run, e.g. a sweep's inputs)."""
    rows = history_rows(epochs, record_every)
    what = f"this run of n_networks={n}" + (
        f" with record_every={record_every} ({rows} loss values per network)" if rows else "")
    require_memory(backend.memory_bytes(n, recipe, rows) + extra, what)


class _Pacer:
    """Epoch-segment lengths: about ``seconds`` each, and always long enough
    that the per-segment fixed cost ``fixed`` (moving the state into the
    kernel's chunks and back, measured by a zero-epoch run of the whole
    state) stays under 2 % of a segment: where that takes segments longer
    than ``seconds`` (millions of networks), they are 50 x ``fixed``, however
    long (a 10 s cap once made the pacer fall into one-epoch segments when
    the fixed cost passed 10 s, at ~3e8 networks on a GPU). The time per
    epoch is the median of the last three segments' (a shared machine is
    noisy); lengths grow at most 4x a step until a segment's compute time,
    at least ``reliable`` seconds, measures it well.
    """

    def __init__(self, n, total, fixed=0.0, seconds=0.5, reliable=0.05):
        self.left, self.fixed, self.reliable = total, fixed, reliable
        self.target = max(seconds, 50 * fixed)
        # the first segment, before any measurement: ~0.1 s on a CPU (2e8 network-epochs/s),
        # and at least a fixed cost's worth of compute at 1e9 (not a string of one-epoch
        # segments, each paying a fixed cost of seconds, at 1e8+ networks on a GPU)
        self.next = max(1, min(total, int(max(2e7, 1e9 * fixed) // n)))
        self.per_epoch = []

    def take(self):
        e = min(self.left, max(1, self.next))  # never more than is left (a 0-epoch run takes none)
        self.left -= e
        return e

    def measured(self, epochs, dt):
        compute = dt - self.fixed
        self.per_epoch.append(max(compute, 1e-9) / epochs)
        per_epoch = float(np.median(self.per_epoch[-3:]))
        grow = 4 * epochs if compute < self.reliable else float("inf")
        self.next = max(1, math.ceil(min((self.target - self.fixed) / per_epoch, grow)))  # ceil: within 2 %


def _run(backend, state, data, epochs, record_every, recipe, out, progress, interruptible):
    """Train ``epochs`` more epochs in segments; returns (epochs done, interrupted)."""
    if epochs == 0 or progress is None and not interruptible:
        backend.run(state, data, epochs, record_every, recipe, out)  # 0 epochs: the outputs of the state as it is
        return epochs, False
    work = state.n_networks * epochs  # what is left of the run: the backend's hint for choosing a kernel
    fixed = 0.0
    for _ in range(2):  # a zero-epoch segment costs exactly the fixed part (the first may compile)
        t0 = time.perf_counter()
        backend.run(state, data, 0, record_every, recipe, out, final=False, work=work)
        fixed = time.perf_counter() - t0
    pacer, done, ran_once = _Pacer(state.n_networks, epochs, fixed=fixed), 0, False
    report = progress if callable(progress) else (lambda d, t: None)
    # Ctrl-C / SIGTERM while a segment runs is held to its end: backends update the
    # state in place, so every state kept is the exact end of a segment.
    held = HeldSignals() if interruptible else contextlib.nullcontext()
    with held:
        while not ran_once or pacer.left > 0:
            e = pacer.take()
            t0 = time.perf_counter()
            backend.run(state, data, e, record_every, recipe, out, final=pacer.left == 0,
                        work=state.n_networks * (epochs - done))
            ran_once, done = True, done + e
            pacer.measured(e, time.perf_counter() - t0)
            try:
                report(done, epochs)
            except KeyboardInterrupt:  # raised by the callback, between segments: a clean stop
                if not interruptible:
                    raise
                held.signum = signal.SIGINT
            if interruptible and held.hit and pacer.left:
                backend.run(state, data, 0, record_every, recipe, out, work=0)  # the outputs of where it stopped
                return done, True
    return done, False


def _package(state, out, data, recipe, cfg):
    """The result, with its Params built once from the flat state."""
    rows = history_rows(state.epoch, cfg["record_every"])
    params = Params.from_flat(state.params, recipe.hidden, recipe.inputs)
    state.params = None  # the flat copy is not needed any more
    return TrainResult(
        params=params,
        loss=out.loss,
        predictions=out.predictions,
        solved=solved_by(out.predictions, data.sides),
        solved_epoch=state.solved_epoch,
        diverged=state.diverged_epoch >= 0,
        diverged_epoch=state.diverged_epoch,
        loss_history=None if out.history is None else out.history[:, :rows],
        config=cfg,
        target_epoch=state.target_epoch if recipe.target_loss is not None else None,
        optimizer_state=state.buffers,
        computed_statistics=state.statistics,
    )


def _describe(values):
    v = np.asarray(values)
    return f"{v[0]:g}" if np.all(v == v[0]) else f"{v.min():g}..{v.max():g}"


def _per_network_value(values):
    """A float when every network has the same value (readable config), else the array."""
    return float(values[0]) if np.all(values == values[0]) else values


def _outputs(n, recipe, rows, device_arrays):
    if not device_arrays:
        return KernelOutput.empty(n, recipe, rows)
    import cupy

    return KernelOutput.empty(n, recipe, rows, xp=cupy)


def train(
    n_networks=None, *, epochs=D["epochs"], lr=D["lr"], hidden=D["hidden"], seed=D["seed"], init=D["init"],
    function=None, X=None, y=None, dtype=D["dtype"], backend="auto", record_every=D["record_every"],
    init_scale=D["init_scale"], start=0, progress=None, interruptible=False, fast_math=False, device_arrays=False,
    optimizer=D["optimizer"], momentum=D["momentum"], dampening=D["dampening"], nesterov=D["nesterov"],
    weight_decay=D["weight_decay"], betas=D["betas"], eps=D["eps"], loss=D["loss"], activation=D["activation"],
    target_loss=D["target_loss"], lr_output=D["lr_output"], output=D["output"], devices=None,
):
    """Train many D-H-1 networks, full batch: by default the seed's XOR
    network and recipe (2 inputs, sigmoid hidden units, MSE, plain SGD), or
    any data and recipe below.

    Parameters
    ----------
    n_networks : int >= 1, optional if ``init`` is a Params.
    epochs : int >= 0, SGD steps.
    lr : float > 0, or (N,) array: a learning rate per network (the hidden
        layer's, W1 and b1, when ``lr_output`` is given).
    lr_output : None (the same as lr), or float > 0 or (N,) array: the output
        layer's (W2, b2) learning rate, as torch.optim with two parameter
        groups [W1, b1] at lr and [W2, b2] at lr_output.
    hidden : int in [1, 32], hidden width H (ignored when ``init`` is a Params).
    seed, start : networks start..start+N-1 of ``seed``; init_scale: a number
        or an (N,) array (per network) multiplying nn.Linear's init range.
    init : "philox" (fastxor's deterministic init, see ``init_params``),
        "torch" (exactly PyTorch's nn.Linear init of seeds seed+start, ...;
        needs torch), or a Params to start from.
    function : a boolean function's name ("xor", "parity3", "majority5",
        "mux6", ...) or truth table of 2^D digits ("0110"); or give ``X``
        (S, D) and ``y`` (S,) instead, any real data (D <= 8, S <= 256).
        XOR by default. D is the network's input count.
    dtype : "float32" (the seed's) or "float64".
    backend : "auto" (fastest here), "numba", "numpy" (the reference) or "cupy".
    record_every : int >= 0; k > 0 records the loss at epochs 0, k, 2k, ...
    progress : None; True for a progress bar (on a terminal or a log: stderr;
        in a Jupyter notebook: one line updated in place); or
        ``f(epochs_done, epochs_total)``, called after each segment of about
        half a second (results are identical either way).
    interruptible : True: Ctrl-C ends training at the last finished segment
        and returns it (``config["interrupted"]``, ``config["epochs"]`` done).
    fast_math : cupy only: a hardware tanh.approx sigmoid (faster, not
        bit-comparable; docs/gpu.md gives its effect on success rates).
    device_arrays : cupy only: leave the result's arrays on the GPU (CuPy):
        its statistics are then computed there, and only they come to the
        host. "auto": on the GPU when the run's backend is cupy on one GPU
        and its results fit there, else on the host (what the command line
        does when it saves no file).
    devices : None (the current GPU, when the backend is cupy), "all" (every
        GPU of this machine) or a list of GPU ids: the networks are split
        among them, one host thread per GPU, with results identical to one
        GPU's. Implies backend="cupy".
    optimizer : "sgd" (``torch.optim.SGD``), "adam" or "adamw" (``torch.optim.
        Adam`` / ``AdamW``; note fastxor's weight_decay default is 0 for both).
    momentum, dampening, nesterov : SGD's, as torch; momentum >= 0 a number
        or one per network.
    weight_decay : >= 0, a number or one per network (L2 added to the
        gradient; AdamW's decoupled decay).
    betas, eps : Adam's.
    loss : "mse" (nn.MSELoss), "bce" (nn.BCELoss on the sigmoid output, with
        torch's clamps), "bce_logits" (nn.BCEWithLogitsLoss on its logit).
    activation : the hidden layer's, "sigmoid", "tanh" or "relu".
    output : the output unit, "sigmoid" (the seed's) or "linear" (the identity:
        loss="mse" on the raw output, where full-batch training can diverge);
        either way a network is solved when every output is on its
        target's side of 0.5.
    target_loss : None, or a loss c >= 0: ``result.target_epoch`` is each
        network's first epoch with loss <= c (-1 if never).

    Returns
    -------
    TrainResult; its ``config`` records every argument that made it.
    """
    dt = check_dtype(dtype)
    epochs = check_int("epochs", epochs, 0, config.EPOCHS_MAX)
    record_every = check_int("record_every", record_every, 0, config.EPOCHS_MAX)
    X, y, fn = _training_data(function, X, y)
    given = isinstance(init, Params)
    if given:
        init = init.validated(dt)
        _check_inputs(init, X, "init")
        if n_networks is not None and check_int("n_networks", n_networks, 1) != init.n_networks:
            raise ValueError(
                f"n_networks={n_networks} does not match init, which holds {init.n_networks} networks"
            )
        n, hidden = init.n_networks, init.hidden
    else:
        if not isinstance(init, str):
            raise TypeError(f"init must be 'philox', 'torch' or a fastxor.Params, got {type(init).__name__}")
        if init not in ("philox", "torch"):
            raise ValueError(f"init must be 'philox', 'torch' or a fastxor.Params, got {init!r}")
        if n_networks is None:
            raise TypeError("n_networks is required unless init is a Params")
        n = check_int("n_networks", n_networks, 1, 2**40)
        hidden = check_int("hidden", hidden, config.HIDDEN_MIN, config.HIDDEN_MAX)
        seed = check_int("seed", seed, 0, config.SEED_MAX)
        start = check_int("start", start, 0, 2**64 - 1 - n)
    for name, value in (("lr", lr), ("init_scale", None if given else init_scale)):
        if value is not None and np.ndim(value) == 0:  # a number: checked before it becomes N of them
            v = check_per_network(name, value, 1, low=0.0, low_open=name == "lr")
            check_in_dtype(name, v[0], dt, nonzero=name == "lr")
    progress = resolve_progress(progress, n)
    recipe_options, coef = check_recipe(
        n, dt, optimizer=optimizer, momentum=momentum, dampening=dampening, nesterov=nesterov,
        weight_decay=weight_decay, betas=betas, eps=eps, loss=loss, activation=activation, target_loss=target_loss,
        lr_output=lr_output, output=output)
    check_targets(y, recipe_options["loss"])
    recipe = Recipe(hidden, np.dtype(dt), bool(fast_math), X.shape[1], len(y), **recipe_options)
    chosen = _backend_for(backend, n, recipe, devices)
    rows = history_rows(epochs, record_every) if record_every else None
    if isinstance(device_arrays, str) and device_arrays == "auto":
        device_arrays = (chosen.NAME == "cupy" and devices is None
                         and chosen.device_result_fits(n, recipe, rows or 0))
    elif not isinstance(device_arrays, (bool, np.bool_)):
        raise ValueError(f"device_arrays must be True, False or 'auto', got {device_arrays!r}")
    if (fast_math or device_arrays) and chosen.NAME != "cupy":
        raise ValueError(f"fast_math and device_arrays need backend='cupy', not {chosen.NAME!r}")
    if device_arrays and devices is not None:
        raise ValueError("device_arrays=True keeps the result on the current GPU: give devices=None (choose "
                         "the GPU with cupy.cuda.Device(i))")
    if device_arrays:  # every result stays on the GPU: chunking cannot help
        chosen.check_device_memory(n, recipe, rows or 0)
    else:
        check_memory(chosen, n, recipe, epochs, record_every)  # before any per-network array
    rates = check_per_network("lr", lr, n, low=0.0, low_open=True)
    lr_cast = check_in_dtype("lr", rates, dt, nonzero=True)  # checked after the cast to dtype
    scales = None if given else check_per_network("init_scale", init_scale, n, low=0.0)
    if scales is not None:
        check_in_dtype("init_scale", scales, dt)
    flat, spec = (init.to_flat(), None) if given else initial_parameters(
        init, n, hidden, seed, start, scales, dt, recipe.inputs, lazy=chosen.NAME == "cupy")
    out = _outputs(n, recipe, rows, device_arrays)
    state = State.fresh(flat, lr_cast, spec, recipe, *_coefficients(coef, n, dt))
    if device_arrays:  # the whole state on the GPU: segments copy nothing back
        import cupy

        for name in ("solved_epoch", "diverged_epoch", "target_epoch", "buffers"):
            if getattr(state, name) is not None:
                setattr(state, name, cupy.asarray(getattr(state, name)))
    data = Data(X, y, target_sides(y))
    done, interrupted = _run(chosen, state, data, epochs, record_every, recipe, out, progress, interruptible)
    cfg = dict(
        n_networks=n, epochs=done, hidden=hidden, seed=None if given else seed,
        start=None if given else start,
        init_scale=None if given else _per_network_value(scales),
        init="given" if given else init, function=fn, dtype=recipe.dtype.name, backend=chosen.NAME,
        devices=_devices_config(chosen), fast_math=bool(fast_math), record_every=record_every, X=X.tolist(), y=y.tolist(),
        lr=_per_network_value(rates), lr_desc=_describe(rates),
        **_recipe_config(recipe, coef),
    )
    if interrupted:
        cfg.update(interrupted=True, epochs_requested=epochs)
    return _package(state, out, data, recipe, cfg)


def _expand(value, n):
    """A per-network coefficient from ``check_recipe`` as an (n,) array (None stays None)."""
    if value is None or np.ndim(value):
        return value
    return np.full(n, float(value))


def _coefficients(coef, n, dt):
    """``State.fresh``'s momentum, weight decay (float64) and output-layer
    rate (in the training dtype) from ``check_recipe``'s coefficients."""
    lr_out = coef["lr_output"]
    return (_expand(coef["momentum"], n), _expand(coef["weight_decay"], n),
            None if lr_out is None else np.asarray(_expand(lr_out, n), dtype=np.float64).astype(dt))


def _recipe_config(recipe, coef):
    """The recipe as ``config`` entries (what ``resume`` rebuilds it from)."""
    zero = np.zeros(1)
    mom, wd, lr_out = coef["momentum"], coef["weight_decay"], coef["lr_output"]
    return dict(
        optimizer=recipe.optimizer, loss=recipe.loss, activation=recipe.activation, output=recipe.output,
        momentum=_per_network_value(np.atleast_1d(zero if mom is None else mom)),
        dampening=recipe.dampening, nesterov=recipe.nesterov,
        weight_decay=_per_network_value(np.atleast_1d(zero if wd is None else wd)),
        lr_output=None if lr_out is None else _per_network_value(np.atleast_1d(lr_out)),
        betas=list(recipe.betas), eps=recipe.eps, target_loss=recipe.target_loss,
    )


def _backend_for(backend, n, recipe, devices=None):
    """``backends.choose``, or the cupy backend on the GPUs ``devices``
    (``cupy_devices``); the GPU's fast-math sigmoid exists for float32 only."""
    if devices is None:
        chosen = backends.choose(backend, n)
    else:
        if backend not in ("auto", "cupy"):
            raise ValueError(f"devices= chooses GPUs: it needs backend='cupy' (or 'auto'), not {backend!r}")
        backends.choose("cupy")  # ImportError, in words, where the GPU backend cannot run
        from .backends.cupy_devices import Devices, device_ids

        chosen = Devices(device_ids(devices))
    if recipe.fast_math and np.dtype(recipe.dtype) != np.float32:
        raise ValueError("fast_math=True is a float32 option (the GPU's tanh.approx sigmoid)")
    return chosen


def _devices_config(chosen):
    """The GPU ids a run used when it was given some (``config["devices"]``), else None."""
    ids = getattr(chosen, "ids", None)
    return None if ids is None else list(ids)


def _check_inputs(params, X, name):
    """The parameters' D (W1's last axis) must be the data's (X's columns)."""
    if params.inputs != X.shape[1]:
        raise ValueError(f"{name} has networks of D={params.inputs} inputs (W1 of shape {params.W1.shape}), but "
                         f"the data has {X.shape[1]} (X of shape {X.shape})")


def _training_data(function, X, y):
    """(X, y, function name or truth table or None) from train's arguments."""
    if function is not None:
        if X is not None or y is not None:
            raise ValueError("give either function or X and y, not both")
        from .data import boolean_function

        X, y = boolean_function(function)
        return X, y, function
    X, y = check_data(X, y)
    return X, y, function_of(X, y)


def resume(result, epochs, *, backend="auto", progress=None, interruptible=False, devices=None):
    """Continue a run by ``epochs`` more: identical to one longer run.

    ``result``: a TrainResult (or a path saved by ``TrainResult.save``). The
    learning rates, data, dtype and record_every are the original run's;
    solved/diverged epochs and the loss history continue where they stopped.
    ``backend``, ``devices``, ``progress`` and ``interruptible``: as
    ``train``'s, for this part of the run (the results do not depend on them).
    A result kept on the GPU (``device_arrays``) continues there, its state
    never copied to the host, when the backend is cupy on the current GPU;
    elsewhere it is copied back once.
    """
    if isinstance(result, (str, os.PathLike)):
        result = TrainResult.load(result)
    if not isinstance(result, TrainResult):
        raise TypeError(f"result must be a TrainResult or a results-file path, got {type(result).__name__}")
    c = result.config
    done = check_int("result.config['epochs']", c["epochs"], 0, config.EPOCHS_MAX)
    more = check_int("epochs", epochs, 0, config.EPOCHS_MAX - done)  # the kernels count epochs in 32 bits
    n = result.n_networks
    k = c.get("record_every", 0)
    rates = check_per_network("lr", c["lr"], n, low=0.0, low_open=True)
    X, y = check_data(np.array(c["X"]), np.array(c["y"]))
    on_gpu = array_module(result.params.W1) is not np
    p = result.params if on_gpu else result.params.validated(check_dtype(c["dtype"]), "result.params")
    _check_inputs(p, X, "result.params")
    recipe = {k: c.get(k, D[k]) for k in RECIPE}  # a file from before an option existed: its default
    options, coef = check_recipe(n, p.dtype, **dict(recipe, betas=tuple(recipe["betas"])))
    check_targets(y, options["loss"])
    recipe = Recipe(p.hidden, p.dtype, bool(c.get("fast_math", False)), X.shape[1], len(y), **options)
    chosen = _backend_for(backend, n, recipe, devices)
    recipe = dataclasses.replace(recipe, fast_math=recipe.fast_math and chosen.NAME == "cupy")
    rows = history_rows(done + more, k) if k else None
    stays = on_gpu and chosen.NAME == "cupy" and devices is None  # the state stays on the GPU
    if stays:
        chosen.check_device_memory(n, recipe, rows or 0)
    else:
        check_memory(chosen, n, recipe, done + more, k)
        if on_gpu:
            p = p.validated(p.dtype, "result.params")  # copied to the host
    xp = array_module(p.W1)
    state = State.fresh(p.to_flat(), check_in_dtype("lr", rates, p.dtype, nonzero=True), None, recipe,
                        *_coefficients(coef, n, p.dtype))
    state.epoch = done
    events = [("solved_epoch", result.solved_epoch), ("diverged_epoch", result.diverged_epoch)]
    if recipe.target_loss is not None:
        events.append(("target_epoch", result.target_epoch))
    if recipe.n_buffers:
        saved = result.optimizer_state
        if saved is None or np.shape(saved) != state.buffers.shape:
            raise ValueError(f"result has no optimizer state of shape {state.buffers.shape} for its "
                             f"{recipe.optimizer} recipe: it cannot be resumed exactly")
        events.append(("buffers", saved))
    for name, saved in events:  # C-order copies: the kernels update them in place, the result stays as it was
        setattr(state, name, xp.array(saved if stays else to_host(saved), dtype=getattr(state, name).dtype,
                                      order="C"))
    if stays and recipe.target_loss is None:
        state.target_epoch = xp.asarray(state.target_epoch)
    out = KernelOutput.empty(n, recipe, rows, xp=xp)
    if k:
        old = result.loss_history
        out.history[:, :old.shape[1]] = old if stays else to_host(old)
    data = Data(X, y, target_sides(y))
    progress = resolve_progress(progress, n, done)
    ran, interrupted = _run(chosen, state, data, more, k, recipe, out, progress, interruptible)
    cfg = dict(c, epochs=done + ran, backend=chosen.NAME, devices=_devices_config(chosen))
    cfg.pop("interrupted", None)
    cfg.pop("epochs_requested", None)
    if interrupted:
        cfg.update(interrupted=True, epochs_requested=done + more)
    return _package(state, out, data, recipe, cfg)
