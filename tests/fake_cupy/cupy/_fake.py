"""The fake device: its capacity, its one memory pool, and the guard bytes
around every allocation. Tests drive it through ``set_capacity`` / ``reset``.

Pool semantics follow ``SingleDeviceMemoryPool`` in CuPy's
``cupy/cuda/memory.pyx``: sizes are rounded up to 512 bytes; a free pooled
block that is large enough is reused; a referenced block is never freed; on
an allocation that does not fit, the pool frees its unused blocks, runs
``gc.collect()``, frees again and retries, then raises ``OutOfMemoryError``
(a ``MemoryError``); ``set_limit`` caps the pool's total bytes.
"""
import gc
import mmap
import platform
import weakref

import numpy as np

ROUND = 512  # memory.pyx: ALLOCATION_UNIT_SIZE
GUARD = 256  # bytes of sentinel before and after every allocation
SENTINEL = 0xA5
DEFAULT_CAPACITY = 4 << 30

capacity = DEFAULT_CAPACITY
launches = 0
#: Bytes copied between host and device (asarray/set/item assignment of host
#: arrays, get), for tests of what a run moves.
copied = {"to_device": 0, "to_host": 0}


class OutOfMemoryError(MemoryError):
    """As ``cupy.cuda.memory.OutOfMemoryError`` (a MemoryError subclass)."""

    def __init__(self, size, total, limit=0):
        msg = f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes"
        msg += f", limit set to: {limit:,} bytes)." if limit else ")."
        super().__init__(msg)


class Block:
    """One device allocation: ``size`` usable bytes between two guard zones."""

    def __init__(self, size):
        self.size = size
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
    def __init__(self):
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
        return device_allocated() + size <= capacity

    def _new(self, size):
        for attempt in range(3):  # as, then after, free_all_blocks; then after gc.collect too
            if self._fits(size):
                return Block(size)
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


pool = MemoryPool()


def device_allocated():
    """Bytes taken from the device: blocks in use plus the pool's free blocks."""
    return pool.total_bytes()


def check_guards():
    """Name the first allocation whose guard bytes a kernel overwrote."""
    for mem in list(pool._in_use):
        block = mem.block
        if not block.intact():
            raise RuntimeError(
                f"fake CuPy: a kernel wrote outside a device allocation of {block.nbytes} bytes "
                "(an out-of-bounds write; on a GPU: memory corruption or an illegal address)")


def set_capacity(nbytes):
    """The device's memory in bytes (what ``memGetInfo`` reports as total)."""
    global capacity
    capacity = int(nbytes)


def reset():
    """A fresh device: default capacity, empty pool, no limit, zero launches."""
    global capacity, launches
    gc.collect()
    capacity, launches = DEFAULT_CAPACITY, 0
    copied.update(to_device=0, to_host=0)
    pool.free_all_blocks()
    pool.set_limit(0)


def ftz_emulated():
    """Whether launches flush float32 subnormals as CuPy's -ftz=true does
    (x86's MXCSR flags; elsewhere the fake computes them exactly)."""
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
