"""``cupy.cuda.memory``: the out-of-memory error."""

from .. import _standin

_standin.check_name("cuda.memory", "OutOfMemoryError")


class OutOfMemoryError(MemoryError):
    """As CuPy's: ``OutOfMemoryError(size, total, limit=0)``."""

    def __init__(self, size, total, limit=0):
        super().__init__(f"Out of memory allocating {size:,} bytes (allocated so far: {total:,} bytes).")


def __getattr__(name):
    raise _standin.missing("cuda.memory", name)
