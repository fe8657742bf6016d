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
#: CuPy compiles kernels at run time with NVRTC, which a driver alone lacks.
TOOLKIT = ("CuPy compiles kernels with NVRTC and the CUDA headers: install a CUDA toolkit matching the "
           "driver (CuPy finds it through CUDA_PATH), or with CuPy >= 14 pip install 'cupy-cuda12x[ctk]'")
PROBE = 'extern "C" __global__ void fastxor_probe(int* out) { out[0] = 42; }'


def ftz_init_scale_bound(hidden):
    """The smallest ``init_scale`` whose float32 in-kernel init is bit-identical
    to ``init_params``: CuPy compiles with -ftz=true, so a float32 value below
    2^-126 becomes 0 on the GPU. Initial values are k 2^-23 s / sqrt(fan_in)
    with 1 <= |k| <= 2^23 (or 0), fan_in 2 or H: none is subnormal iff
    s >= 2^-103 sqrt(max(2, H)) (1.4e-31 for H = 2)."""
    return 2.0**-103 * np.sqrt(max(2, hidden))


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
    try:  # "imports and sees a device" is not "can compile": prove it once, on a tiny kernel
        out = cupy.zeros(1, dtype=np.int32)
        cupy.RawModule(code=PROBE).get_function("fastxor_probe")((1,), (1,), (out,))
        wrote = int(out.get()[0])
    except Exception as exc:  # noqa: BLE001 - NVRTC missing, no headers, driver too old, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"CuPy sees a GPU but cannot compile and run a kernel ({type(exc).__name__}: {first}). {TOOLKIT}"
    if wrote != 42:
        return f"a test kernel ran but wrote {wrote} instead of 42: the GPU or driver is not usable"
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


def _device_budget():
    """Bytes this process may still allocate on the GPU: the device's free
    memory plus the pool's free blocks (CuPy's ``memGetInfo`` does not count
    them), within the pool's limit when one is set (``set_limit``)."""
    import cupy

    pool = cupy.get_default_memory_pool()
    free, _ = cupy.cuda.runtime.memGetInfo()
    budget = free + pool.free_bytes()
    if pool.get_limit():
        budget = min(budget, pool.get_limit() - pool.used_bytes())
    return max(0, budget)


def bytes_per_network(hidden, dtype, rows, given_init):
    """GPU bytes one network takes in a chunk's buffers (inputs, outputs, history)."""
    item = np.dtype(dtype).itemsize
    p = n_params(hidden)
    return (p * (1 + given_init) + 1 + 4 + rows + 1) * item + 2 * 8 + 8


def device_result_bytes(n, recipe, rows):
    """GPU bytes of a ``device_arrays=True`` result: parameters, loss,
    predictions, history and events, plus the temporaries of packaging it
    (the solved test on the predictions, the parameters' reshaped views)."""
    item = recipe.dtype.itemsize
    p = recipe.n_params
    return n * ((2 * p + 1 + 2 * 4 + rows) * item + 2 * 8 + 4 + 2)


def check_device_memory(n, recipe, rows):
    """``device_arrays=True`` keeps every result on the GPU, where chunking
    cannot help: refuse up front, with the numbers, a run that would not fit
    (results plus the chunk buffers of at least min(n, 4096) networks)."""
    need = device_result_bytes(n, recipe, rows) + min(n, 4096) * bytes_per_network(
        recipe.hidden, recipe.dtype, rows, True)
    budget = int(config.MEMORY_FRACTION * _device_budget())
    if need > budget:
        raise MemoryError(
            f"device_arrays=True keeps every result on the GPU: n_networks={n} needs {need / 2**30:.2f} GiB "
            f"of GPU memory, {budget / 2**30:.2f} GiB is usable ({config.MEMORY_FRACTION:.0%} of what is free); "
            "use device_arrays=False (results are copied to the host chunk by chunk) or fewer networks")


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


