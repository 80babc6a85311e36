"""The two readings of dropout (``dropout_scaling``): inverted dropout ("train") and the paper's
("test"), the same model up to the keep probability; evaluation, checkpoints and both exports
fold the paper's scaling in."""

import json
import subprocess
import sys

import numpy as np
import pytest

from nnkd.backend import get_backend
from nnkd.config import TrainConfig
from nnkd.checks import SettingError
from nnkd.layers import Dropout
from nnkd.network import Network
from nnkd.optim import SGD, MaxNorm

from .conftest import ROOT, host

NUMPY = get_backend("numpy")
SIZES = [12, 9, 7, 4]
RATES = (0.2, 0.5)  # input, hidden


def pair(seed=3, dtype=np.float64, inputs="unit"):
    """A network under each reading, with the inverted one's weights ``keep`` times the paper's
    (the same model) and the same dropout stream."""
    paper = Network(SIZES, NUMPY, seed=seed, dropout_input=RATES[0], dropout_hidden=RATES[1],
                    dtype=dtype, inputs=inputs, dropout_scaling="test")
    inverted = Network(SIZES, NUMPY, seed=seed, dropout_input=RATES[0], dropout_hidden=RATES[1],
                       dtype=dtype, inputs=inputs, dropout_scaling="train")
    rng = np.random.default_rng(seed)
    for keep, dp, di in zip(keeps(paper), paper.dense, inverted.dense):
        dp.b.data[...] = rng.normal(0, 0.1, dp.b.data.shape)  # nonzero biases: they must not be scaled
        di.b.data[...] = dp.b.data
        di.W.data[...] = keep * dp.W.data
    for net in (paper, inverted):
        net.set_rng(NUMPY.rng(11))
    return paper, inverted


def keeps(net):
    return [1.0 - r for r in net.dropout_rates]


def test_the_paper_reading_keeps_units_unscaled_in_training_and_scales_them_in_evaluation():
    d = Dropout(0.5, scaling="test")
    d.rng = NUMPY.rng(0)
    x = np.random.default_rng(0).random((200, 30)).astype(np.float32) + 1
    y = d.forward(x.copy(), train=True)
    kept = y != 0
    assert 0.4 < kept.mean() < 0.6
    np.testing.assert_array_equal(y[kept], x[kept])  # no 1 / keep
    original = x.copy()
    np.testing.assert_array_equal(d.forward(x, train=False), np.float32(0.5) * original)
    np.testing.assert_array_equal(x, original)  # the caller's array is left as it was
    with pytest.raises(ValueError, match="dropout scaling"):
        Dropout(0.5, scaling="both")


