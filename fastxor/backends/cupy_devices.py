"""The cupy backend on several GPUs of one machine: ``fastxor.train(...,
devices="all")`` or a list of device ids (CLI ``--devices all`` / ``0,1``).

Why this shape: networks are independent, so a run's N networks split into
one contiguous range per GPU, and each range is trained by
``cupy_kernel.run`` on a host thread of its own with its GPU current. A
range is a ``State.part`` of the run's one state (views: networks
start+lo.., the same Philox streams), so every GPU writes its networks'
results straight into the run's arrays, the result is the one-GPU run's bit
for bit. Each GPU keeps its range on the device between epoch segments, as
one GPU does, and computes its range's statistics there as the run ends: the
run's are their sum (``Stats`` add up).
"""
import concurrent.futures
import operator

import numpy as np

from . import cupy_kernel

NAME = cupy_kernel.NAME


def device_ids(devices):
    """``devices`` ("all", an id, or a sequence of distinct ids of this
    machine's GPUs) as a tuple of ids; ValueError/TypeError naming the
    argument and the allowed ids otherwise."""
    import cupy

    count = cupy.cuda.runtime.getDeviceCount()
    allowed = f"'all' or GPU ids in [0, {count - 1}] (this machine has {count} GPU{'s' * (count != 1)})"
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices must be {allowed}, got {devices!r}")
        return tuple(range(count))
    given = list(devices) if isinstance(devices, (list, tuple, np.ndarray)) else [devices]
    try:
        if any(isinstance(d, (bool, np.bool_)) for d in given):  # True is an int to operator.index
            raise TypeError
        ids = [operator.index(d) for d in given]
    except TypeError:
        raise TypeError(f"devices must be {allowed}, got {devices!r}") from None
    if not ids:
        raise ValueError(f"devices must be {allowed}, got an empty list")
    bad = [d for d in ids if not 0 <= d < count]
    if bad:
        raise ValueError(f"devices must be {allowed}, got {bad[0]}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"devices lists a GPU twice: {list(ids)}")
    return tuple(ids)


def ranges(n, k):
    """``n`` networks in at most ``k`` contiguous (lo, hi) ranges of sizes
    differing by at most one (none empty)."""
    k = min(k, n)
    return [(i * n // k, (i + 1) * n // k) for i in range(k)]


class Devices:
    """The backend contract (see ``fastxor.backends``) over the GPUs ``ids``."""

    NAME = NAME

    def __init__(self, ids):
        self.ids = tuple(ids)

    def problem(self):
        return cupy_kernel.problem()

    def memory_bytes(self, n, recipe, rows):
        """``cupy_kernel.memory_bytes`` with a chunk copy in flight per GPU:
        their host threads copy chunks back at the same time."""
        import cupy

        copies, streams = 0, False
        for device, (lo, hi) in zip(self.ids, ranges(n, len(self.ids))):
            with cupy.cuda.Device(device):
                c, s = cupy_kernel.transit(hi - lo, recipe, rows)
            copies, streams = copies + c, streams or s
        return cupy_kernel.host_bytes(n, recipe, rows, copies, streams)

    def run(self, state, data, epochs, record_every, recipe, out, final=True, work=None):
        """``cupy_kernel.run`` of each GPU's range, at once, one host thread
        per GPU; the parts (and what each keeps on its GPU) live in
        ``state.device`` from one segment to the next."""
        import cupy

        n = state.n_networks
        split = state.device
        if split is None or split.epoch != state.epoch:
            if state.params is None:  # each GPU writes its range of the one array
                state.params = np.empty((recipe.n_params, n), dtype=recipe.dtype)
            split = state.device = _Split(state, self.ids)

        def train_on(device, part, lo, hi):
            with cupy.cuda.Device(device):
                cupy_kernel.run(part, data, epochs, record_every, recipe, out.part(lo, hi), final)

        with concurrent.futures.ThreadPoolExecutor(len(split.parts)) as pool:
            jobs = [pool.submit(train_on, device, part, lo, hi) for device, part, (lo, hi) in split.parts]
            for job in jobs:
                job.result()  # the first GPU's error, raised here
        state.epoch += epochs
        split.epoch = state.epoch
        if final:  # every part brought its networks back, and its statistics (Stats add up)
            stats = [part.statistics for _, part, _ in split.parts]
            state.statistics = None if any(s is None for s in stats) else sum(stats)
            state.init = None
            state.device = None
        return out


class _Split:
    """A run's parts, one per GPU: (device id, ``State.part``, (lo, hi));
    ``epoch``: the global epoch they hold."""

    def __init__(self, state, ids):
        self.parts = [(d, state.part(lo, hi), (lo, hi)) for d, (lo, hi) in zip(ids, ranges(state.n_networks,
                                                                                            len(ids)))]
        self.epoch = state.epoch
