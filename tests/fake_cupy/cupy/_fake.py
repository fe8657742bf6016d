"""The fake devices: how many, their capacity, a memory pool per device, the
current device of each host thread, and the guard bytes around every
allocation. Tests drive it through ``set_devices`` / ``set_capacity`` /
``reset``.

Devices follow CUDA's rules as CuPy exposes them: the current device is per
host thread (``cupy.cuda.Device(i)`` as a context), an array lives on the
device that was current when it was made, and every pool call acts on the
current device's pool (CuPy's ``MemoryPool`` holds one
``SingleDeviceMemoryPool`` per device).

Pool semantics follow ``SingleDeviceMemoryPool`` in CuPy's
``cupy/cuda/memory.pyx``: sizes are rounded up to 512 bytes; a free pooled
block that is large enough is reused; a referenced block is never freed; on
an allocation that does not fit, the pool frees its unused blocks, runs
``gc.collect()``, frees again and retries, then raises ``OutOfMemoryError``
(a ``MemoryError``); ``set_limit`` caps the pool's total bytes.
"""
import gc
import mmap
import os
import platform
import threading
import weakref

import numpy as np

ROUND = 512  # memory.pyx: ALLOCATION_UNIT_SIZE
GUARD = 256  # bytes of sentinel before and after every allocation
SENTINEL = 0xA5
DEFAULT_CAPACITY = 4 << 30

capacity = DEFAULT_CAPACITY  # bytes per device
#: Devices of the machine: FAKE_CUPY_DEVICES in a fresh process (a worker's), else 1.
device_count = int(os.environ.get("FAKE_CUPY_DEVICES", "1"))
launches = 0
#: Launches per device id.
launches_on = {}
#: Bytes copied between host and device (asarray/set/item assignment of host
#: arrays, get), for tests of what a run moves.
copied = {"to_device": 0, "to_host": 0}


class OutOfMemoryError(MemoryError):
    """As ``cupy.cuda.memory.OutOfMemoryError`` (a MemoryError subclass)."""

    def __init__(self, size, total, limit=0):
        msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
        msg += f", limit set to: {limit:,} bytes)." if limit else ")."
        super().__init__(msg)


_thread = threading.local()
_lock = threading.Lock()


def current():
    """The calling host thread's current device (0 until it sets one)."""
    return getattr(_thread, "device", 0)


def set_current(device):
    _thread.device = int(device)


def current_stream():
    """The calling thread's current stream id (0: the null stream)."""
    return getattr(_thread, "stream", 0)


def set_stream(stream_id):
    _thread.stream = stream_id


#: None, or a list that records ("launch" | "to_host" | "to_device", stream id) in order.
trace = None


def traced(what):
    if trace is not None:
        trace.append((what, current_stream()))


def count(what, nbytes):
    """Add to ``copied`` (host threads of several devices copy at once)."""
    with _lock:
        copied[what] += nbytes
    traced(what)


class Block:
    """One device allocation: ``size`` usable bytes between two guard zones."""

    def __init__(self, size, device):
        self.size, self.device = size, device
        # anonymous mmap, not a NumPy allocation: device memory is not host memory,
        # and tracemalloc (the tests' host-memory measure) does not see it
        self.raw = np.frombuffer(mmap.mmap(-1, GUARD + size + GUARD), dtype=np.uint8)
        self.raw[:] = SENTINEL
        self.nbytes = 0

    def arm(self, nbytes):
        """Hand out the first ``nbytes``; everything else becomes sentinel."""
        self.nbytes = nbytes
        self.raw[:GUARD] = SENTINEL
        self.raw[GUARD + nbytes:] = SENTINEL

    def view(self, dtype, shape):
        count = int(np.prod(shape, dtype=np.int64))
        return np.frombuffer(self.raw, dtype=dtype, count=count, offset=GUARD).reshape(shape)

    @property
    def ptr(self):
        return self.raw.ctypes.data + GUARD

    def intact(self):
        return (self.raw[:GUARD] == SENTINEL).all() and (self.raw[GUARD + self.nbytes:] == SENTINEL).all()


class Memory:
    """What arrays (and their views) hold: the block goes back to the pool's
    free list when the last holder is gone, as a CuPy ``MemoryPointer``."""

    def __init__(self, pool, block):
        self.block = block
        weakref.finalize(self, pool._release, block)


