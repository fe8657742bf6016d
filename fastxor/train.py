"""``fastxor.train``: validate, choose a backend, run it, package the result."""
import os

import numpy as np

from . import config
from .data import check_data, target_sides
from .params import Params, init_params, n_params
from .result import TrainResult
from .validate import check_dtype, check_int, check_per_network, check_real


def available_backends():
    """Backends usable here, fastest first."""
    out = []
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
        raise NotImplementedError(
            "backend='cupy' (NVIDIA GPU) is not available in this version of fastxor; "
            "use backend='numba' or 'auto'"
        )
    return backend


def _available_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


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
    avail = _available_memory()
    if avail is not None and need > config.MEMORY_FRACTION * avail:
        raise MemoryError(
            f"this run needs about {need / 2**30:.1f} GiB for n_networks={n}"
            + (f" with record_every={record_every} ({-(-epochs // record_every)} loss values per network)"
               if record_every else "")
            + f", more than {config.MEMORY_FRACTION:.0%} of the {avail / 2**30:.1f} GiB available; "
            "use fewer networks, a larger record_every, or train in batches (start=...)"
        )


def train(
    n_networks=None, *, epochs=100_000, lr=0.1, hidden=2, seed=0, init=None, X=None, y=None,
    dtype="float32", backend="auto", record_every=0, init_scale=1.0, start=0,
):
    """Train many 2-H-1 sigmoid networks with the seed's full-batch SGD.

    Parameters
    ----------
    n_networks : int >= 1, optional if ``init`` is given.
    epochs : int >= 0, SGD steps.
    lr : float > 0, or (N,) array: a learning rate per network.
    hidden : int in [1, 32], hidden width H (ignored when ``init`` is given).
    seed, start, init_scale : the deterministic init, see ``init_params``.
    init : Params, optional: start from these parameters instead.
    X, y : (4, 2) inputs and (4,) targets; XOR by default.
    dtype : "float32" (the seed's) or "float64".
    backend : "auto" (fastest here), "numba" or "numpy" (the reference).
    record_every : int >= 0; k > 0 records the loss at epochs 0, k, 2k, ...

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
    _check_memory(n, hidden, epochs, record_every, dt, name)
    if p is None:
        p = init_params(n, hidden, seed, start, init_scale, dt)
    if name == "numba":
        from . import cpu_kernel

        out = cpu_kernel.train(p, X, y, target_sides(y), epochs, rates, record_every)
    else:
        from . import reference

        out = reference.train(p, X, y, epochs, rates, record_every)
    cfg = dict(
        n_networks=n, epochs=epochs, hidden=hidden, seed=None if init is not None else seed,
        start=None if init is not None else start, init_scale=None if init is not None else init_scale,
        init="given" if init is not None else "philox", dtype=np.dtype(dt).name, backend=name,
        record_every=record_every, X=X.tolist(), y=y.tolist(),
        lr=float(rates[0]) if np.all(rates == rates[0]) else rates,
        lr_desc=f"{rates[0]:g}" if np.all(rates == rates[0]) else f"{rates.min():g}..{rates.max():g}",
    )
    return TrainResult(
        params=out["params"],
        loss=out["loss"],
        predictions=out["predictions"],
        solved=out["solved_epoch"] >= 0,
        solved_epoch=out["solved_epoch"],
        diverged=out["diverged_epoch"] >= 0,
        diverged_epoch=out["diverged_epoch"],
        loss_history=out["loss_history"],
        config=cfg,
    )
