"""Tests for a user's dataset, ``npz:PATH`` (nnkd.data.npz): the shipped 8x8 digits file,
the folder form, the checksum, and one clear error line for every kind of bad file."""

import importlib.util
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnkd import data
from nnkd.data import DataError
from nnkd.errors import UserError
from nnkd.install import example_data

DIGITS = example_data("digits8x8")  # shipped with nnkd; made by tests/data/make_digits8x8.py
DIGITS_NAME = f"npz:{DIGITS}"
DIGITS_CHECKSUM = "ce7cbc59fc2f9a7c"  # pinned: a change breaks every checkpoint's data check


def quiet(line):
    pass


def small(**changes):
    """A valid little dataset (16 features, 3 classes), with ``changes`` applied
    (a value of None drops the key)."""
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.normal(size=(12, 16)), "y_train": np.arange(12) % 3,
              "x_test": rng.normal(size=(6, 16)), "y_test": np.arange(6) % 3}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


def savez(path, arrays):
    np.savez(path, **arrays)
    return path


# ------------------------------------------------------------------ the digits file


def test_digits8x8_loads_like_mnist_but_8x8():
    logs = []
    ds = data.load(DIGITS_NAME, log=logs.append)
    assert ds.train_features.shape == (1500, 64) and ds.train_features.dtype == np.uint8
    assert ds.test_features.shape == (500, 64) and ds.test_features.dtype == np.uint8
    assert ds.train_labels.shape == (1500,) and ds.test_labels.shape == (500,)
    assert ds.train_labels.dtype.kind == "i"
    assert ds.n_features == 64 and ds.n_classes == 10 and ds.image_shape == (8, 8)
    assert ds.name == DIGITS_NAME and ds.stored_at == DIGITS
    assert sorted(np.unique(ds.train_labels)) == list(range(10))
    assert ds.checksum == DIGITS_CHECKSUM == data.checksum(DIGITS_NAME)
    assert ds.checksum != data.checksum("mnist") and ds.checksum != data.checksum("fashion-mnist")
    assert len(logs) == 1 and "ok, 1500 train + 500 test examples, 64 features, 10 classes" in logs[0]
    lines = data.describe(ds)
    assert lines[0] == f"dataset   {DIGITS_NAME} (checksum {DIGITS_CHECKSUM})"
    assert any(line.startswith("train     1500 images x 64 pixels (8x8), uint8") for line in lines)
    counts = " ".join(map(str, np.bincount(ds.train_labels, minlength=10)))
    assert f"train per class 0..9: {counts}" in lines
    x = data.to_float32(ds.test_features)
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0


