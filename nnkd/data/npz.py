"""A user's dataset, ``npz:PATH``: an ``.npz`` file, or a folder of ``.npy`` files.

It holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``image_shape``
(e.g. ``[8, 8]``; without it the features are not taken for an image, whatever their
count).  Features are ``(N, D)`` of any real dtype, or ``(N, H, W)`` matching
``image_shape`` (flattened to ``(N, H*W)``); uint8 features stay uint8 (pixels, scaled by
1/255 in :func:`nnkd.data.to_float32`), any other dtype becomes float32, unscaled.  Labels
are 1-D integers 0..n_classes-1 (stored as int64).  Files are read with
``allow_pickle=False``; every problem is one :class:`DataError` line naming the file.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Callable

import numpy as np

from ..files import memory_problem, npy_header
from .common import DataError, one_line, show
from .dataset import NPZ_PREFIX, Dataset

KEYS = ("x_train", "y_train", "x_test", "y_test")
MAX_CLASSES = 65536  # a label beyond this is a mistake, not a class
_HOW = ("save it with numpy.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...), "
        "optionally image_shape=[H, W]")


def expand_path(text: str, what: str) -> Path:
    """``~`` and ``~user`` expanded; an unknown user is a one-line :class:`DataError`."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "Could not determine home directory"
        raise DataError(f"{what} {text}: no such user's home folder ({text.split('/')[0]}); give "
                        "the path without ~ or with an existing user") from None


def npz_path(name: str, resolve: bool = False) -> Path:
    """The file or folder that the dataset name ``npz:PATH`` names (``resolve``: absolute, with
    symbolic links followed)."""
    if not name[len(NPZ_PREFIX):].strip():
        raise DataError(f"dataset {name!r} names no file; give npz:PATH to an .npz file or a folder "
                        "of .npy files")
    path = expand_path(name[len(NPZ_PREFIX):], "dataset")
    if not resolve:
        return path
    try:
        return path.resolve()
    except (RuntimeError, OSError) as e:  # a loop of symbolic links
        raise DataError(f"{show(path)}: cannot follow its symbolic links ({one_line(e)}); give "
                        "the path of an .npz file or a folder of .npy files") from None


