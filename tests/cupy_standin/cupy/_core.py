"""The stand-in's array: a NumPy array held on the "device", which NumPy cannot see.

What it enforces, as CuPy does: no implicit conversion to NumPy (``__array__``, ``np.asarray``,
a NumPy array as an operand or argument raise ``TypeError``); ``.get()``/``cupy.asnumpy`` are
the way out; NumPy functions reach it only through ``__array_ufunc__``/``__array_function__``
where CuPy has a function of that name; only attributes CuPy's ``ndarray`` has.
"""

import numpy as np

from . import _standin

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly.")


def wrap(a):
    """A NumPy result -> a stand-in array (a scalar becomes a 0-d array, as CuPy returns)."""
    if isinstance(a, tuple):
        return tuple(wrap(x) for x in a)
    if not isinstance(a, np.ndarray):
        a = np.asarray(a)
    if a.base is None and not _standin.fusing:
        _standin.allocate(a.nbytes)
        _standin.track(a)
    out = object.__new__(ndarray)
    out._a = a
    return out


def unwrap(v, what="argument"):
    """A stand-in array -> its NumPy array; a NumPy array is refused as CuPy refuses it."""
    if isinstance(v, ndarray):
        return v._a
    if isinstance(v, np.ndarray):
        raise TypeError(f"Unsupported type {type(v)}: a NumPy array as a CuPy {what}; copy it to "
                        "the device with cupy.asarray first")
    if isinstance(v, (list, tuple)):
        return type(v)(unwrap(x, what) for x in v)
    return v


def call(np_func, args, kwargs, launches=1):
    """Run ``np_func`` on the arrays' NumPy data; ``out=`` (a stand-in array) is written in place."""
    out = kwargs.get("out")
    if out is not None and not isinstance(out, (ndarray, tuple)):
        raise TypeError(f"out must be a cupy.ndarray, got {type(out)}")
    a = unwrap(args)
    kw = {k: unwrap(v) for k, v in kwargs.items()}
    _standin.launch(launches)
    r = np_func(*a, **kw)
    if out is not None:
        return out
    for v in args:  # an output given by position
        if isinstance(v, ndarray) and r is v._a:
            return v
    return wrap(r)


class ndarray:
    """``cupy.ndarray``: ``ndarray(shape, dtype=float)`` allocates, as CuPy's does."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        dtype = np.dtype(dtype)
        _standin.allocate(int(np.prod(shape)) * dtype.itemsize)
        self._a = np.empty(shape, dtype, order=order)
        _standin.track(self._a)

    # --- what NumPy may not do with it
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from . import _functions
        f = _functions.SERVED.get(ufunc.__name__)
        if method != "__call__" or f is None:
            return NotImplemented
        return f(*inputs, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from . import _functions
        f = _functions.SERVED.get(func.__name__) if func.__module__ == "numpy" else None
        if f is None:
            return NotImplemented
        return f(*args, **kwargs)

    # --- the ways out: each waits for the device
    def get(self, stream=None, order="C", out=None, blocking=True):
        _standin.sync("ndarray.get()")
        _standin.counts.d2h += 1
        return self._a.copy(order=order)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        _standin.counts.h2d += 1
        self._a[...] = arr

    def item(self):
        _standin.sync("ndarray.item()")
        _standin.counts.d2h += 1
        return self._a.item()

    def tolist(self):
        return self.get().tolist()

    def _scalar(self, kind, convert):
        if self._a.size != 1:
            raise TypeError(f"only size-1 arrays can be converted to Python scalars ({kind})")
        return convert(self.item())

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        return self._scalar("bool", bool)

    def __int__(self):
        return self._scalar("int", int)

    def __float__(self):
        return self._scalar("float", float)

    def __complex__(self):
        return self._scalar("complex", complex)

    def __repr__(self):
        return repr(self.get()).replace("array", "array", 1)

    def __str__(self):
        return str(self.get())

    def __format__(self, spec):
        return format(self.get() if self.ndim else self.item(), spec)

    # --- attributes (no kernel)
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _view(self._a.T))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def reshape(self, *shape, order="C"):
        r = self._a.reshape(*shape, order=order)
        if not np.shares_memory(r, self._a):
            _standin.launch()
        return _view(r) if r.base is not None else wrap(r)

    def ravel(self, order="C"):
        return self.reshape(-1, order=order)

    def transpose(self, *axes):
        return _view(self._a.transpose(*axes))

    def swapaxes(self, a, b):
        return _view(self._a.swapaxes(a, b))

    def squeeze(self, axis=None):
        return _view(self._a.squeeze(axis))

    def view(self, dtype=None):
        return _view(self._a.view() if dtype is None else self._a.view(dtype))

    # --- kernels
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return call(lambda a: a.astype(dtype, order=order), (self,), {})

    def copy(self, order="C"):
        return call(lambda a: a.copy(order=order), (self,), {})

    __copy__ = copy

    def __deepcopy__(self, memo):
        return self.copy()

    def fill(self, value):
        _standin.launch()
        self._a.fill(unwrap(value))

    def flatten(self, order="C"):
        return self.copy(order).reshape(-1)

    def __getitem__(self, key):
        _not_fusing("indexing")
        k = _index(key)
        r = self._a[k]
        if not isinstance(r, np.ndarray):  # an element: a 0-d view, as CuPy gives
            r = self._a[(k if isinstance(k, tuple) else (k,)) + (Ellipsis,)]
        if isinstance(r, np.ndarray) and r.base is not None and np.shares_memory(r, self._a):
            return _view(r)  # basic indexing: a view, no kernel
        _standin.launch()
        return wrap(r)

    def __setitem__(self, key, value):
        _not_fusing("indexed assignment")
        k = _index(key)
        if isinstance(value, np.ndarray):  # CuPy copies a host array over
            _standin.counts.h2d += 1
        else:
            value = unwrap(value)
        _standin.launch()
        self._a[k] = value


def _not_fusing(what):
    if _standin.fusing:
        raise TypeError(f"{what} inside a fused kernel: cupy.fuse takes elementwise operations and "
                        "reductions only")


def _view(a):
    out = object.__new__(ndarray)
    out._a = a
    return out


def _index(key):
    """An index: stand-in arrays unwrapped; a host array copied to the device (as CuPy does)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, (np.ndarray, list)):
        _standin.counts.h2d += 1
    return key