def test_digits8x8_file_is_what_its_script_makes():
    spec = importlib.util.spec_from_file_location("make_digits8x8", Path(__file__).parent / "data" / "make_digits8x8.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made = module.make()
    with np.load(DIGITS, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(made)
        for key, array in made.items():
            np.testing.assert_array_equal(z[key], array)
            assert z[key].dtype == array.dtype


def test_folder_form_and_flat_images_give_the_same_data_and_checksum(tmp_path):
    """The file stores (N, 8, 8) images; the folder (N, 64) ones, and int32 labels."""
    with np.load(DIGITS, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    folder = tmp_path / "digits"
    folder.mkdir()
    for key, array in arrays.items():
        shaped = array.reshape(len(array), -1) if key.startswith("x_") else array
        np.save(folder / f"{key}.npy", shaped.astype(np.int32) if key.startswith("y_") else shaped)
    ds = data.load(f"npz:{folder}", log=quiet)
    assert ds.checksum == DIGITS_CHECKSUM and ds.image_shape == (8, 8)
    assert ds.source == f"npz folder {folder}" and ds.train_features.shape == (1500, 64)
    np.testing.assert_array_equal(ds.train_features, arrays["x_train"].reshape(-1, 64))


def test_checksum_follows_the_data(tmp_path):
    a = data.load(f"npz:{savez(tmp_path / 'a.npz', small())}", log=quiet).checksum
    x = small()["x_train"]
    x[3, 5] += 1e-3
    assert data.load(f"npz:{savez(tmp_path / 'b.npz', small(x_train=x))}", log=quiet).checksum != a
    assert data.load(f"npz:{savez(tmp_path / 'c.npz', small())}", log=quiet).checksum == a
    shaped = small(image_shape=np.array([4, 4]))  # the same numbers, said to be an image
    assert data.load(f"npz:{savez(tmp_path / 'd.npz', shaped)}", log=quiet).checksum != a


def test_float_features_are_used_as_they_are(tmp_path):
    arrays = small(y_test=np.array([0, 1, 4, 2, 1, 0]))
    ds = data.load(f"npz:{savez(tmp_path / 'f.npz', arrays)}", log=quiet)
    assert ds.image_shape is None  # 16 features, a perfect square, is still no image
    assert ds.n_features == 16 and ds.n_classes == 5  # max label over train and test, + 1
    assert ds.train_features.dtype == np.float32
    x = data.to_float32(ds.train_features)
    np.testing.assert_array_equal(x, arrays["x_train"].astype(np.float32))  # not scaled
    assert x is not ds.train_features
    assert any(line.startswith("train     12 examples x 16 features, float32")
               for line in data.describe(ds))
    ints = data.load(f"npz:{savez(tmp_path / 'i.npz', small(x_train=np.arange(12 * 16).reshape(12, 16)))}",
                     log=quiet)
    assert ints.train_features.dtype == np.float32 and ints.train_features.max() == 191  # not scaled


# -------------------------------------------------------------------- bad inputs


def valid_npz_bytes():
    buf = io.BytesIO()
    np.savez(buf, **small())
    return buf.getvalue()


def member_crc_broken():
    raw = bytearray(valid_npz_bytes())
    raw[200] ^= 0xFF  # inside x_train.npy, the first member (stored, not compressed)
    return bytes(raw)


def zip_with(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buf.getvalue()


def npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def truncated(seed):
    raw = valid_npz_bytes()
    return raw[:int(np.random.default_rng(seed).integers(1, len(raw)))]


BAD_FILES = {  # case: (file contents, or arrays for np.savez; words the message must hold)
    "missing file": (None, "no such file"),
    "empty file": (b"", "not an .npz file (an empty file)"),
    "random bytes": (np.random.default_rng(1).bytes(300), "not an .npz file (not a zip"),
    "a .npy file": (npy_bytes(np.zeros((3, 4))), "not an .npz file (a single .npy array)"),
    "a JSON file": (b'{"x_train": [[1, 2]], "y_train": [0]}', "not an .npz file"),
    "truncated at byte A": (truncated(1), ".npz file"),
    "truncated at byte B": (truncated(2), ".npz file"),
    "truncated at byte C": (truncated(3), ".npz file"),
    "member fails its CRC": (member_crc_broken(), "x_train is corrupt"),
    "zip of other files": (zip_with({"readme.txt": "hi"}), "missing x_train, y_train, x_test, y_test"),
    "member not .npy": (zip_with({k + ".npy": pickle.dumps([1]) for k in small()}), "x_train is not a .npy array"),
    "pickle inside": (small(x_train=np.array([{"a": 1}] * 12, dtype=object)), "x_train holds Python objects"),
    "missing keys": (small(x_test=None, y_test=None), "missing x_test, y_test"),
    "x and y lengths": (small(y_train=np.arange(11) % 3), "x_train has 12 rows but y_train has 11"),
    "x 3-D without image_shape": (small(x_train=np.zeros((12, 4, 4))), "expected 2-D"),
    "x 1-D": (small(x_train=np.zeros(12)), "expected 2-D"),
    "x not matching image_shape": (small(image_shape=np.array([5, 5])), "does not match image_shape (5, 5)"),
    "image_shape not [H, W]": (small(image_shape=np.array([16])), "image_shape must be two positive"),
    "image_shape floats": (small(image_shape=np.array([4.0, 4.0])), "image_shape must be two positive"),
    "labels float": (small(y_train=np.arange(12) % 3 * 1.0), "integer class labels, got dtype float64"),
    "labels bool": (small(y_train=np.arange(12) % 2 == 0), "integer class labels, got dtype bool"),
    "labels one-hot": (small(y_train=np.eye(3, dtype=np.int64)[np.arange(12) % 3]), "expected 1-D"),
    "labels negative": (small(y_test=np.array([0, 1, -1, 2, 0, 1])), "y_test has a negative label -1 at index 2"),
    "labels huge": (small(y_train=np.arange(12) * 10**6), "labels must be below 65536"),
    "NaN features": (small(x_train=np.where(np.eye(12, 16) > 0, np.nan, 0.0)), "NaN or infinite"),
    "infinite features": (small(x_test=np.full((6, 16), -np.inf)), "x_test has NaN or infinite"),
    "beyond float32": (small(x_train=np.full((12, 16), 1e300)), "beyond float32's range"),
    "complex features": (small(x_train=np.zeros((12, 16), complex)), "real numbers, got dtype complex128"),
    "text features": (small(x_train=np.full((12, 16), "a")), "real numbers"),
    "empty train set": (small(x_train=np.zeros((0, 16)), y_train=np.zeros(0, int)), "train set is empty"),
    "empty test set": (small(x_test=np.zeros((0, 16)), y_test=np.zeros(0, int)), "test set is empty"),
    "no features": (small(x_train=np.zeros((12, 0))), "no features"),
    "one class": (small(y_train=np.full(12, 2)), "only one class (2)"),
    "test width": (small(x_test=np.zeros((6, 15))), "x_test has 15 features but x_train has 16"),
    "uint8 train, float test": (small(x_train=np.zeros((12, 16), np.uint8)), "give both the same dtype"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_npz_file_is_one_user_error_line_naming_it(tmp_path, case):
    content, words = BAD_FILES[case]
    path = tmp_path / "user-data.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        savez(path, content)
    with pytest.raises(DataError) as e:
        data.load(f"npz:{path}", log=quiet)
    message = str(e.value)
    assert isinstance(e.value, UserError) and e.value.exit_code == 2
    assert "\n" not in message and str(path) in message, message
    assert words in message, message
    with pytest.raises(DataError) as again:  # the teacher's data check reads it the same way
        data.checksum(f"npz:{path}")
    assert str(again.value) == message


def bad_folder(folder, case):
    arrays = small()
    if case == "missing x_test.npy":
        del arrays["x_test"]
    for key, array in arrays.items():
        np.save(folder / f"{key}.npy", array)
    if case == "not a .npy file":
        (folder / "y_train.npy").write_text("0,1,2\n")
        return folder / "y_train.npy", "not a .npy file"
    if case == "empty .npy file":
        (folder / "x_test.npy").write_bytes(b"")
        return folder / "x_test.npy", "not a .npy file (an empty file)"
    if case == "truncated .npy file":
        path = folder / "x_train.npy"
        path.write_bytes(path.read_bytes()[:300])
        return path, "but holds 172 bytes: it is cut off or damaged"
    if case == "pickle in a .npy file":
        np.save(folder / "x_train.npy", np.array([None] * 12, dtype=object), allow_pickle=True)
        return folder / "x_train.npy", "holds Python objects"
    if case == "an .npz named .npy":
        with open(folder / "y_test.npy", "wb") as f:  # np.savez would add ".npz" to a name
            np.savez(f, y_test=arrays["y_test"])
        return folder / "y_test.npy", "not a .npy file"
    if case == "lengths differ":
        np.save(folder / "y_test.npy", arrays["y_test"][:5])
        return folder, "x_test has 6 rows but y_test has 5"
    return folder, "missing x_test.npy"


@pytest.mark.parametrize("case", ["missing x_test.npy", "not a .npy file", "empty .npy file",
                                  "truncated .npy file", "pickle in a .npy file",
                                  "an .npz named .npy", "lengths differ"])
def test_bad_folder_is_one_user_error_line_naming_the_file(tmp_path, case):
    folder = tmp_path / "user-folder"
    folder.mkdir()
    path, words = bad_folder(folder, case)
    with pytest.raises(DataError) as e:
        data.load(f"npz:{folder}", log=quiet)
    message = str(e.value)
    assert isinstance(e.value, UserError)
    assert "\n" not in message and str(path) in message and words in message, message


def test_unknown_name_mentions_npz():
    with pytest.raises(DataError, match=r"unknown dataset 'digits'.*npz:PATH"):
        data.load("digits", log=quiet)


# ---- through the command line: train a teacher and distill on a dataset that is not MNIST --------

@pytest.mark.slow
def test_distill_on_a_users_npz_dataset(tmp_path):
    from tests.conftest import main_py
    ds = f"npz:{DIGITS}"
    r = main_py("train-teacher", "--dataset", ds, "--preset", "smoke", "--jitter", "0", "--epochs", "20",
                "--out", str(tmp_path / "t"))
    assert r.returncode == 0, r.stderr
    r = main_py("distill", "--dataset", ds, "--preset", "smoke", "--teacher",
                str(tmp_path / "t" / "teacher" / "checkpoint.npz"), "--temperature", "4", "--epochs", "20",
                "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    models = json.loads((tmp_path / "d" / "results.json").read_text())["models"]
    assert models["teacher"]["arch"] == "64-256-256-10"  # the preset's widths, the data's ends
    assert all(m["n_test"] == 500 for m in models.values())
    # of 500 test images; when written: teacher 10, plain 25, distilled 22 (30 epochs)
    assert models["teacher"]["test_errors"] < 40 and models["distilled"]["test_errors"] < 60


def test_bad_npz_through_the_command_line_is_one_line(tmp_path):
    from tests.conftest import capped, error_lines, main_py
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 3)), y_train=np.zeros(5, np.int64), x_test=np.zeros((2, 3)),
             y_test=np.zeros(2, np.int64))
    r = main_py(*capped("train-student", "--dataset", f"npz:{bad}", "--out", str(tmp_path / "run")))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = error_lines(r.stderr)
    assert str(bad) in line
    assert not (tmp_path / "run").exists()