def _array(value, key: str, where: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise DataError(f"{where}: {key} is not a .npy array; {_HOW}")
    return value


def _member(z, key: str, where: str) -> np.ndarray:
    """One array of an open ``.npz``, any failure as a one-line DataError.  Its .npy header is
    read first: a member that claims more data than it holds, or than memory can hold, is
    refused before any of it is read."""
    _check_member_header(z, key, where)
    try:
        value = z[key]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(f"{where}: {key} holds Python objects (a pickle); refusing to "
                            f"load it: save plain numeric arrays") from None
        raise DataError(f"{where}: {key} is not a readable array ({one_line(e)})") from None
    except Exception as e:  # BadZipFile (CRC), zlib.error, EOFError, OSError
        raise DataError(f"{where}: {key} is corrupt ({type(e).__name__}: "
                        f"{one_line(e)})") from None
    return _array(value, key, where)


def _check_member_header(z, key: str, where: str) -> None:
    name = key + ".npy"
    try:
        info = z.zip.getinfo(name)
        with z.zip.open(info) as f:
            shape, dtype, problem = npy_header(f, info.file_size)
    except KeyError:  # stored without the .npy suffix: NumPy's own reader finds it
        return
    except Exception:  # a damaged header or archive: reported when the member is read
        return
    _refuse(shape, dtype, problem, f"{where}: {key}")


def _refuse(shape, dtype, problem, where: str) -> None:
    """Refuse an array whose header (:func:`nnkd.files.npy_header`) says it is cut off or needs
    more memory than the machine has (one of Python objects is refused when it is read)."""
    if dtype is None or dtype.hasobject:
        return
    problem = problem or memory_problem(shape, dtype)
    if problem:
        raise DataError(f"{where} {problem}; {_HOW}")


def _not_npz(head: bytes) -> str:
    if not head:
        return "an empty file"
    if head.startswith(np.lib.format.MAGIC_PREFIX):
        return "a single .npy array"
    return "not a zip archive"


def _read_file(path: Path, where: str) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise DataError(f"{where}: cannot read it ({one_line(e.strerror or e)})") from None
    if not head.startswith(b"PK"):
        raise DataError(f"{where}: not an .npz file ({_not_npz(head)}); {_HOW}")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # BadZipFile for a truncated or damaged archive, OSError
        raise DataError(f"{where}: not a readable .npz file ({type(e).__name__}: "
                        f"{one_line(e)}); {_HOW}") from None
    with z:
        missing = [k for k in KEYS if k not in z.files]
        if missing:
            held = ", ".join(z.files[:8]) + (", ..." if len(z.files) > 8 else "") or "nothing"
            raise DataError(f"{where}: missing {', '.join(missing)} (it holds {held}); {_HOW}")
        return {k: _member(z, k, where) for k in KEYS + ("image_shape",) if k in z.files}


def _read_folder(path: Path) -> dict[str, np.ndarray]:
    missing = [f"{k}.npy" for k in KEYS if not (path / f"{k}.npy").is_file()]
    if missing:
        raise DataError(f"{show(path)}: missing {', '.join(missing)}; put "
                        f"{', '.join(k + '.npy' for k in KEYS)} (and optionally "
                        f"image_shape.npy) there, or give an .npz file")
    out = {}
    for key in KEYS + ("image_shape",):
        file = path / f"{key}.npy"
        if not file.is_file():
            continue
        where = show(file)
        try:
            with open(file, "rb") as f:
                head = f.read(8)
            if not head.startswith(np.lib.format.MAGIC_PREFIX):
                raise DataError(f"{where}: not a .npy file ("
                                f"{'an empty file' if not head else 'wrong magic bytes'})")
            with open(file, "rb") as f:
                _refuse(*npy_header(f, file.stat().st_size), f"{where}:")
            out[key] = _array(np.load(file, allow_pickle=False), key, where)
        except DataError:
            raise
        except ValueError as e:
            if "allow_pickle" in str(e):
                raise DataError(f"{where}: holds Python objects (a pickle); refusing to "
                                f"load it: save plain numeric arrays") from None
            raise DataError(f"{where}: not a readable .npy file ({one_line(e)})") from None
        except Exception as e:  # OSError, EOFError
            raise DataError(f"{where}: cannot read it ({type(e).__name__}: "
                            f"{one_line(e)})") from None
    return out


def _image_shape(arrays, where: str) -> tuple[int, int] | None:
    shape = arrays.get("image_shape")
    if shape is None:
        return None
    if shape.dtype.kind not in "iu" or shape.shape != (2,) or (shape <= 0).any():
        raise DataError(f"{where}: image_shape must be two positive integers [height, "
                        f"width], got {shape.dtype} of shape {shape.shape}")
    return int(shape[0]), int(shape[1])


def _features(x: np.ndarray, key: str, image_shape, where: str) -> np.ndarray:
    """Check one feature array; returns it ``(N, D)``, uint8 or float32."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: {key} must hold real numbers, got dtype {x.dtype}")
    if image_shape is not None:
        d = math.prod(image_shape)
        if x.ndim == 3 and x.shape[1:] == image_shape:
            x = x.reshape(len(x), d)
        elif x.ndim != 2 or x.shape[1] != d:
            raise DataError(f"{where}: {key} has shape {x.shape}, which does not match "
                            f"image_shape {image_shape}: expected (N, {image_shape[0]}, "
                            f"{image_shape[1]}) or (N, {d})")
    elif x.ndim != 2:
        raise DataError(f"{where}: {key} has shape {x.shape}, expected 2-D (examples, "
                        f"features); for images (N, H, W) add image_shape=[H, W]")
    if x.shape[1] == 0:
        raise DataError(f"{where}: {key} has no features (shape {x.shape})")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        row = int(np.argmin(np.isfinite(x).all(axis=1)))
        raise DataError(f"{where}: {key} has NaN or infinite values (first in row {row})")
    with np.errstate(over="ignore"):  # reported just below
        x32 = x.astype(np.float32)
    if not np.isfinite(x32).all():
        raise DataError(f"{where}: {key} has values beyond float32's range")
    return x32


def _labels(y: np.ndarray, key: str, where: str) -> np.ndarray:
    if y.dtype.kind not in "iu":
        raise DataError(f"{where}: {key} must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise DataError(f"{where}: {key} has shape {y.shape}, expected 1-D (one class "
                        f"label per example)")
    if y.size and y.min() < 0:
        i = int(np.argmax(y < 0))
        raise DataError(f"{where}: {key} has a negative label {int(y[i])} at index {i}; "
                        f"labels must be 0, 1, 2, ...")
    if y.size and y.max() >= MAX_CLASSES:
        i = int(np.argmax(y >= MAX_CLASSES))
        raise DataError(f"{where}: {key} has label {int(y[i])} at index {i}; labels must "
                        f"be below {MAX_CLASSES}")
    return y.astype(np.int64)


def _digest(arrays: dict[str, np.ndarray], image_shape) -> str:
    """SHA-256 over the checked arrays' dtypes, shapes and bytes, and the image shape."""
    h = hashlib.sha256(b"nnkd npz dataset\n")
    for key in KEYS:
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key} {a.dtype.str} {a.shape}\n".encode())
        h.update(a)
    h.update(f"image_shape {image_shape}\n".encode())
    return h.hexdigest()[:16]


