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
from ..data import X_BOOL, boolean_inputs
from ..machine import install_hint
from ..arrays import array_module
from ..state import history_rows

SOURCE = "train_xor.cu"
BLOCK = 128
#: CuPy's null pointer: for inputs and outputs a recipe or launch has none of.
NULL = np.uint64(0)
SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
#: The widest H whose kernel keeps everything in registers, per dtype and input
#: count D (boolean inputs, the seed's recipe; measured with nvcc 13 -Xptxas -v
#: for sm_90: one more unit spills, except where the table ends at a width not
#: tried beyond). It falls with D because the unrolled samples' activations
#: stay live for the backward pass (S x H values up to 16 samples). Wider
#: networks still run correctly, spilling to local memory (slower).
REGISTER_RESIDENT = {"f32": {2: 24, 3: 17, 4: 13, 5: 14, 6: 12, 7: 10, 8: 10},
                     "f64": {2: 8, 3: 9, 4: 8, 5: 7, 6: 6, 7: 5, 8: 4}}


def register_resident(recipe):
    """Whether ``recipe``'s kernel (boolean inputs, D <= 8) is measured to stay
    in registers: H within REGISTER_RESIDENT for its dtype and D."""
    widest = REGISTER_RESIDENT[SUFFIX[recipe.dtype]].get(recipe.inputs)
    return widest is not None and recipe.hidden <= widest


INSTALL = install_hint("gpu") + "; the extra gpu13 for CUDA 13 drivers"
#: CuPy compiles kernels at run time with NVRTC, which a driver alone lacks.
TOOLKIT = ("CuPy compiles kernels with NVRTC and the CUDA headers: install a CUDA toolkit matching the "
           "driver (CuPy finds it through CUDA_PATH), or with CuPy >= 14 pip install 'cupy-cuda12x[ctk]'")
PROBE = 'extern "C" __global__ void fastxor_probe(int* out) { out[0] = 42; }'


def ftz_init_scale_bound(hidden, inputs=X_BOOL.shape[1]):
    """The smallest ``init_scale`` whose float32 in-kernel init is bit-identical
    to ``init_params``: CuPy compiles with -ftz=true, so a float32 value below
    2^-126 becomes 0 on the GPU. Initial values are k 2^-23 s / sqrt(fan_in)
    with 1 <= |k| <= 2^23 (or 0), fan_in D or H: none is subnormal iff
    s >= 2^-103 sqrt(max(D, H)) (1.4e-31 for XOR's 2-2-1)."""
    return 2.0**-103 * np.sqrt(max(inputs, hidden))


def kernel_path(name=SOURCE):
    """The CUDA source: ``kernels/`` at the top of a source checkout, or the
    installed ``fastxor/kernels``."""
    package = Path(__file__).resolve().parent.parent
    for here in (package.parent / "kernels" / name, package / "kernels" / name):
        if here.exists():
            return here
    return Path(str(resources.files("fastxor.kernels") / name))


def _template_arguments(recipe):
    """(OPT, LOSS, ACT, FLAGS) of the kernel's template for ``recipe`` (see
    the enums at the top of the kernel's recipe section)."""
    from ..state import ACTIVATIONS, LOSSES, OPTIMIZERS

    flags = (1 * recipe.momentum + 2 * recipe.nesterov + 4 * bool(recipe.momentum and recipe.dampening)
             + 8 * recipe.weight_decay + 16 * (recipe.target_loss is not None) + 32 * recipe.lr_output
             + 64 * (recipe.output == "linear"))
    return (OPTIMIZERS.index(recipe.optimizer), LOSSES.index(recipe.loss),
            ACTIVATIONS.index(recipe.activation), flags)


