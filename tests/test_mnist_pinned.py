"""MNIST as the canonical files hold it, record by record: the first and last labels and a few
pixels of each split, read here from the raw IDX files with nothing of nnkd's reader, then
compared with what nnkd's loader and the arrays given to training hold.  An image paired
with the wrong label anywhere between the file and the training step fails here."""

import struct

import numpy as np
import pytest

from nnkd import data
from nnkd.backend import get_backend
from nnkd.data import device_data

pytestmark = pytest.mark.mnist

# From the canonical files (their SHA-256 are checked by every load).
FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
LAST_TRAIN_LABELS = [8, 3, 5, 6, 8]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
LAST_TEST_LABELS = [2, 3, 4, 5, 6]
# (split, index): (sum of its pixels, pixels > 0, row 14 columns 10..17)
PIXELS = {
    ("train", 0): (27525, 166, [0, 0, 0, 81, 240, 253, 253, 119]),
    ("train", 1): (31095, 176, [0, 0, 0, 0, 0, 0, 0, 0]),
    ("train", 59999): (20920, 143, [190, 196, 14, 2, 97, 254, 252, 146]),
    ("test", 0): (18454, 116, [0, 0, 0, 0, 0, 0, 59, 249]),
    ("test", 1): (28850, 165, [198, 253, 253, 141, 0, 0, 0, 0]),
    ("test", 9999): (41833, 240, [132, 64, 0, 0, 18, 43, 157, 171]),
}
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def raw_split(split):
    """(images (N, 28, 28), labels (N,)) straight from the IDX bytes in the data cache."""
    folder = data.default_root() / "mnist"
    images_file, labels_file = FILES[split]
    raw = (folder / images_file).read_bytes()
    magic, n, rows, cols = struct.unpack(">4I", raw[:16])
    assert (magic, rows, cols) == (2051, 28, 28)
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)
    raw = (folder / labels_file).read_bytes()
    magic, m = struct.unpack(">2I", raw[:8])
    assert magic == 2049 and m == n
    return images, np.frombuffer(raw, np.uint8, offset=8)


@pytest.fixture(scope="module")
def mnist():
    return data.load("mnist", log=lambda line: None)


@pytest.fixture(scope="module")
def raw(mnist):  # after the loader: it fetches and verifies the files if need be
    return {split: raw_split(split) for split in FILES}


def test_raw_files_hold_the_known_records(raw):
    (train_x, train_y), (test_x, test_y) = raw["train"], raw["test"]
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y[:10].tolist() == FIRST_TRAIN_LABELS and train_y[-5:].tolist() == LAST_TRAIN_LABELS
    assert test_y[:10].tolist() == FIRST_TEST_LABELS and test_y[-5:].tolist() == LAST_TEST_LABELS
    for (split, i), (total, lit, row) in PIXELS.items():
        image = raw[split][0][i]
        assert (int(image.sum(dtype=np.int64)), int((image > 0).sum()), image[14, 10:18].tolist()) \
            == (total, lit, row), (split, i)


def test_loader_gives_the_files_record_for_record(mnist, raw):
    for split, (images, labels) in (("train", (mnist.train_features, mnist.train_labels)),
                                    ("test", (mnist.test_features, mnist.test_labels))):
        raw_x, raw_y = raw[split]
        assert images.shape == (len(raw_x), 784)
        np.testing.assert_array_equal(labels, raw_y, err_msg=split)
        np.testing.assert_array_equal(images, raw_x.reshape(len(raw_x), 784), err_msg=split)


def test_training_arrays_keep_each_image_with_its_label(mnist, raw):
    """What training and evaluation receive (first 5,000 images, the last 1,000 of them held
    out for validation): float32 pixels / 255, each beside its own label."""
    d = device_data(mnist, get_backend("numpy"), validation=1000, train_limit=5000)
    raw_x, raw_y = raw["train"]
    assert d["x_train"].shape == (4000, 784) and d["x_val"].shape == (1000, 784)
    np.testing.assert_array_equal(d["y_train"], raw_y[:4000])
    np.testing.assert_array_equal(d["y_val"], raw_y[4000:5000])
    np.testing.assert_array_equal(d["y_test"], raw["test"][1])
    for key, images in (("x_train", raw_x[:4000]), ("x_val", raw_x[4000:5000]), ("x_test", raw["test"][0])):
        assert d[key].dtype == np.float32
        np.testing.assert_array_equal(d[key], images.reshape(len(images), 784) / np.float32(255), err_msg=key)
    assert d["y_train"][:10].tolist() == FIRST_TRAIN_LABELS
    assert round(float(d["x_train"][0].sum()) * 255) == PIXELS["train", 0][0]
    assert round(float(d["x_test"][0].sum()) * 255) == PIXELS["test", 0][0]
