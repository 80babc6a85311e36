"""The Python API's contract: ``nnkd.train`` checks every input before any work and answers a
mistake with one UserError line, as the command line does."""

import numpy as np
import pytest

from nnkd import TrainConfig, get_backend, train
from nnkd.errors import UserError
from nnkd.files import RunLock

BE = get_backend("numpy")
RNG = np.random.default_rng(0)
X = RNG.random((200, 64), dtype=np.float32)
Y = RNG.integers(0, 3, 200)
GOOD = dict(x_train=X, y_train=Y, x_test=X[:50], y_test=Y[:50])
CFG = TrainConfig(arch="64-16-3", epochs=1, batch_size=50)

CASES = {
    "float labels": (dict(GOOD, y_train=Y.astype(float)), "labels are class numbers"),
    "bool labels": (dict(GOOD, y_train=Y > 0), "labels are class numbers"),
    "fewer labels than images": (dict(GOOD, y_train=Y[:100]), "one label per example"),
    "uint8 images": (dict(GOOD, x_train=(X * 255).astype(np.uint8)), "to_float32"),
    "a list": (dict(GOOD, x_train=X.tolist()), "is a list"),
    "label -1": (dict(GOOD, y_train=np.where(Y == 0, -1, Y)), "holds label -1"),
    "test label 99": (dict(GOOD, y_test=np.where(Y[:50] == 0, 99, Y[:50])), "holds label 99"),
    "NaN in x_test": (dict(GOOD, x_test=np.where(X[:50] > .99, np.nan, X[:50]).astype(np.float32)), "NaN"),
    "no y_test": ({k: v for k, v in GOOD.items() if k != "y_test"}, "no 'y_test'"),
    "other feature counts": (dict(GOOD, x_test=X[:50, :32].copy()), "32 features"),
    "more classes than outputs": (dict(GOOD, n_classes=10), "ends with 10"),
}


@pytest.mark.parametrize("name", CASES)
def test_bad_data_is_one_line_before_any_work(name, tmp_path):
    data, words = CASES[name]
    with pytest.raises(UserError, match=words):
        train(CFG, BE, data, tmp_path / "s", log=lambda s: None)
    assert not (tmp_path / "s").exists()  # nothing written


@pytest.mark.parametrize("logits, words", [
    (np.zeros((10, 3), np.float32), "10 images x 3 classes"),
    (np.full((200, 3), np.nan, np.float32), "NaN"),
    (np.full((200, 3), 1 / 3, np.float32), "look like probabilities"),
    (np.zeros((9, 200, 3), np.float32), "shift"),
])
def test_bad_teacher_logits_are_one_line(logits, words, tmp_path):
    with pytest.raises(UserError, match=words):
        train(CFG, BE, GOOD, tmp_path / "s", teacher_logits=logits, log=lambda s: None)


def test_three_classes_and_numpy_scalars_in_the_settings_train(tmp_path):
    cfg = TrainConfig(arch="64-16-3", epochs=np.int64(2), batch_size=50, lr=np.float32(0.1))
    _, summary = train(cfg, BE, GOOD, tmp_path / "s", log=lambda s: None)
    assert summary["epochs"] == 2 and 0 <= summary["test_errors"] <= 50


def test_a_second_trainer_in_the_same_folder_is_refused(tmp_path):
    with RunLock(tmp_path / "s"):
        with pytest.raises(UserError, match="in use by process"):
            train(CFG, BE, GOOD, tmp_path / "s", log=lambda s: None)