def load_npz(name: str, log: Callable[[str], object] | None = print) -> Dataset:
    """Read and check the user's dataset ``npz:PATH`` (file or folder); see the module."""
    path = npz_path(name)
    where = show(path)
    if path.is_dir():
        raw, kind = _read_folder(path), "folder"
    elif path.is_file():
        raw, kind = _read_file(path, where), "file"
    elif path.exists():  # a FIFO would block the read forever, a device never end
        raise DataError(f"{where}: not a regular file or folder; give {NPZ_PREFIX}PATH to an "
                        f".npz file or a folder of .npy files")
    else:
        why = "a broken symbolic link or a loop of them" if path.is_symlink() else "no such file or folder"
        raise DataError(f"{where}: {why}; give {NPZ_PREFIX}PATH to an "
                        f".npz file or a folder of .npy files")
    image_shape = _image_shape(raw, where)
    arrays = {}
    for x_key, y_key, split in (("x_train", "y_train", "train"), ("x_test", "y_test", "test")):
        x = arrays[x_key] = _features(raw[x_key], x_key, image_shape, where)
        y = arrays[y_key] = _labels(raw[y_key], y_key, where)
        if len(x) != len(y):
            raise DataError(f"{where}: {x_key} has {len(x)} rows but {y_key} has {len(y)} "
                            f"labels")
        if not len(x):
            raise DataError(f"{where}: the {split} set is empty ({x_key} has 0 rows)")
    n_train, n_test = arrays["x_train"].shape[1], arrays["x_test"].shape[1]
    if n_train != n_test:
        raise DataError(f"{where}: x_test has {n_test} features but x_train has {n_train}")
    if arrays["x_train"].dtype != arrays["x_test"].dtype:
        raise DataError(f"{where}: x_train is {raw['x_train'].dtype} but x_test is "
                        f"{raw['x_test'].dtype}; give both the same dtype")
    classes = np.unique(arrays["y_train"])
    if len(classes) < 2:
        raise DataError(f"{where}: y_train has only one class ({int(classes[0])}); a "
                        f"classifier needs at least 2")
    n_classes = max(2, int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1)
    ds = Dataset(name=name, train_features=arrays["x_train"], train_labels=arrays["y_train"],
                 test_features=arrays["x_test"], test_labels=arrays["y_test"],
                 source=f"npz {kind} {where}", stored_at=path,
                 checksum=_digest(arrays, image_shape), n_classes=n_classes,
                 image_shape=image_shape)
    if log is not None:
        log(f"{name}: {kind} {where}: ok, {len(ds.train_features)} train + "
            f"{len(ds.test_features)} test examples, {ds.n_features} features, "
            f"{n_classes} classes")
    return ds