class _ChunkBuffers:
    """A chunk's device buffers, allocated once per launch and reused by every
    chunk: nothing is allocated between chunks, so the pool cannot run out
    half-way (a chunk of m networks uses the first m columns' worth of each)."""

    def __init__(self, cupy, chunk, P, rows, dt, given):
        self.cupy, self.dims = cupy, dict(params=P, loss=1, pred=4, history=rows, init=P if given else 0, lr=1)
        self.flat = {name: cupy.empty(k * chunk, dtype=dt) for name, k in self.dims.items() if k}
        self.flat["scale"] = cupy.empty(0 if given else chunk, dtype=np.float64)
        for name in ("solved", "diverged"):
            self.flat[name] = cupy.empty(chunk, dtype=np.int64)

    def view(self, name, m):
        """The contiguous (rows, m) or (m,) view a chunk of ``m`` networks uses."""
        k = self.dims.get(name, 1)
        v = self.flat[name][: k * m]
        return v if name in ("loss", "lr", "scale", "solved", "diverged") else v.reshape(k, m)


def _to_device(dst, src):
    """Copy ``src`` (host or device) into the contiguous device array ``dst``."""
    from ..arrays import array_module

    if array_module(src) is np:
        dst.set(np.ascontiguousarray(src, dtype=dst.dtype))
    else:
        dst[...] = src


def _launch(state, data, epochs, record_every, recipe, out):
    """One kernel run of ``epochs`` epochs over every network, in chunks that
    fit the GPU; the chunk buffers are allocated once and reused."""
    import cupy

    from ..arrays import array_module

    dt = np.dtype(recipe.dtype)
    n, h, P = state.n_networks, recipe.hidden, recipe.n_params
    xp = array_module(out.loss)  # numpy, or cupy for device_arrays
    on_device = xp is not np
    spec, given = state.init, state.params is not None
    if not given:
        state.params = xp.empty((P, n), dtype=dt)
        state.init = None
    elif on_device and array_module(state.params) is np:
        state.params = cupy.asarray(state.params)
    rows = history_rows(epochs, record_every)
    col0 = state.epoch // record_every if record_every else 0
    per_net = bytes_per_network(h, dt, rows, given)
    budget = _device_budget()
    chunk = min(n, int(config.MEMORY_FRACTION * budget) // per_net)
    if chunk < 1:
        raise MemoryError(f"one network needs {per_net} bytes of GPU memory and {budget} are free; "
                          "reduce record_every or free GPU memory")
    kernel = get_kernel(h, dt, recipe.fast_math)
    d = cupy.asarray(np.concatenate([np.ravel(data.X), np.ravel(data.y), np.ravel(data.sides)]).astype(dt))
    buf = _ChunkBuffers(cupy, chunk, P, rows, dt, given)
    get = (lambda a: a) if on_device else (lambda a: a.get())
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        sl = slice(lo, lo + m)
        b = {name: buf.view(name, m) for name in buf.flat}
        _to_device(b["lr"], state.lr[sl])
        if given:
            _to_device(b["init"], state.params[:, sl])
        else:
            _to_device(b["scale"], spec.scales[sl])
        seed, start = (0, 0) if given else (spec.seed, spec.start + lo)
        kernel(
            (-(-m // BLOCK),), (BLOCK,),
            (b["init"] if given else np.uint64(0), np.uint64(seed), np.uint64(start),
             np.uint64(0) if given else b["scale"], np.int32(1), b["lr"], np.int32(1), d,
             np.int32(epochs), np.int32(record_every), np.int64(m), b["params"], b["loss"], b["pred"],
             b["solved"], b["diverged"], b["history"] if rows else np.uint64(0)),
        )
        state.params[:, sl] = get(b["params"])
        out.loss[sl] = get(b["loss"])
        out.predictions[sl] = get(b["pred"]).T
        for events, local in ((state.solved_epoch, b["solved"]), (state.diverged_epoch, b["diverged"])):
            local = get(local)
            events[sl] = xp.where((events[sl] < 0) & (local >= 0), local + state.epoch, events[sl])
        if rows:
            out.history[sl, col0:col0 + rows] = get(b["history"]).T
    state.epoch += epochs