def entry_name(recipe, boolean=True, targets=-1, history=True):
    """``fastxor_train_h2_f32`` for the seed's recipe on XOR's shape (2 inputs,
    4 samples, boolean X); other shapes add ``_d3s8``, real-valued X
    ``_realx``, other recipes their template arguments (``..._f32_1_0_1_16``:
    Adam, MSE, tanh, target); compile-time targets (``target_bits``) ``_y6``
    (XOR's), an entry without history ``_q``."""
    name = f"fastxor_train_h{recipe.hidden}_{SUFFIX[np.dtype(recipe.dtype)]}" + ("fast" if recipe.fast_math else "")
    if (recipe.inputs, recipe.samples) != X_BOOL.shape[::-1]:
        name += f"_d{recipe.inputs}s{recipe.samples}"
    if not boolean:
        name += "_realx"
    if not recipe.is_seed:
        name += "_" + "_".join(map(str, _template_arguments(recipe)))
    return name + (f"_y{targets}" if targets >= 0 else "") + ("" if history else "_q")


def boolean_data(X):
    """Whether X is the boolean inputs in binary counting order (the kernel's
    BX: inputs computed from the sample index, products with 0/1 folded)."""
    X = np.asarray(X)
    return bool(np.array_equal(X, boolean_inputs(X.shape[1])))


#: Samples the kernel holds in registers at most (its REGISTER_SAMPLES: a
#: static_assert there refuses compile-time targets beyond it).
REGISTER_SAMPLES = 16