def _method(name, np_name=None, launches=1):
    """A method that runs one kernel: NumPy's method ``np_name`` on the data."""
    np_name = np_name or name

    def method(self, *args, **kwargs):
        _not_fusing(f"ndarray.{name}()")  # a fused kernel's arrays have no methods: use cupy.{name}
        return call(lambda a, *rest, **kw: getattr(a, np_name)(*rest, **kw), (self, *args), kwargs,
                    launches)
    method.__name__ = name
    return method


for _name in ("sum", "prod", "max", "min", "mean", "var", "std", "argmax", "argmin", "all", "any",
              "cumsum", "cumprod", "take", "dot", "clip", "repeat", "round", "conj", "sort",
              "argsort", "trace", "diagonal"):
    setattr(ndarray, _name, _method(_name))


def _operator(ufunc_name, reflected=False, inplace=False):
    def op(self, other):
        from . import _functions
        f = _functions.SERVED[ufunc_name]
        if isinstance(other, np.ndarray):
            raise TypeError(f"Unsupported type {type(other)}: a NumPy array as an operand of a "
                            "CuPy array; copy it to the device with cupy.asarray first")
        if inplace:
            return f(self, other, out=self)
        return f(other, self) if reflected else f(self, other)
    return op


_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
           "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul",
           "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
           "lshift": "left_shift", "rshift": "right_shift"}
for _op, _uf in _BINARY.items():
    setattr(ndarray, f"__{_op}__", _operator(_uf))
    setattr(ndarray, f"__r{_op}__", _operator(_uf, reflected=True))
    if _op != "matmul":
        setattr(ndarray, f"__i{_op}__", _operator(_uf, inplace=True))
for _op, _uf in {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
                 "gt": "greater", "ge": "greater_equal"}.items():
    setattr(ndarray, f"__{_op}__", _operator(_uf))
for _op, _uf in {"neg": "negative", "pos": "positive", "abs": "absolute", "invert": "invert"}.items():
    setattr(ndarray, f"__{_op}__", (lambda uf: lambda self: __import__("cupy")._functions.SERVED[uf](self))(_uf))


def _check_served():
    own = {"__dict__", "__weakref__", "__module__", "__doc__"}
    for name in ndarray.__dict__:
        if name not in own and not (name.startswith("_") and not name.startswith("__")):
            _standin.check_name("ndarray", name)


_check_served()
ndarray.__module__ = "cupy"
