"""A strict stand-in for CuPy, run with NumPy on the CPU, for testing nnkd's CuPy path on
machines without a GPU (``NNKD_CUPY_STANDIN=1``, see ``tests/conftest.py``).  Not shipped.

- Its array (:class:`ndarray`) is not a NumPy array: implicit conversions raise ``TypeError``;
  ``.get()`` and :func:`asnumpy` are the way out.
- It serves only names the installed CuPy has (``tests/cupy_standin/cupy_names.json``, written
  by ``python3 -m tests.cupy_standin.record_names``, checked against the wheel by a test); any
  other name raises ``AttributeError``.
- It counts kernel launches, host synchronizations and transfers (:mod:`cupy._standin`), and
  simulates the card's memory, with a hook to make the next allocation fail.
"""

import numpy as _np

from . import _standin, cuda, random
from ._core import ndarray
from ._functions import REEXPORTED as _REEXPORTED, SERVED as _SERVED

__version__ = _standin.NAMES["version"] + "+standin"
globals().update(_SERVED)
globals().update(_REEXPORTED)
for _name in ("ndarray", "cuda", "random", "fuse"):
    _standin.check_name("cupy", _name)


class _Fused:
    """A fused kernel: its body runs with the stand-in's operations and counts one launch."""

    def __init__(self, func, kernel_name=None):
        self.func, self.__name__ = func, kernel_name or getattr(func, "__name__", "fused")

    def __call__(self, *args):
        for a in args:
            if isinstance(a, _np.ndarray):
                raise TypeError(f"Unsupported type {type(a)}: a NumPy array as an argument of a fused kernel")
        if _standin.fusing:  # a fused function called in another's body is part of that kernel
            return self.func(*args)
        _standin.fusing, _standin.fused_reductions = 1, 0
        try:
            result = self.func(*args)
        finally:
            _standin.fusing = 0
        _standin.launch()
        for r in result if isinstance(result, tuple) else (result,):
            if isinstance(r, ndarray) and r._a.base is None:
                _standin.allocate(r.nbytes)
                _standin.track(r._a)
        return result


def fuse(*args, **kwargs):
    """``cupy.fuse``, as ``@fuse`` or ``@fuse(kernel_name=...)``."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return _Fused(args[0])
    return lambda f: _Fused(f, kwargs.get("kernel_name"))


def __getattr__(name):
    raise _standin.missing("cupy", name)
