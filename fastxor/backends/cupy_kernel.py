"""Backend ``cupy``: ``kernels/train_xor.cu`` through ``cupy.RawModule``.

Why this shape: one thread per network keeps every parameter in registers, and
generating the initial parameters inside the kernel (Philox, as
``init_params``) means a run needs no input arrays — N is limited only by the
outputs, which are processed in chunks of networks when they would not fit.
Nothing here imports CuPy at ``import fastxor`` time; ``problem()`` says in
words why the backend cannot run (no CuPy, no driver, no device).
"""
import functools
from importlib import resources
from pathlib import Path

import numpy as np

from .. import config
from ..state import history_rows, n_params

SOURCE = "train_xor.cu"
BLOCK = 128
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
#: Widths whose kernel keeps everything in registers (checked by nvcc -Xptxas -v in
#: the tests); wider networks still run correctly, spilling to local memory.
REGISTER_RESIDENT = {"f32": 24, "f64": 8}
INSTALL = "pip install 'fastxor[gpu]' (cupy-cuda12x; or cupy-cuda13x for CUDA 13 drivers)"


def kernel_path(name=SOURCE):
    """The CUDA source: ``kernels/`` at the top of a source checkout, or the
    installed ``fastxor/kernels``."""
    package = Path(__file__).resolve().parent.parent
    for here in (package.parent / "kernels" / name, package / "kernels" / name):
        if here.exists():
            return here
    return Path(str(resources.files("fastxor.kernels") / name))


def _suffix(dtype, fast):
    return SUFFIX[np.dtype(dtype)] + ("fast" if fast else "")


def entry_name(hidden, dtype, fast=False):
    return f"fastxor_train_h{hidden}_{_suffix(dtype, fast)}"


def module_source(hidden, dtype, fast=False):
    """The kernel file behind a ``#line`` directive (compiler errors name the real
    file and line), plus the one entry point for (hidden, dtype, fast)."""
    path = kernel_path()
    t = "float" if np.dtype(dtype) == np.float32 else "double"
    return (
        f'#line 1 "{path.as_posix()}"\n{path.read_text()}\n'
        f"FASTXOR_ENTRY({hidden}, {t}, {_suffix(dtype, fast)}, {'true' if fast else 'false'})\n"
    )


NAME = "cupy"
#: ``auto`` picks the GPU only from this many networks: one GPU thread is
#: about 10x slower than the CPU kernel, so small runs stay on the CPU (and
#: their results do not depend on the machine). Not yet measured on a GPU:
#: conservative.
MIN_NETWORKS = config.GPU_MIN_NETWORKS


@functools.lru_cache(maxsize=None)
def problem():
    """None when the CuPy backend can run here, else why not (in words)."""
    try:
        import cupy
    except ImportError:
        return f"CuPy is not installed: {INSTALL}"
    except Exception as exc:  # noqa: BLE001 - a broken CuPy install
        return f"CuPy failed to import ({exc}); reinstall it: {INSTALL}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - no driver / CUDA runtime error
        return f"CuPy is installed but no CUDA driver is usable ({exc})"
    if count < 1:
        return "CuPy is installed but there is no NVIDIA GPU"
    return None


def device_description():
    """'NVIDIA H100 80GB HBM3 (sm_90, driver 12.8)' or None."""
    if problem() is not None:
        return None
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    drv = cupy.cuda.runtime.driverGetVersion()
    return f"{name} (sm_{props['major']}{props['minor']}, driver CUDA {drv // 1000}.{drv % 1000 // 10})"


@functools.lru_cache(maxsize=None)
def get_kernel(hidden, dtype, fast=False):
    """The compiled entry point; CuPy caches the binary on disk by source hash."""
    import cupy

    module = cupy.RawModule(code=module_source(hidden, dtype, fast), options=("-std=c++17",))
    return module.get_function(entry_name(hidden, dtype, fast))


def _free_bytes():
    import cupy

    free, _ = cupy.cuda.runtime.memGetInfo()
    return free + cupy.get_default_memory_pool().free_bytes()


