"""``cupy.random``: ``default_rng`` and its ``Generator``, drawn with NumPy's generator (the
numbers differ from CuPy's XORWOW; the methods, their parameters and default dtypes are
CuPy's, read from ``cupy_names.json``)."""

import ast
import inspect

import numpy as np

from . import _standin
from ._core import ndarray, unwrap, wrap

for _name in ("default_rng", "Generator"):
    _standin.check_name("random", _name)

_DTYPES = {"<class 'numpy.float64'>": np.float64, "<class 'numpy.float32'>": np.float32,
           "<class 'numpy.int64'>": np.int64, "<class 'numpy.int32'>": np.int32}


def _default(text):
    """A recorded default (its ``repr``) back to the value."""
    if text is None:
        return inspect.Parameter.empty
    return _DTYPES[text] if text in _DTYPES else ast.literal_eval(text)


def _draw(name):
    """Generator method ``name`` with CuPy's parameters: one kernel, into a fresh array or ``out``."""
    spec = _standin.NAMES["random.Generator"][name]
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                default=_default(d)) for n, d in spec]
    sig = inspect.Signature(params)

    def method(self, *args, **kwargs):
        bound = sig.bind(*args, **kwargs)  # a parameter CuPy lacks is a TypeError, as on a card
        bound.apply_defaults()
        kw = {k: unwrap(v) for k, v in bound.arguments.items()}
        out = kw.pop("out", None)
        if out is not None:
            kw["size"], kw["dtype"] = out.shape, out.dtype
        size, dtype = kw.get("size"), np.dtype(kw.get("dtype", np.float64))
        _standin.allocate(int(np.prod(size if size is not None else ())) * dtype.itemsize)
        _standin.launch()
        if name == "uniform":  # NumPy's uniform draws float64 only
            host = self._rng.uniform(kw["low"], kw["high"], size).astype(dtype)
        else:
            host = getattr(self._rng, name)(**kw)
        if out is not None:
            out._a[...] = host
            return out
        return wrap(np.asarray(host))
    method.__name__ = name
    method.__signature__ = sig
    return method


class Generator:
    """``cupy.random.Generator``; made by :func:`default_rng`."""

    def __init__(self, bit_generator):
        self._rng = np.random.default_rng(bit_generator)


for _name in ("random", "standard_normal", "uniform", "integers", "standard_exponential"):
    setattr(Generator, _name, _draw(_name))


def default_rng(seed=None):
    if isinstance(seed, (ndarray, np.ndarray)) or not (seed is None or isinstance(seed, (int, np.integer))):
        raise TypeError(f"cupy.random.default_rng takes an int seed, got {type(seed).__name__}")
    return Generator(seed)


def __getattr__(name):
    raise _standin.missing("random", name)
