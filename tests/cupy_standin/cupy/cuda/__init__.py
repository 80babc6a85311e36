"""``cupy.cuda``: streams, the device and its runtime, memory errors (one simulated device;
work runs when it is queued, so a synchronization only counts)."""

from .. import _standin
from . import memory, runtime

SERVED = ("Device", "Stream", "get_current_stream", "is_available", "memory", "runtime")
for _name in SERVED:
    _standin.check_name("cuda", _name)
for _name in ("synchronize", "use"):
    _standin.check_name("cuda.Stream", _name)
for _name in ("id", "synchronize", "use", "compute_capability"):
    _standin.check_name("cuda.Device", _name)


def is_available():
    return True


class Stream:
    """A stream; entering it (``with stream:``) makes it the current one."""

    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self._outer = []

    def synchronize(self):
        _standin.sync("Stream.synchronize()")

    def use(self):
        global _current
        _current = self
        return self

    def __enter__(self):
        global _current
        self._outer.append(_current)
        _current = self
        return self

    def __exit__(self, *exc):
        global _current
        _current = self._outer.pop()


Stream.null = Stream(null=True)
_current = Stream.null


def get_current_stream(device_id=-1):
    return _current


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise RuntimeError("cudaErrorInvalidDevice: invalid device ordinal")

    @property
    def compute_capability(self):
        return "90"

    def synchronize(self):
        _standin.sync("Device.synchronize()")

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def __getattr__(name):
    raise _standin.missing("cuda", name)
