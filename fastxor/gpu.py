"""The CuPy backend: ``kernels/train_xor.cu`` through ``cupy.RawModule``.

Why this shape: one thread per network keeps every parameter in registers, and
generating the initial parameters inside the kernel (Philox, as
``init_params``) means a run needs no input arrays — N is limited only by the
outputs, which are processed in chunks of networks when they would not fit.
Nothing here imports CuPy at ``import fastxor`` time; ``gpu_problem()`` says in
words why the backend cannot run (no CuPy, no driver, no device).
"""
import functools
from importlib import resources
from pathlib import Path

import numpy as np

from .params import Params, n_params

SOURCE = "train_xor.cu"
BLOCK = 128
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
#: Widths whose kernel keeps everything in registers (checked by nvcc -Xptxas -v in
#: the tests); wider networks still run correctly, spilling to local memory.
REGISTER_RESIDENT = {"f32": 24, "f64": 8}
INSTALL = "pip install 'fastxor[gpu]' (cupy-cuda12x; or cupy-cuda13x for CUDA 13 drivers)"


def kernel_path(name=SOURCE):
    """The installed kernel source (``kernels/`` in the repository)."""
    here = Path(__file__).resolve().parent.parent / "kernels" / name
    if here.exists():  # a source checkout / editable install
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


@functools.lru_cache(maxsize=None)
def gpu_problem():
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
    if gpu_problem() is not None:
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
    item = np.dtype(dtype).itemsize
    p = n_params(hidden)
    return (p * (1 + given_init) + 1 + 4 + rows + 1) * item + 2 * 8 + 8


def train(p, X, y, sides, epochs, lr, record_every=0, fast=False, device_arrays=False):
    """Run the CUDA kernel; same inputs and outputs as ``reference.train``.

    ``p``: Params, or an ``InitSpec`` (the initial parameters are then made
    inside the kernel, bit-identical to ``init_params``). Networks are
    processed in chunks that fit in free GPU memory. ``device_arrays``: leave
    the outputs on the GPU as CuPy arrays.
    """
    import cupy

    from .params import InitSpec

    dt = np.dtype(p.dtype)
    n, h = p.n_networks, p.hidden
    rows = -(-epochs // record_every) if record_every else 0
    given = not isinstance(p, InitSpec)
    flat = p.to_flat() if given else None
    per_net = bytes_per_network(h, dt, rows, given)
    chunk = min(n, int(0.8 * _free_bytes() // per_net))
    if chunk < 1:
        raise MemoryError(f"one network needs {per_net} bytes of GPU memory; reduce record_every")
    kernel = get_kernel(h, dt, fast)
    data = cupy.asarray(np.concatenate([np.ravel(X), np.ravel(y), np.ravel(sides)]).astype(dt))
    lr_all = np.ascontiguousarray(lr, dtype=dt)
    P = n_params(h)
    outs = []
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        params = cupy.empty((P, m), dtype=dt)
        loss, pred = cupy.empty(m, dtype=dt), cupy.empty((4, m), dtype=dt)
        solved, diverged = cupy.empty(m, dtype=np.int64), cupy.empty(m, dtype=np.int64)
        history = cupy.empty((max(rows, 1), m), dtype=dt)
        init = cupy.asarray(np.ascontiguousarray(flat[:, lo:lo + m])) if given else np.uint64(0)
        scale = cupy.asarray(np.zeros(1) if given else p.scales[lo:lo + m])
        seed, start = (0, 0) if given else (p.seed, p.start + lo)
        kernel(
            (-(-m // BLOCK),), (BLOCK,),
            (init, np.uint64(seed), np.uint64(start), scale, np.int32(0 if given else 1),
             cupy.asarray(lr_all[lo:lo + m]), np.int32(1), data, np.int32(epochs),
             np.int32(record_every), np.int64(m), params, loss, pred, solved, diverged, history),
        )
        outs.append((params, loss, pred, solved, diverged, history[:rows]))
    xp = cupy if device_arrays else np
    get = (lambda a: a) if device_arrays else cupy.asnumpy
    cat = lambda k, axis: xp.concatenate([get(o[k]) for o in outs], axis=axis)  # noqa: E731
    params = cat(0, 1)
    return dict(
        params=Params.from_flat(params, h),
        loss=cat(1, 0),
        predictions=xp.ascontiguousarray(cat(2, 1).T),
        solved_epoch=cat(3, 0),
        diverged_epoch=cat(4, 0),
        loss_history=xp.ascontiguousarray(cat(5, 1).T) if record_every else None,
    )
