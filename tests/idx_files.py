"""Reading and writing single IDX files, for the tests (nnkd reads a dataset's files whole,
through :func:`nnkd.data.load`)."""

import os
from pathlib import Path

import numpy as np

from nnkd.data import DataError, check_labels, idx_bytes, read_idx
from nnkd.data.common import REFETCH, show, write_atomically


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file: uint8 ``(count,)``, every value checked to be in 0..9."""
    return check_labels(read_idx(path), show(path))


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file: uint8 ``(count, rows, cols)``."""
    images = read_idx(path)
    if images.ndim != 3:
        raise DataError(f"{show(path)}: holds labels {images.shape}, expected an image "
                        f"file; {REFETCH}")
    return images


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an uncompressed canonical IDX file (see :func:`idx_bytes`)."""
    write_atomically(Path(path), idx_bytes(array))
