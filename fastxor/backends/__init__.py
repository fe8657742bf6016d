"""The backends: one module per backend string, one contract, one registry.

Module names are ``<backend>_<what>.py`` — ``numpy_reference``,
``numba_kernel``, ``cupy_kernel`` — never the bare backend string, so no
module shadows the real ``numpy``/``numba``/``cupy`` packages.

Every backend module exposes the same four names:

``NAME``
    the backend string users pass (``backend="numba"``).
``problem() -> str | None``
    None when it can run here, else why not, in words (with the fix).
``memory_bytes(n, recipe, rows) -> int``
    the peak host memory of a run of ``n`` networks with ``rows`` loss-history
    columns: ``state.run_bytes`` plus the backend's own temporaries. The
    memory guard refuses a run above it before anything is allocated.
``run(state, data, epochs, record_every, recipe, out, final=True, work=None) -> KernelOutput``
    train every network of ``state`` (a ``state.State``, updated in place)
    for ``epochs`` epochs from the global epoch ``state.epoch``: solved and
    diverged epochs and history columns are global, so consecutive calls
    equal one long call. ``out`` holds the output buffers (``KernelOutput``),
    allocated once per run; the same object is returned. ``final``: also
    the loss and predictions of the parameters reached (and the solved test
    on them); an intermediate segment skips that forward pass, which the
    next segment's first epoch repeats anyway. ``work``: the network-epochs
    the whole run still has to do, this call's included (None: only this
    call's), a hint for choosing what to compile, never changing a result.

``auto`` picks the first usable entry of ``ORDER`` (see ``choose``).
"""
import importlib

from .. import config

#: Backend string -> module, in the order ``auto`` tries them.
MODULES = {"cupy": "cupy_kernel", "numba": "numba_kernel", "numpy": "numpy_reference"}
ORDER = ("cupy", "numba", "numpy")


def get(name):
    """The backend module called ``name`` (imported on first use)."""
    if name not in MODULES:
        raise ValueError(f"backend must be one of {list(config.BACKENDS)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{MODULES[name]}")


def problem(name):
    """Why backend ``name`` cannot run here (None when it can)."""
    try:
        return get(name).problem()
    except ImportError as exc:  # the backend module's own imports failed
        return f"it failed to import ({exc})"


def available():
    """Backends usable here, in ``auto``'s order of preference."""
    return [name for name in ORDER if problem(name) is None]


def choose(name, n_networks=None):
    """The backend module for ``name``; ``"auto"``: the first usable one of
    ``ORDER`` whose ``min_networks`` (if any) ``n_networks`` reaches."""
    if not isinstance(name, str) or name not in config.BACKENDS:
        raise ValueError(f"backend must be one of {list(config.BACKENDS)}, got {name!r}")
    if name != "auto":
        why = problem(name)
        if why is not None:
            raise ImportError(f"backend={name!r} cannot run here: {why}")
        return get(name)
    for candidate in available():
        module = get(candidate)
        if n_networks is None or n_networks >= getattr(module, "MIN_NETWORKS", 1):
            return module
    return get("numpy")