@pytest.mark.parametrize("inputs", ["unit", "centered"])
def test_the_two_readings_are_one_model_up_to_the_keep_probability(inputs):
    paper, inverted = pair(inputs=inputs)
    x = np.random.default_rng(1).random((16, SIZES[0]))
    y = np.random.default_rng(2).integers(0, SIZES[-1], 16)
    np.testing.assert_allclose(paper.predict_logits(x), inverted.predict_logits(x), rtol=1e-12, atol=1e-12)
    grads = {}
    for name, net in (("paper", paper), ("inverted", inverted)):
        z = net.forward(x.copy(), train=True)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(16), y] -= 1
        net.zero_grad()
        net.backward(p / 16)
        grads[name] = (z, [(host(d.W.grad).copy(), host(d.b.grad).copy()) for d in net.dense])
    np.testing.assert_allclose(grads["paper"][0], grads["inverted"][0], rtol=1e-12, atol=1e-12)
    for keep, (gWp, gbp), (gWi, gbi) in zip(keeps(paper), grads["paper"][1], grads["inverted"][1]):
        np.testing.assert_allclose(gWp, keep * gWi, rtol=1e-10, atol=1e-14)  # dL/dW_paper = keep dL/dW
        np.testing.assert_allclose(gbp, gbi, rtol=1e-10, atol=1e-14)
    # One momentum-SGD update under each: the paper's weights move at lr / keep^2 to stay the
    # same model (the step differs by 1/keep^2, as the docs say); the biases at the same lr.
    lr = 0.3
    for keep, dp, di in zip(keeps(paper), paper.dense, inverted.dense):
        SGD([dp.W], form="paper").step(lr / keep**2, 0.5)
        SGD([dp.b], form="paper").step(lr, 0.5)
        SGD([di.W, di.b], form="paper").step(lr, 0.5)
        np.testing.assert_allclose(keep * dp.W.data, di.W.data, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(dp.b.data, di.b.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(paper.predict_logits(x), inverted.predict_logits(x), rtol=1e-10, atol=1e-12)


def test_max_norm_bounds_the_training_time_weights():
    """A bound B on the paper's weights is the bound keep * B on the inverted ones."""
    paper, inverted = pair()
    for d in paper.dense:
        d.W.data *= 1000  # far over the bound
    for keep, dp, di in zip(keeps(paper), paper.dense, inverted.dense):
        di.W.data[...] = keep * dp.W.data
    MaxNorm(4.0, squared=False).apply(paper.dense)
    norms = [np.linalg.norm(d.W.data, axis=0).max() for d in paper.dense]
    assert max(norms[:-1]) == pytest.approx(4.0)
    for keep, dp, di in zip(keeps(paper), paper.dense[:-1], inverted.dense[:-1]):
        MaxNorm(4.0 * keep, squared=False, layers="all").apply([di])
        np.testing.assert_allclose(keep * dp.W.data, di.W.data, rtol=1e-12)


def test_plain_layers_fold_the_scaling_and_the_input_map():
    for inputs in ("unit", "centered"):
        paper, _ = pair(inputs=inputs)
        x = np.random.default_rng(4).random((10, SIZES[0]))
        h = x
        layers = paper.plain_layers()
        for i, (W, b) in enumerate(layers):
            h = h @ W + b
            if i < len(layers) - 1:
                h = np.maximum(h, 0)
        np.testing.assert_allclose(h, paper.predict_logits(x), rtol=1e-12, atol=1e-12)


def test_the_setting_is_checked_and_reaches_the_network():
    with pytest.raises(SettingError, match="dropout_scaling"):
        TrainConfig(dropout_scaling="inverted").validate()
    cfg = TrainConfig(arch="12-9-4", dropout_hidden=0.5, dropout_scaling="test")
    net = Network.from_settings(cfg, NUMPY)
    assert net.dropout_scaling == "test" and all(d.scaling == "test" for d in net.dropouts)


def run(*args):
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.mnist
def test_a_paper_dropout_model_trains_evaluates_and_exports_as_a_plain_network(tmp_path):
    out = tmp_path / "t"
    r = run("train-teacher", "--preset", "smoke", "--epochs", "2", "--dropout-scaling", "test",
            "--lr", "0.01", "--out", str(out))
    assert r.returncode == 0, r.stderr
    ckpt = out / "teacher" / "checkpoint.npz"
    assert json.loads((out / "teacher" / "config.json").read_text())["dropout_scaling"] == "test"
    errors = json.loads((out / "teacher" / "metrics.jsonl").read_text().splitlines()[-1])["test_errors"]
    r = run("evaluate", str(ckpt))
    assert r.returncode == 0 and f"{errors}" in r.stdout, r.stdout + r.stderr
    r = run("export", str(ckpt), str(tmp_path / "plain.npz"))
    assert r.returncode == 0, r.stderr
    from nnkd.checkpoint import load, load_model
    arrays, meta = load(tmp_path / "plain.npz")
    assert meta["config"]["dropout_scaling"] == "train" and meta["folded"] == {"dropout_scaling": "test"}
    original, _ = load_model(ckpt, NUMPY)
    x = np.random.default_rng(0).random((50, 784), dtype=np.float32)
    h = x
    for i in range(3):
        h = h @ arrays[f"W{i}"] + arrays[f"b{i}"]
        h = np.maximum(h, 0) if i < 2 else h
    np.testing.assert_allclose(h, original.predict_logits(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(arrays["W0"], (0.8 * host(original.dense[0].W.data).astype(np.float64))
                                  .astype(np.float32))
    pytest.importorskip("onnxruntime")
    import onnxruntime
    r = run("export", str(ckpt), str(tmp_path / "plain.onnx"), "--format", "onnx")
    assert r.returncode == 0, r.stderr
    session = onnxruntime.InferenceSession(str(tmp_path / "plain.onnx"))
    z = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(z, original.predict_logits(x), rtol=1e-4, atol=1e-5)
