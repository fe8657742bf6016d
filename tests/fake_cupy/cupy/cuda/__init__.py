"""``cupy.cuda`` of the fake: the runtime calls, the pool's error, the devices, streams."""
from . import compiler, driver, memory, runtime  # noqa: F401
from .. import _fake
from .memory import OutOfMemoryError  # noqa: F401


class Device:
    """As ``cupy.cuda.Device``: ``Device()`` is the calling thread's current
    device; as a context it makes ``id`` current and restores the previous
    one on exit (per host thread, as CUDA's current device)."""

    def __init__(self, device=None):
        self.id = _fake.current() if device is None else int(device)
        if not 0 <= self.id < runtime.getDeviceCount():
            raise runtime.CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
        self._saved = []

    compute_capability = property(lambda self: "90")

    def use(self):
        _fake.set_current(self.id)

    def synchronize(self):
        pass

    def __enter__(self):
        self._saved.append(_fake.current())
        _fake.set_current(self.id)
        return self

    def __exit__(self, *exc):
        _fake.set_current(self._saved.pop())
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class Stream:
    """As ``cupy.cuda.Stream``: as a context, the current stream of the
    calling thread (work is done at once on the host, so ordering within and
    across streams holds trivially); ``_fake.trace`` records each launch and
    copy with the stream it was queued on, for tests of the overlap."""

    _ids = iter(range(1, 1 << 62))

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.id = 0 if null else next(Stream._ids)
        self.device_id = _fake.current()
        self._saved = []

    def synchronize(self):
        pass

    def __enter__(self):
        if self.device_id != _fake.current():
            raise ValueError(f"fake CuPy: a stream of device {self.device_id} made current on device "
                             f"{_fake.current()}")
        self._saved.append(_fake.current_stream())
        _fake.set_stream(self.id)
        return self

    def __exit__(self, *exc):
        _fake.set_stream(self._saved.pop())
        return False
