"""The functions of the ``cupy`` namespace the stand-in serves (:data:`SERVED`), each run
with NumPy on the arrays' data and counted (see :mod:`cupy._standin`)."""

import numpy as np

from . import _standin
from ._core import call, ndarray, unwrap, wrap

SERVED = {}


def served(name):
    def register(f):
        _standin.check_name("cupy", name)
        f.__name__ = name
        SERVED[name] = f
        return f
    return register


def _kernel(name, np_func, launches=1, syncs=0, reduction=False):
    def f(*args, **kwargs):
        if reduction:
            _standin.reduce_in_fusion(name)
        for _ in range(syncs):
            _standin.sync(f"cupy.{name}()")  # its result's size depends on the data
        return call(np_func, args, kwargs, launches)
    return served(name)(f)


# Every NumPy ufunc CuPy has, one elementwise kernel each.
for _name in _standin.NAMES["cupy"]:
    if isinstance(getattr(np, _name, None), np.ufunc):
        _kernel(_name, getattr(np, _name))

# Reductions, products, gathers and the like: one kernel each.
REDUCTIONS = ("sum", "prod", "max", "min", "amax", "amin", "mean", "var", "std", "argmax", "argmin",
              "all", "any", "count_nonzero")
for _name in REDUCTIONS:
    _kernel(_name, getattr(np, _name), reduction=True)
for _name in ("cumsum", "cumprod", "take", "take_along_axis", "dot", "tensordot", "outer", "inner",
              "clip", "repeat", "round", "around", "where", "isclose", "allclose", "concatenate",
              "stack", "vstack", "hstack", "sort", "argsort", "isin", "tile", "diff", "trace"):
    _kernel(_name, getattr(np, _name))
for _name in ("nonzero", "flatnonzero", "unique", "argwhere", "bincount"):
    _kernel(_name, getattr(np, _name), syncs=1)


@served("einsum")
def einsum(*operands, **kwargs):
    if "out" in kwargs:
        raise TypeError("Did not understand the following kwargs: ['out'] (CuPy's einsum takes no out=)")
    return call(np.einsum, operands, kwargs)


@served("copyto")
def copyto(dst, src, casting="same_kind", where=None):
    call(np.copyto, (dst, src), {"casting": casting, **({"where": where} if where is not None else {})})


# Views and shapes: no kernel.
for _name in ("reshape", "ravel", "transpose", "swapaxes", "squeeze", "expand_dims", "broadcast_to"):
    def _no_kernel(a, *args, _f=getattr(np, _name), **kwargs):
        if not isinstance(a, ndarray):
            unwrap(a)
            raise TypeError(f"Unsupported type {type(a)}")
        r = _f(a._a, *unwrap(args), **unwrap(kwargs))
        if np.shares_memory(r, a._a):
            v = object.__new__(ndarray)
            v._a = r
            return v
        _standin.launch()
        return wrap(r)
    served(_name)(_no_kernel)


# Creation: the allocation is checked against the card before it is made.
def _new(name, np_func, launches):
    def f(*args, **kwargs):
        shape, dtype = (args[0].shape, args[0].dtype) if name.endswith("_like") else (args[0], np.float64)
        dtype = np.dtype(kwargs.get("dtype", args[1] if len(args) > 1 and not name.startswith("full")
                                    else dtype) or dtype)
        _standin.allocate(int(np.prod(shape)) * dtype.itemsize)
        return call(np_func, args, kwargs, launches)
    return served(name)(f)


for _name, _launches in (("empty", 0), ("empty_like", 0), ("zeros", 1), ("zeros_like", 1),
                         ("ones", 1), ("ones_like", 1), ("full", 1), ("full_like", 1)):
    _new(_name, getattr(np, _name), _launches)
for _name in ("arange", "linspace", "eye", "identity"):
    _kernel(_name, getattr(np, _name))


# Host <-> device.
def _from_host(obj, dtype, what):
    if _standin.fusing:
        raise TypeError(f"cupy.{what} inside a fused kernel")
    if isinstance(obj, (list, tuple)) and any(isinstance(x, ndarray) for x in obj):
        return call(np.stack, (list(obj),), {}).astype(dtype or obj[0].dtype, copy=False)
    _standin.counts.h2d += 1
    host = np.array(obj, dtype=dtype)
    return wrap(host if host.base is None else host.copy())


@served("asarray")
def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    return _from_host(a, dtype, "asarray")


@served("array")
def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        return obj.astype(dtype or obj.dtype, copy=copy)
    return _from_host(obj, dtype, "array")


@served("ascontiguousarray")
def ascontiguousarray(a, dtype=None):
    unwrap(a)
    if a._a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return call(lambda x: np.ascontiguousarray(x, dtype=dtype), (a,), {})


@served("asnumpy")
def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        return a.get(order=order)
    return np.asarray(a, order=order)


@served("get_array_module")
def get_array_module(*args):
    import cupy
    return cupy if any(isinstance(a, ndarray) for a in args) else np


# What CuPy takes from NumPy as it is: the scalar types, dtype, constants.
REEXPORTED = {name: getattr(np, name) for name in _standin.NAMES["cupy"]
              if isinstance(getattr(np, name, None), type) and issubclass(getattr(np, name), np.generic)}
REEXPORTED.update({name: getattr(np, name) for name in ("dtype", "finfo", "iinfo", "result_type",
                                                         "promote_types", "can_cast", "newaxis",
                                                         "pi", "e", "inf", "nan")})
for _name in REEXPORTED:
    _standin.check_name("cupy", _name)