def target_bits(y):
    """The targets as the kernel's compile-time bits (target s is bit s) when
    they are 0s and 1s (every boolean function's) of at most REGISTER_SAMPLES
    samples, else -1 (read at run time). The kernel then folds each sample's
    terms by hand, with results equal bit for bit."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) > REGISTER_SAMPLES or not np.isin(y, (0.0, 1.0)).all() or np.signbit(y).any():
        return -1
    return int(sum(1 << s for s, v in enumerate(y) if v == 1.0))


def module_source(*recipes, boolean=True, targets=-1, history=True):
    """The kernel file behind a ``#line`` directive (compiler errors name the real
    file and line), plus one entry point per ``recipe`` (a state.Recipe), for
    boolean X (``boolean_data``) or any X, targets read at run time (-1) or
    compile-time (``target_bits``), with or without the loss history."""
    path = kernel_path()
    lines = []
    for r in recipes:
        t = "float" if np.dtype(r.dtype) == np.float32 else "double"
        args = ", ".join(map(str, _template_arguments(r)))
        name = entry_name(r, boolean, targets, history)[len('fastxor_train_'):]
        lines.append(f"FASTXOR_ENTRY({name}, {r.inputs}, {r.hidden}, {r.samples}, {'true' if boolean else 'false'}, "
                     f"{t}, {'true' if r.fast_math else 'false'}, {args}, {targets}, "
                     f"{'true' if history else 'false'})\n")
    return f'#line 1 "{path.as_posix()}"\n{path.read_text()}\n' + "".join(lines)


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
def get_kernel(recipe, boolean=True, targets=-1, history=True):
    """The compiled entry point for ``recipe`` (``module_source``'s choices);
    CuPy caches the binary on disk by source hash."""
    import cupy

    module = cupy.RawModule(code=module_source(recipe, boolean=boolean, targets=targets, history=history),
                            options=("-std=c++17",))
    return module.get_function(entry_name(recipe, boolean, targets, history))


def launch_kernel(recipe, data, record_every):
    """The entry a run's launches use: inputs and targets folded in where
    they are boolean, and for a run that records no loss the entry without
    history, unless it uses local memory (spills; measured: Adam at H = 8),
    where the entry with history does not."""
    boolean, targets = boolean_data(data.X), target_bits(data.y)
    if record_every == 0:
        quiet = get_kernel(recipe, boolean, targets, history=False)
        if not quiet.local_size_bytes:
            return quiet
    return get_kernel(recipe, boolean, targets)


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


def chunk_layout(recipe, rows, given_init):
    """A chunk's device buffers, name -> (values per network, dtype): the
    parameters, loss, predictions, history rows, initial parameters (when
    given), coefficient rows, optimizer buffers, init scale (Philox init),
    and the event epochs (target only when tracked). Names with 0 values
    are not allocated: the kernel gets a null pointer for them."""
    dt, P = np.dtype(recipe.dtype), recipe.n_params
    return dict(
        params=(P, dt), loss=(1, dt), pred=(recipe.samples, dt), history=(rows, dt), init=(P * bool(given_init), dt),
        rates=(len(recipe.rate_names), dt), buffers=(recipe.n_buffers, dt),
        scale=(0 if given_init else 1, np.dtype(np.float64)), solved=(1, np.dtype(np.int64)),
        diverged=(1, np.dtype(np.int64)), target=(int(recipe.target_loss is not None), np.dtype(np.int64)))


def bytes_per_network(recipe, rows, given_init):
    """GPU bytes one network takes in a chunk's buffers (``chunk_layout``)."""
    return sum(k * dt.itemsize for k, dt in chunk_layout(recipe, rows, given_init).values())


def device_result_bytes(n, recipe, rows):
    """GPU bytes of a ``device_arrays=True`` result: parameters, loss,
    predictions, history and events, plus the temporaries of packaging it
    (the solved test on the predictions, the parameters' reshaped views)."""
    item = recipe.dtype.itemsize
    p = recipe.n_params
    return n * ((2 * p + 1 + 2 * recipe.samples + rows) * item + 2 * 8 + 4 + 2)


def _device_need(n, recipe, rows, chunk=4096):
    """(GPU bytes a ``device_arrays`` run needs: its results plus the chunk
    buffers of at least min(n, ``chunk``) networks, the bytes it may use)."""
    need = device_result_bytes(n, recipe, rows) + min(n, chunk) * bytes_per_network(recipe, rows, True)
    return need, int(config.MEMORY_FRACTION * _device_budget())


def device_result_fits(n, recipe, rows):
    """Whether ``device_arrays="auto"`` keeps a run of ``n`` networks on the
    GPU: its results fit with chunks of at least 2^20 networks (or all),
    enough to fill a GPU (smaller chunks would leave most of it idle)."""
    need, budget = _device_need(n, recipe, rows, chunk=1 << 20)
    return need <= budget


def check_device_memory(n, recipe, rows):
    """``device_arrays=True`` keeps every result on the GPU, where chunking
    cannot help: refuse up front, with the numbers, a run that would not fit
    (``_device_need``)."""
    need, budget = _device_need(n, recipe, rows)
    if need > budget:
        raise MemoryError(
            f"device_arrays=True keeps every result on the GPU: n_networks={n} needs {need / 2**30:.2f} GiB "
            f"of GPU memory, {budget / 2**30:.2f} GiB is usable ({config.MEMORY_FRACTION:.0%} of what is free); "
            "use device_arrays=False (results are copied to the host chunk by chunk) or fewer networks")


def memory_bytes(n, recipe, rows):
    """Host memory at the peak: ``run_bytes`` without its copy of the
    parameters (a result's Params are views of the state), plus the largest
    host copy one chunk's results pass through (``_from_device``: the
    parameters, optimizer buffers, predictions or history of a chunk), plus
    ``solved_by``'s block (twice when the run streams through in chunks: the
    packaging's temporaries and a chunk's host copies meet). Within 0.97-1.2x
    of the peak tracemalloc measures on the fake CuPy from 5e5 networks on
    (tests/test_gpu_backend.py; the slack of ``config.MEMORY_FRACTION`` covers
    the 3 %); it was 2x ``run_bytes``, 1.4-2x the peak, and 0.8x at 64
    samples. GPU memory is handled by chunking."""
    return host_bytes(n, recipe, rows, *transit(n, recipe, rows))


def transit(n, recipe, rows):
    """What the current GPU's share of ``n`` networks adds to ``memory_bytes``:
    (bytes of the largest host copy of one chunk, whether it streams through
    in chunks rather than staying on the GPU: see ``_Resident``)."""
    chunk = _chunk_networks(n, recipe, rows, given_init=False)  # the larger chunk of the two layouts
    largest = max(recipe.n_params, recipe.n_buffers, recipe.samples, rows)
    return chunk * largest * recipe.dtype.itemsize, not _fits_at_once(n, recipe, rows)


def host_bytes(n, recipe, rows, copies, streams):
    """``memory_bytes`` given the chunk copies in flight at once and whether any GPU streams."""
    from ..data import SOLVED_BLOCK
    from ..state import run_bytes

    item = recipe.dtype.itemsize
    return (run_bytes(n, recipe, rows) - n * recipe.n_params * item + copies
            + (1 + streams) * SOLVED_BLOCK * (item + 8))


def statistics_bytes(recipe):
    """GPU bytes per network that computing a chunk's statistics on the GPU
    takes at the peak (``_statistics``: masks, loss bins, the outputs' cells
    in float64 and int16, cell keys and indices, (cell, loss bin) pairs),
    left free when chunks are sized: 64 + 16 S (measured on the fake CuPy:
    78-158 B for 4-11 samples at 4e5 networks; smaller chunks than that
    pay fixed parts, which the MEMORY_FRACTION slack covers); 0 where the
    statistics are computed on the host."""
    from ..stats import cells_are_numbers

    return 64 + 16 * recipe.samples if cells_are_numbers(recipe.samples) else 0


def _chunk_networks(n, recipe, rows, given_init, sets=1):
    """Networks per chunk: as many as fit ``config.MEMORY_FRACTION`` of the
    GPU memory this process may use (at most n), with ``sets`` sets of chunk
    buffers and room for a chunk's statistics."""
    per_net = sets * bytes_per_network(recipe, rows, given_init) + statistics_bytes(recipe)  # as allocated
    budget = _device_budget()
    chunk = min(n, int(config.MEMORY_FRACTION * budget) // per_net)
    if chunk < 1:
        raise MemoryError(f"one network needs {per_net} bytes of GPU memory and {budget} are free; "
                          "reduce record_every or free GPU memory")
    return chunk


#: Epochs per launch at most: bounds the bias-correction table Adam's kernel
#: reads (two values per epoch) and the length of one kernel run; launches
#: continue each other exactly (the kernel takes its first global epoch).
LAUNCH_EPOCHS = 1 << 20


def run(state, data, epochs, record_every, recipe, out, final=True, work=None):
    """The backend contract (see ``fastxor.backends``): ``state`` trained in place.

    A fresh Philox state (``state.init``) is made inside the kernel,
    bit-identical to ``init_params``. The kernel takes the global epoch of
    its first step, so a segment is one launch per chunk of networks (per
    LAUNCH_EPOCHS epochs), and always computes the final outputs.

    A run whose networks fit the GPU at once stays there between segments
    (``_Resident``): an intermediate segment (``final=False``) copies back
    only the loss history it recorded; the final one brings back the state
    and outputs. Larger runs stream through in chunks every segment.
    """
    for lo in range(0, max(epochs, 1), LAUNCH_EPOCHS):
        last = lo + LAUNCH_EPOCHS >= epochs
        _launch(state, data, min(LAUNCH_EPOCHS, epochs - lo), record_every, recipe, out, final and last)
    return out


def _launch(state, data, epochs, record_every, recipe, out, final=True):
    """``epochs`` epochs of every network, in chunks of networks that fit the GPU.

    Several chunks alternate between two buffer sets, each with its CUDA
    stream: chunk i's kernel is queued before chunk i-1's results are copied
    back, so the copies (and the host's transposes) overlap the training.
    The host arrays are not pinned: a pageable copy is staged through the
    driver's pinned buffers, the same host copy a pinned staging area would
    need, and pinning a run's tens of GB would take seconds and may fail."""
    import cupy

    dt = np.dtype(recipe.dtype)
    n, P = state.n_networks, recipe.n_params
    xp = array_module(out.loss)  # numpy, or cupy for device_arrays
    on_device = xp is not np
    k, epoch0 = record_every, state.epoch
    rows = history_rows(epoch0 + epochs, k) - history_rows(epoch0, k)  # multiples of k in [epoch0, epoch0 + epochs)
    col0 = history_rows(epoch0, k)
    if not on_device and (state.device is not None or _fits_at_once(n, recipe, rows)):
        return _launch_resident(state, data, epochs, k, col0, rows, recipe, out, final)
    spec, given = state.init, state.init is None
    if state.params is None:
        state.params = xp.empty((P, n), dtype=dt)
    state.init = None
    if given and on_device and array_module(state.params) is np:
        state.params = cupy.asarray(state.params)
    chunk = _chunk_networks(n, recipe, rows, given)
    sets = 1 if chunk >= n else 2  # two buffer sets: a chunk trains while the last one's results come back
    chunk = _chunk_networks(n, recipe, rows, given, sets)
    kernel = launch_kernel(recipe, data, k)
    inputs = _launch_inputs(cupy, data, recipe, epoch0, epochs)
    rates = state.rate_rows(recipe)
    buffers = [_ChunkBuffers(cupy, chunk, chunk_layout(recipe, rows, given)) for _ in range(sets)]
    streams = [cupy.cuda.Stream() for _ in range(sets)]
    events = _events(state, recipe)

    def collect(b, sl, stream):
        """A chunk's results into the run's arrays (after its kernel, on its stream)."""
        with stream:
            if final and not on_device:
                parts.append(_statistics(cupy, b, recipe, data))
            _from_device(state.params[:, sl], b["params"])
            if recipe.n_buffers:
                _from_device(state.buffers[:, sl], b["buffers"])
            _from_device(out.loss[sl], b["loss"])
            _from_device(out.predictions[sl], b["pred"], transpose=True)
            for name, host in events.items():
                _from_device(host[sl], b[name])
            if rows:
                _from_device(out.history[sl, col0:col0 + rows], b["history"], transpose=True)

    last = None  # the chunk launched before: its results come back while the next one trains
    parts = []  # a final launch to host arrays: each chunk's statistics, computed on the GPU
    for i, lo in enumerate(range(0, n, chunk)):
        m = min(chunk, n - lo)
        sl = slice(lo, lo + m)
        b, stream = buffers[i % sets].views(m), streams[i % sets]
        with stream:  # this chunk's copies and launch, queued on its stream
            _to_device(b["rates"], rates[:, sl])
            for name, host in events.items():
                _to_device(b[name], host[sl])
            if recipe.n_buffers:
                _to_device(b["buffers"], state.buffers[:, sl])
            if given:
                _to_device(b["init"], state.params[:, sl])
            else:
                _to_device(b["scale"], spec.scales[sl])
            seed, start = (0, 0) if given else (spec.seed, spec.start + lo)
            _call(kernel, m, b, inputs, epoch0, epochs, k, b.get("init", NULL), seed, start, b.get("scale", NULL),
                  b.get("history", NULL))
        if last is not None:
            collect(*last)
        last = (b, sl, stream)
    collect(*last)
    for stream in streams:
        stream.synchronize()
    if parts:
        state.statistics = None if any(p is None for p in parts) else sum(parts)
    state.epoch += epochs


def _call(kernel, m, b, inputs, epoch0, epochs, k, init, seed, start, scale, history):
    """One launch of ``kernel`` over ``m`` networks: the kernel's arguments in
    its order, from the buffer views ``b`` (those a recipe lacks: null) and
    ``_launch_inputs``."""
    d, consts, bias = inputs
    kernel((-(-m // BLOCK),), (BLOCK,), (
        init, np.uint64(seed), np.uint64(start), scale, b["rates"], consts, bias, d, np.int64(epoch0),
        np.int32(epochs), np.int32(k), np.int64(m), b["params"], b.get("buffers", NULL), b["loss"], b["pred"],
        b["solved"], b["diverged"], b.get("target", NULL), history))


def _events(state, recipe):
    """The event epochs a launch carries in and out, name -> host array:
    solved and diverged, and the target's when one is tracked."""
    events = dict(solved=state.solved_epoch, diverged=state.diverged_epoch)
    if recipe.target_loss is not None:
        events["target"] = state.target_epoch
    return events


def _launch_inputs(cupy, data, recipe, epoch0, epochs):
    """A launch's read-only inputs on the device: the data (X, y, target
    sides), the recipe's constants, and Adam's bias-correction table (CuPy's
    null pointer for SGD)."""
    dt = np.dtype(recipe.dtype)
    d = cupy.asarray(np.concatenate([np.ravel(data.X), np.ravel(data.y), np.ravel(data.sides)]).astype(dt))
    bias = cupy.asarray(adam_bias_corrections(recipe, epoch0, epochs)) if recipe.optimizer != "sgd" else NULL
    return d, cupy.asarray(recipe.constants()), bias


def _fits_at_once(n, recipe, rows):
    """Whether all ``n`` networks of a run fit the GPU in one chunk, with the
    layout of given parameters (two parameter buffers: last segment's and
    this one's) and ``rows`` of loss history."""
    return _chunk_networks(n, recipe, rows, given_init=True) >= n


class _Resident:
    """A run's state on the GPU between segments: the parameters in two
    buffers (the kernel reads one, writes the other: its pointers are
    ``__restrict__``), optimizer buffers, coefficient rows, event epochs,
    loss and predictions; ``epoch``: the global epoch it holds."""

    def __init__(self, cupy, state, recipe):
        n = state.n_networks
        self.buf = _ChunkBuffers(cupy, n, chunk_layout(recipe, 0, given_init=True)).views(n)
        self.epoch = state.epoch
        self.fresh = True  # the parameters are still on the host (or still to be made by Philox)
        _to_device(self.buf["rates"], state.rate_rows(recipe))
        for name, host in _events(state, recipe).items():
            _to_device(self.buf[name], host)
        if recipe.n_buffers:
            _to_device(self.buf["buffers"], state.buffers)


def _launch_resident(state, data, epochs, k, col0, rows, recipe, out, final):
    """One launch of a run kept on the GPU (``_Resident``), made on its first
    segment: ``epochs`` epochs recording the loss every ``k``, ``rows``
    history columns from ``col0``. A final launch copies the state and
    outputs back and frees the device copy."""
    import cupy

    n, P, dt = state.n_networks, recipe.n_params, np.dtype(recipe.dtype)
    res = state.device
    if res is None or res.epoch != state.epoch:
        res = state.device = _Resident(cupy, state, recipe)
    b = res.buf
    epoch0 = state.epoch
    history = cupy.empty((rows, n), dtype=dt) if rows else None
    seed = start = 0
    scale = NULL
    if res.fresh:
        if state.init is not None:  # Philox, made in the kernel
            spec = state.init
            seed, start, scale = spec.seed, spec.start, cupy.asarray(spec.scales)
            init = NULL
        else:
            _to_device(b["init"], state.params)
            init = b["init"]
        res.fresh = False
    else:
        init = b["init"]  # the last launch's parameters (swapped in below)
    _call(launch_kernel(recipe, data, k), n, b, _launch_inputs(cupy, data, recipe, epoch0, epochs),
          epoch0, epochs, k, init, seed, start, scale, NULL if history is None else history)
    b["init"], b["params"] = b["params"], b["init"]  # this launch's output is the next one's input
    state.epoch += epochs
    res.epoch = state.epoch
    if rows:
        _from_device(out.history[:, col0:col0 + rows], history, transpose=True)
    if final:  # everything back, the device copy freed
        state.statistics = _statistics(cupy, b, recipe, data)
        if state.params is None:
            state.params = np.empty((P, n), dtype=dt)
        state.init = None
        _from_device(state.params, b["init"])
        if recipe.n_buffers:
            _from_device(state.buffers, b["buffers"])
        _from_device(out.loss, b["loss"])
        _from_device(out.predictions, b["pred"], transpose=True)
        for name, host in _events(state, recipe).items():
            _from_device(host, b[name])
        state.device = None


def _statistics(cupy, b, recipe, data):
    """The statistics of the final outputs in the buffer views ``b`` (a
    chunk, or a run kept on the GPU), computed on the GPU: only kilobytes
    come back, where the host would read every network's outputs again.
    None where the host then computes them from the arrays: more than 11
    samples (the stuck networks' cells would be sorted on the host anyway),
    or a GPU without the memory for the temporaries."""
    from ..data import solved_by
    from ..stats import Stats, cells_are_numbers

    if not cells_are_numbers(recipe.samples):
        return None
    pred = b["pred"].T  # (m, S)
    try:
        return Stats.of_arrays({}, solved_by(pred, data.sides), b["diverged"] >= 0, b["solved"], b["loss"], pred,
                               b["target"] if recipe.target_loss is not None else None, n=len(b["loss"]))
    except cupy.cuda.memory.OutOfMemoryError:
        return None


def adam_bias_corrections(recipe, epoch0, epochs):
    """(epochs, 2) in the recipe's dtype: 1 / (1 - beta1^t) and (1 - beta2^t)^0.5
    for steps t = epoch0 + 1 ..., in float64 as torch computes them (Python
    floats: libm pow) and as the reference does; one table per launch, read
    by every thread."""
    t = np.arange(epoch0 + 1, epoch0 + epochs + 1, dtype=np.float64)
    beta1, beta2 = recipe.betas
    c1 = 1.0 / (1.0 - np.power(beta1, t))
    c2 = np.power(1.0 - np.power(beta2, t), 0.5)
    return np.stack([c1, c2], axis=1).astype(recipe.dtype) if epochs else np.zeros((1, 2), recipe.dtype)


class _ChunkBuffers:
    """A chunk's device buffers, allocated once per launch and reused by every
    chunk: nothing is allocated between chunks, so the pool cannot run out
    half-way. ``layout``: name -> (rows per network, dtype)."""

    def __init__(self, cupy, chunk, layout):
        self.layout = {name: rows for name, (rows, _) in layout.items() if rows}
        self.flat = {name: cupy.empty(rows * chunk, dtype=dt) for name, (rows, dt) in layout.items() if rows}

    VECTORS = ("loss", "scale", "solved", "diverged", "target")  # one value per network: (m,)

    def views(self, m):
        """Contiguous views for a chunk of ``m`` networks: (m,) for the vectors, else (rows, m)."""
        return {name: self.flat[name][: k * m] if name in self.VECTORS else self.flat[name][: k * m].reshape(k, m)
                for name, k in self.layout.items()}


def _from_device(dst, src, transpose=False):
    """Copy the contiguous device array ``src`` (or its transpose) into ``dst``
    (a host or device view). To the host, the transpose is taken there: CuPy's
    ``get()`` of a transposed view first copies it on the device, which can
    run out of memory exactly where the chunks were sized to fit (seen on an
    H200, 2026-11-26)."""
    if array_module(dst) is np:
        host = src.get()
        dst[...] = host.T if transpose else host
    else:
        dst[...] = src.T if transpose else src


def _to_device(dst, src):
    """Copy ``src`` (host or device) into the contiguous device array ``dst``."""
    if array_module(src) is np:
        dst.set(np.ascontiguousarray(src, dtype=dst.dtype))
    else:
        dst[...] = src
