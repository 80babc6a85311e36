"""``cupy.cuda.runtime``: one simulated device."""

from .. import _standin

SERVED = ("getDeviceCount", "getDevice", "getDeviceProperties", "memGetInfo", "deviceSynchronize")
for _name in SERVED:
    _standin.check_name("cuda.runtime", _name)


def getDeviceCount():
    return 1


def getDevice():
    return 0


def getDeviceProperties(device):
    if device != 0:
        raise RuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return {"name": _standin.DEVICE_NAME.encode(), "totalGlobalMem": _standin.TOTAL_MEMORY,
            "major": 9, "minor": 0, "multiProcessorCount": 1}


def memGetInfo():
    """``(free, total)`` bytes of the simulated card."""
    return _standin.free_memory(), _standin.TOTAL_MEMORY


def deviceSynchronize():
    _standin.sync("cupy.cuda.runtime.deviceSynchronize()")


def __getattr__(name):
    raise _standin.missing("cuda.runtime", name)
