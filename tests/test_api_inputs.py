"""The Python API's contract: ``nnkd.train`` checks every input before any work and answers a
mistake with one UserError line, as the command line does."""

import re

import numpy as np
import pytest

from nnkd import TrainConfig, get_backend, train
from nnkd.errors import UserError
from nnkd.runlock import RunLock

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
    (np.zeros((10, 3), np.float32), "logits for 10 images, but the transfer set has 200"),
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


@pytest.mark.parametrize("cfg, backend, words", [
    ({"arch": "64-16-3"}, BE, "cfg is a dict: give a TrainConfig"),
    (CFG, np, "backend is a module: give get_backend('numpy')"),
    (CFG, "torch", "unknown backend 'torch'"),
])
def test_a_config_or_backend_of_the_wrong_kind_is_one_line(cfg, backend, words, tmp_path):
    with pytest.raises(UserError, match=re.escape(words)):
        train(cfg, backend, GOOD, tmp_path / "s", log=lambda s: None)
    assert not (tmp_path / "s").exists()


def test_a_distilled_model_with_both_loss_weights_0_is_one_line(tmp_path):
    cfg = TrainConfig(arch="64-16-3", epochs=1, batch_size=50, soft_weight=0.0, hard_weight=0.0)
    with pytest.raises(UserError, match="`soft_weight` and `hard_weight` are both 0"):
        train(cfg, BE, GOOD, tmp_path / "s", teacher_logits=RNG.normal(size=(200, 3)).astype(np.float32))
    _, summary = train(cfg, BE, GOOD, tmp_path / "t", log=lambda s: None)  # hard labels: weights unused
    assert summary["epochs"] == 1


def test_the_backend_may_be_given_by_name(tmp_path):
    net, summary = train(CFG, "numpy", GOOD, tmp_path / "s", log=lambda s: None)
    again, _ = train(CFG, BE, GOOD, tmp_path / "t", log=lambda s: None)
    np.testing.assert_array_equal(net.predict_logits(X), again.predict_logits(X))


@pytest.mark.parametrize("rows, words", [
    (X[:, :5], "X has shape (200, 5): the model takes rows of 64 features"),
    (X[0], "X has shape (64,): the model takes rows of 64 features"),
    ((X * 255).astype(np.uint8), "X is uint8: give float32 features (X / np.float32(255) for pixels)"),
    (Y.reshape(-1, 1).repeat(64, 1), "X is int64: give float32 features (X.astype(np.float32))"),
    (X.tolist(), "X is a list: give a numpy array of shape (examples, 64)"),
])
def test_predicting_on_rows_of_the_wrong_kind_is_one_line(rows, words, tmp_path):
    net, _ = train(CFG, BE, GOOD, tmp_path / "s", log=lambda s: None)
    for predict in (net.predict, net.predict_logits):
        with pytest.raises(UserError, match=re.escape(words)):
            predict(rows)
    assert net.predict(X[:0]).shape == (0,) and net.predict(X.astype(np.float64)).shape == (200,)
