"""``cupy.cuda.runtime`` of the fake: ``_fake.device_count`` sm_90 devices of
``_fake.capacity`` bytes each, those of CUDA_VISIBLE_DEVICES where it is set
(none when the environment sets FAKE_CUPY_NO_DEVICE=1)."""
import os

from .. import _fake


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    if os.environ.get("FAKE_CUPY_NO_DEVICE") == "1":
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    return len(_fake.visible())


def _check(device):
    if not 0 <= int(device) < getDeviceCount():
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")


def getDevice():
    return _fake.current()


def setDevice(device):
    _check(device)
    _fake.set_current(device)


def getDeviceProperties(device):
    _check(device)
    return {"name": b"fake CuPy host device", "major": 9, "minor": 0, "pciBusID": _fake.visible()[int(device)],
            "totalGlobalMem": _fake.capacity, "multiProcessorCount": 1, "clockRate": 1_000_000}


def driverGetVersion():
    return 12080


def runtimeGetVersion():
    return 12080


def memGetInfo():
    """(free, total) of the current device: the pool's free blocks count as
    taken, as on a real device."""
    return _fake.capacity - _fake.device_allocated(), _fake.capacity


def deviceSynchronize():
    pass
