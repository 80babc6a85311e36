"""The contract of the data that :func:`nnkd.train.train` reads, checked before any work.

The command line builds this dict itself (:func:`nnkd.data.device_data`); a Python
caller builds it by hand, so every mistake there gets one line saying what is wrong
and how to fix it, as on the command line.
"""

from collections.abc import Mapping

import numpy as np

from .errors import UserError

PAIRS = (("x_train", "y_train"), ("x_test", "y_test"), ("x_val", "y_val"))


def _array(backend, data, key):
    a = data[key]
    if not isinstance(a, backend.xp.ndarray):
        where = "backend.asarray(...) " if backend.is_gpu else ""
        raise UserError(f"data[{key!r}] is a {type(a).__name__}: give a {backend.name} array "
                        f"({where}e.g. np.asarray(...))")
    return a


def check_training_data(data, backend, n_outputs):
    """Check ``data`` (see :func:`nnkd.train.train`) for a model of ``n_outputs`` classes;
    returns ``(n_classes, image_shape)`` (``image_shape`` None for features that are not a
    known image: then nothing may be jittered)."""
    if not isinstance(data, Mapping):
        raise UserError(f"data must be a dict of arrays (x_train, y_train, x_test, y_test), got "
                        f"{type(data).__name__}")
    for x_key, y_key in PAIRS:
        if x_key not in data and y_key not in data and x_key == "x_val":
            continue
        for key in (x_key, y_key):
            if key not in data:
                raise UserError(f"data has no {key!r}: give x_train, y_train, x_test and y_test "
                                "(and x_val with y_val for a validation error)")
    n_classes = data.get("n_classes", n_outputs)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise UserError(f"data['n_classes'] must be a positive whole number, got {n_classes!r}")
    if n_classes != n_outputs:
        raise UserError(f"the model has {n_outputs} outputs but data['n_classes'] is {n_classes}: give an "
                        f"architecture that ends with {n_classes}")
    width = None
    for x_key, y_key in PAIRS:
        if x_key not in data:
            continue
        x, y = _array(backend, data, x_key), _array(backend, data, y_key)
        if x.ndim != 2 or x.shape[0] == 0:
            raise UserError(f"data[{x_key!r}] has shape {x.shape}: give (examples, features) with at "
                            "least one example")
        if x.dtype != np.float32:
            hint = " (pixels: nnkd.data.to_float32 gives x / 255)" if x.dtype == np.uint8 else ""
            raise UserError(f"data[{x_key!r}] is {x.dtype}: training computes in float32, give "
                            f"x.astype(np.float32){hint}")
        if width is not None and x.shape[1] != width:
            raise UserError(f"data[{x_key!r}] has {x.shape[1]} features but data['x_train'] has {width}")
        width = x.shape[1]
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise UserError(f"data[{y_key!r}] has shape {y.shape} but data[{x_key!r}] has {x.shape[0]} "
                            "examples: give one label per example")
        if y.dtype.kind not in "iu":
            raise UserError(f"data[{y_key!r}] is {y.dtype}: labels are class numbers, give "
                            "y.astype(np.int64)")
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= n_classes:
            raise UserError(f"data[{y_key!r}] holds label {low if low < 0 else high}: labels must be 0 "
                            f"to {n_classes - 1} (the model's {n_classes} outputs)")
        if not bool(backend.xp.isfinite(x).all()):
            raise UserError(f"data[{x_key!r}] holds NaN or infinite values: clean the data first")
    shape = data.get("image_shape", (28, 28) if width == 784 else None)
    if shape is not None and (len(shape) != 2 or shape[0] * shape[1] != width):
        raise UserError(f"data['image_shape'] {tuple(shape)} does not hold the {width} features")
    return n_classes, shape
