"""``cupy.cuda.runtime`` of the fake: one sm_90 device of ``_fake.capacity`` bytes
(none when the environment sets FAKE_CUPY_NO_DEVICE=1)."""
import os

from .. import _fake


class CUDARuntimeError(RuntimeError):
    pass


def getDeviceCount():
    if os.environ.get("FAKE_CUPY_NO_DEVICE") == "1":
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    return 1


def getDeviceProperties(device):
    return {"name": b"fake CuPy host device", "major": 9, "minor": 0,
            "totalGlobalMem": _fake.capacity, "multiProcessorCount": 1, "clockRate": 1_000_000}


def driverGetVersion():
    return 12080


def runtimeGetVersion():
    return 12080


def memGetInfo():
    """(free, total): the pool's free blocks count as taken, as on a real device."""
    return _fake.capacity - _fake.device_allocated(), _fake.capacity


def deviceSynchronize():
    pass
