"""The host-to-device edge: features to float32, the validation split, arrays on the backend."""

from __future__ import annotations

import numpy as np

from .common import DataError

def to_float32(images: np.ndarray) -> np.ndarray:
    """Features ``(N, D)`` or images ``(N, H, W)`` -> float32 ``(N, D)``, the one place
    pixels become floats.

    uint8 pixels become ``x / 255`` in [0, 1].  Float features (a user's dataset) are
    converted to float32 and otherwise left as they are.  Any other dtype is a
    TypeError.  The result is always a new array.
    """
    images = np.asarray(images)
    if images.dtype.kind == "f":
        return images.reshape(len(images), -1).astype(np.float32)
    if images.dtype != np.uint8:
        raise TypeError(f"to_float32 expects uint8 pixels or float features, got {images.dtype}")
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= np.float32(255)
    return x


def validation_split(images: np.ndarray, labels: np.ndarray, n_val: int = 10_000
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out the last ``n_val`` training examples: ``(train_x, train_y, val_x, val_y)``.

    With the 60,000 MNIST training images this is the classic 50,000 / 10,000 split.
    The results are views, not copies.  Never split the test set to choose anything.
    """
    n = len(images)
    if len(labels) != n:
        raise DataError(f"validation_split: {n} images but {len(labels)} labels")
    if not 0 <= n_val < n:
        raise DataError(f"validation_split: n_val={n_val} must be from 0 to {n - 1} "
                        f"(there are {n} training examples)")
    cut = n - n_val
    return images[:cut], labels[:cut], images[cut:], labels[cut:]


def device_data(ds, backend, validation: int = 0, train_limit: int | None = None) -> dict:
    """A :class:`~nnkd.data.Dataset` on the backend as float32 features (images in [0, 1])
    and int64 labels: the dict that training reads.

    ``train_limit`` keeps only the first N training images (before the validation
    split); the last ``validation`` of those are held out as ``x_val``, ``y_val``.  The
    test set is always whole.
    """
    x, y = ds.train_features[:train_limit], ds.train_labels[:train_limit]
    out = {}
    if validation:
        x, y, xv, yv = validation_split(x, y, validation)
        out["x_val"] = backend.asarray(to_float32(xv))
        out["y_val"] = backend.asarray(yv.astype(np.int64))
    out["x_train"] = backend.asarray(to_float32(x))
    out["y_train"] = backend.asarray(y.astype(np.int64))
    out["x_test"] = backend.asarray(to_float32(ds.test_features))
    out["y_test"] = backend.asarray(ds.test_labels.astype(np.int64))
    out["image_shape"] = ds.image_shape
    out["n_classes"] = ds.n_classes
    return out