def bytes_per_network(hidden, dtype, rows, given_init):
    """GPU bytes one network's chunk buffers take (inputs, outputs, history)."""
    item = np.dtype(dtype).itemsize
    p = n_params(hidden)
    return (p * (1 + given_init) + 1 + 4 + rows + 1) * item + 2 * 8 + 8


def memory_bytes(n, recipe, rows):
    """Host memory: ``run_bytes`` plus one chunk's host copies at most (GPU
    memory is handled by chunking)."""
    from ..state import run_bytes

    return 2 * run_bytes(n, recipe, rows)


def run(state, data, epochs, record_every, recipe, out, final=True):
    """The backend contract (see ``fastxor.backends``): ``state`` trained in place.

    A fresh Philox state (``state.init``) is made inside the kernel,
    bit-identical to ``init_params``. The kernel always computes the final
    outputs (``final`` is free on a GPU). It records the loss at its
    local epochs 0, k, 2k, ...: a segment that starts between multiples of k
    first steps to the next multiple without recording.
    """
    lead = (-state.epoch) % record_every if record_every else 0
    if lead:
        _launch(state, data, min(lead, epochs), 0, recipe, out)
        epochs -= min(lead, epochs)
    if epochs or not lead:
        _launch(state, data, epochs, record_every, recipe, out)
    return out


def _launch(state, data, epochs, record_every, recipe, out):
    """One kernel run of ``epochs`` epochs over every network, in chunks that fit the GPU."""
    import cupy

    from ..arrays import array_module

    dt = np.dtype(recipe.dtype)
    n, h, P = state.n_networks, recipe.hidden, recipe.n_params
    xp = array_module(out.loss)  # numpy, or cupy for device_arrays
    spec, given = state.init, state.params is not None
    if not given:
        state.params = xp.empty((P, n), dtype=dt)
        state.init = None
    elif array_module(state.params) is not xp:  # given parameters, results kept on the GPU
        state.params = xp.asarray(state.params)
    rows = history_rows(epochs, record_every)
    col0 = state.epoch // record_every if record_every else 0
    per_net = bytes_per_network(h, dt, rows, given)
    chunk = min(n, int(config.MEMORY_FRACTION * _free_bytes() // per_net))
    if chunk < 1:
        raise MemoryError(f"one network needs {per_net} bytes of GPU memory; reduce record_every")
    kernel = get_kernel(h, dt, recipe.fast_math)
    d = cupy.asarray(np.concatenate([np.ravel(data.X), np.ravel(data.y), np.ravel(data.sides)]).astype(dt))
    to_out = (lambda a: a) if xp is cupy else cupy.asnumpy
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        sl = slice(lo, lo + m)
        params = cupy.empty((P, m), dtype=dt)
        loss, pred = cupy.empty(m, dtype=dt), cupy.empty((4, m), dtype=dt)
        solved, diverged = cupy.empty(m, dtype=np.int64), cupy.empty(m, dtype=np.int64)
        history = cupy.empty((max(rows, 1), m), dtype=dt)
        init = cupy.ascontiguousarray(cupy.asarray(state.params[:, sl])) if given else np.uint64(0)
        scale = cupy.asarray(np.zeros(1) if given else spec.scales[sl])
        seed, start = (0, 0) if given else (spec.seed, spec.start + lo)
        kernel(
            (-(-m // BLOCK),), (BLOCK,),
            (init, np.uint64(seed), np.uint64(start), scale, np.int32(0 if given else 1),
             cupy.asarray(np.ascontiguousarray(state.lr[sl], dtype=dt)), np.int32(1), d, np.int32(epochs),
             np.int32(record_every), np.int64(m), params, loss, pred, solved, diverged, history),
        )
        state.params[:, sl] = to_out(params)
        out.loss[sl] = to_out(loss)
        out.predictions[sl] = to_out(pred.T)
        for events, local in ((state.solved_epoch, solved), (state.diverged_epoch, diverged)):
            local = to_out(local)
            events[sl] = xp.where((events[sl] < 0) & (local >= 0), local + state.epoch, events[sl])
        if rows:
            out.history[sl, col0:col0 + rows] = to_out(history[:rows].T)
        del params, loss, pred, solved, diverged, history, init  # back to the pool before the next chunk
    state.epoch += epochs
