"""IDX files: the canonical file names, parsing (raw or gzip), checks and the canonical encoding.

Images are uint8 ``(count, rows, cols)`` (magic 2051), labels uint8 ``(count,)``
(magic 2049).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..install import command_name
from .common import GZIP_MAGIC, REFETCH, DataError, one_line, read_bytes, show

IMAGES_MAGIC = 0x00000803  # 2051: unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # 2049: unsigned bytes, 1 dimension (count,)
NUM_CLASSES = 10

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def gunzip(data: bytes | bytearray, where: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{where}: corrupt gzip data ({one_line(e) or type(e).__name__}); "
                        f"{REFETCH}") from None


def parse_idx(data: bytes | bytearray, where: str) -> np.ndarray:
    """Parse the bytes of an IDX file (raw, or gzip: detected by its magic bytes 1f 8b).

    Returns uint8 images ``(count, rows, cols)`` for magic 2051 or labels ``(count,)``
    for magic 2049.  The header's dimensions must account for exactly all the data.
    ``where`` names the file in error messages.  The array shares memory with ``data``
    when ``data`` is a writable buffer, otherwise it is a copy.
    """
    if data[:2] == GZIP_MAGIC:
        data = gunzip(data, where)
    if len(data) < 4:
        raise DataError(f"{where}: truncated: {len(data)} bytes, too short for an IDX "
                        f"header; {REFETCH}")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(f"{where}: wrong magic number 0x{magic:08x} (expected 0x00000803 "
                        f"for images or 0x00000801 for labels), not an MNIST IDX file; "
                        f"{REFETCH}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated: {len(data)} bytes, shorter than its "
                        f"{header}-byte IDX header; {REFETCH}")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)
    body = len(data) - header
    if body != size:
        problem = "truncated" if body < size else f"{body - size} trailing bytes"
        raise DataError(f"{where}: size mismatch ({problem}): header says "
                        f"{' x '.join(map(str, dims))} = {size} data bytes but the file "
                        f"holds {body}; {REFETCH}")
    array = np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims)
    return array if array.flags.writeable else array.copy()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip): uint8 ``(count, rows, cols)`` or ``(count,)``."""
    path = Path(path)
    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise DataError(f"{show(path)}: no such file; run `{command_name()} data` to "
                        f"fetch the data") from None
    except OSError as e:
        raise DataError(f"{show(path)}: cannot read it ({one_line(e.strerror or e)}); "
                        f"check its permissions") from None
    return parse_idx(data, show(path))


def check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Check that ``labels`` is a 1-D label array with every value in 0..9; returns it."""
    if labels.ndim != 1:
        raise DataError(f"{where}: holds images {labels.shape}, expected a label file; "
                        f"{REFETCH}")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        i = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(f"{where}: label {int(labels[i])} at index {i} is outside "
                        f"0..{NUM_CLASSES - 1}; {REFETCH}")
    return labels


def idx_bytes(array: np.ndarray) -> bytes:
    """The canonical uncompressed IDX encoding of uint8 images ``(count, rows, cols)``
    or labels ``(count,)``."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"IDX needs uint8 images (count, rows, cols) or labels (count,), "
                         f"got {array.dtype} {array.shape}")
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array).tobytes()