class MemoryPool:
    """One device's pool (CuPy's ``SingleDeviceMemoryPool``)."""

    def __init__(self, device):
        self.device = device
        self._free = []
        self._in_use = weakref.WeakSet()
        self._used = 0
        self._limit = 0

    def malloc(self, nbytes):
        size = max(ROUND, -(-nbytes // ROUND) * ROUND)
        block = self._take(size)
        if block is None:
            block = self._new(size)
        block.arm(nbytes)
        self._used += block.size
        mem = Memory(self, block)
        self._in_use.add(mem)
        return mem

    def _take(self, size):
        fits = [b for b in self._free if b.size >= size]
        if not fits:
            return None
        block = min(fits, key=lambda b: b.size)
        self._free.remove(block)
        return block

    def _fits(self, size):
        if self._limit and self.total_bytes() + size > self._limit:
            return False
        return self.total_bytes() + size <= capacity

    def _new(self, size):
        for attempt in range(3):  # as, then after, free_all_blocks; then after gc.collect too
            if self._fits(size):
                return Block(size, self.device)
            if attempt == 1:
                gc.collect()
            self.free_all_blocks()
            block = self._take(size)  # gc may have returned a block that fits
            if block is not None:
                return block
        raise OutOfMemoryError(size, self.total_bytes(), self._limit)

    def _release(self, block):
        self._used -= block.size
        self._free.append(block)

    # the public API the loader uses, as CuPy's
    def free_all_blocks(self, stream=None):
        self._free.clear()

    def free_bytes(self):
        return sum(b.size for b in self._free)

    def used_bytes(self):
        return self._used

    def total_bytes(self):
        return self._used + self.free_bytes()

    def set_limit(self, size=None, fraction=None):
        if fraction is not None:
            size = int(capacity * fraction)
        self._limit = int(size or 0)

    def get_limit(self):
        return self._limit


pools = {}


def pool_of(device):
    """The pool of ``device`` (made on first use)."""
    with _lock:
        return pools.setdefault(device, MemoryPool(device))


def current_pool():
    return pool_of(current())


class DefaultPool:
    """``cupy.get_default_memory_pool()``: every call acts on the current
    device's pool, as CuPy's multi-device ``MemoryPool``."""

    def __getattr__(self, name):
        return getattr(current_pool(), name)


def device_allocated(device=None):
    """Bytes taken from a device (the current one by default): blocks in use
    plus its pool's free blocks."""
    return pool_of(current() if device is None else device).total_bytes()


def check_guards():
    """Name the first allocation on the current device whose guard bytes a
    kernel overwrote."""
    for mem in list(current_pool()._in_use):
        block = mem.block
        if not block.intact():
            raise RuntimeError(
                f"fake CuPy: a kernel wrote outside a device allocation of {block.nbytes} bytes "
                "(an out-of-bounds write; on a GPU: memory corruption or an illegal address)")


def set_capacity(nbytes):
    """Each device's memory in bytes (what ``memGetInfo`` reports as total)."""
    global capacity
    capacity = int(nbytes)


def set_devices(n):
    """``n`` devices (``runtime.getDeviceCount()``), ids 0..n-1."""
    global device_count
    device_count = int(n)


def visible():
    """The machine's devices this process sees, as CUDA numbers them: those
    CUDA_VISIBLE_DEVICES lists, in its order (what dask-cuda sets per
    worker), else all; id i of this process is physical device visible()[i]."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return list(range(device_count))
    ids = []
    for part in listed.split(","):  # CUDA stops at the first entry that is not a device
        if not part.strip().isdigit() or int(part) >= device_count:
            break
        ids.append(int(part))
    return ids


def reset():
    """One fresh device, current: default capacity, empty pools, no limit,
    zero launches and copies."""
    global capacity, launches, device_count, trace
    gc.collect()
    capacity, launches, device_count, trace = DEFAULT_CAPACITY, 0, 1, None
    launches_on.clear()
    copied.update(to_device=0, to_host=0)
    for p in list(pools.values()):
        p.free_all_blocks()
        p.set_limit(0)
    set_current(0)
    set_stream(0)


def launched():
    """Count one launch on the current device."""
    global launches
    with _lock:
        launches += 1
        launches_on[current()] = launches_on.get(current(), 0) + 1
    traced("launch")


def ftz_emulated():
    """Whether launches flush float32 subnormals as CuPy's -ftz=true does
    (x86's MXCSR flags; elsewhere the fake computes them exactly)."""
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
