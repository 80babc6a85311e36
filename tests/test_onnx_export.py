"""``export CKPT DEST.onnx --format onnx``: the ONNX model computes what nnkd computes.

Agreement is checked with onnxruntime on every test image: the arg-max predictions are equal,
and each logit agrees within ``1e-5 * max(1, s)``, where ``s`` is the largest |logit| of its
row.  Why relative: nnkd (NumPy's BLAS) and onnxruntime (MLAS) compute the same float32 dot
products but sum them in a different order, and the rounding error of a float32 sum of ``K``
products grows with the size of the numbers summed (at most about ``K * eps * sum|a_i b_i|``,
``eps = 1.2e-7``), which can exceed the logit itself when terms cancel.  One float32 step (ulp)
at a logit of 39 (the shipped teacher's largest) is 3.8e-6, so a fixed 1e-5 would be 2.6 ulps
there.  For rows whose logits all lie within [-1, 1] the bound is the absolute 1e-5; elsewhere
it is 1e-5 of the row's scale, about 84 float32 ulps of it.  Measured when this was written
(onnxruntime 1.32, CPU): the shipped teacher 7.6e-6 at most (5.5e-7 of its row's scale), which
meets an absolute 1e-5 as well; the distilled student of ``distill --preset smoke`` 1.3e-5 at a
logit of 7.1 (2.1e-6 of its row's scale, 9 of its 100,000 logits above an absolute 1e-5).
"""
import shutil
import sys

import numpy as np
import pytest

from nnkd import TrainConfig, get_backend, softmax, train
from nnkd.checkpoint import load, load_model
from nnkd.cli import main
from nnkd.install import example_data, extra_hint
from tests.conftest import ROOT, error_lines

TEACHER = ROOT / "nnkd" / "pretrained" / "fast-teacher" / "checkpoint.npz"  # 73 test errors
DIGITS = example_data("digits8x8")
RTOL = 1e-5


def quiet(*args, **kw):
    pass


def digits():
    d = np.load(DIGITS)
    return {k: d[k].reshape(len(d[k]), -1).astype(np.float32) / np.float32(255) if k[0] == "x"
            else d[k].astype(np.int64) for k in ("x_train", "y_train", "x_test", "y_test")}


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    """A small trained 64-48-32-10 network with dropout; its checkpoint holds velocity arrays."""
    out = tmp_path_factory.mktemp("digits") / "model"
    cfg = TrainConfig(arch="64-48-32-10", dropout_hidden=0.2, epochs=8, lr=0.1, init_std=0.1)
    train(cfg, get_backend("numpy"), digits(), out, log=quiet)
    return out / "checkpoint.npz"


def export(*args):
    """``main(["export", ...])`` in-process: (exit status, error lines)."""
    return main(["export", *map(str, args)])


def session(path):
    ort = pytest.importorskip("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a shared 2-core machine
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def nnkd_logits(ckpt, x):
    net, _ = load_model(ckpt, get_backend("numpy"))
    return net.predict_logits(x)


def agreement(got, ref):
    """Assert the arg-max predictions are equal and the logits agree (see the module docstring);
    returns (max absolute difference, max difference relative to the row's scale)."""
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    diff = np.abs(got.astype(np.float64) - ref)
    scale = np.maximum(1.0, np.abs(ref).max(axis=1, keepdims=True))
    assert (diff <= RTOL * scale).all(), (diff.max(), (diff / scale).max())
    return float(diff.max()), float((diff / scale).max())


def check_model(ckpt, path, x, n_features, n_classes, label):
    s = session(path)
    (inp,), (out,) = s.get_inputs(), s.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("input", "tensor(float)", ["N", n_features])
    assert (out.name, out.type, out.shape) == ("logits", "tensor(float)", ["N", n_classes])
    ref = nnkd_logits(ckpt, x)
    got = s.run(None, {"input": x})[0]
    worst = agreement(got, ref)
    print(f"{label}: {len(x)} images, argmax equal, max |logit difference| {worst[0]:.2e} "
          f"({worst[1]:.2e} of the row's scale)")
    return s, ref


def test_digits_model_matches_nnkd(digits_ckpt, tmp_path, capsys):
    pytest.importorskip("onnx")
    arrays, _ = load(digits_ckpt)
    assert any(k.startswith("velocity") for k in arrays)  # exported without them, no error
    dest = tmp_path / "digits.onnx"
    assert export(digits_ckpt, dest, "--format", "onnx") == 0
    printed = capsys.readouterr().out
    assert "ONNX opset 17" in printed and "output 'logits' float32 [N, 10]" in printed
    data = digits()
    x = np.concatenate([data["x_train"], data["x_test"]])
    s, ref = check_model(digits_ckpt, dest, x, 64, 10, "digits 64-48-32-10")
    assert np.array_equal(s.run(None, {"input": x[:1]})[0].argmax(1), ref[:1].argmax(1))  # any N

    import onnx
    model = onnx.load(str(dest))
    assert [o.version for o in model.opset_import] == [17]
    assert sorted(t.name for t in model.graph.initializer) == ["W0", "W1", "W2", "b0", "b1", "b2"]
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add", "Relu"] * 2 + ["MatMul", "Add"]


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_softmax_at_a_temperature(digits_ckpt, tmp_path, T):
    pytest.importorskip("onnx")
    dest = tmp_path / f"digits-T{T:g}.onnx"
    assert export(digits_ckpt, dest, "--format", "onnx", "--softmax-temperature", T) == 0
    s = session(dest)
    assert [(o.name, o.shape) for o in s.get_outputs()] == [("probabilities", ["N", 10])]
    x = digits()["x_test"]
    ref = softmax(nnkd_logits(digits_ckpt, x).astype(np.float64), T=T)
    got = s.run(None, {"input": x})[0]
    assert np.abs(got - ref).max() < 1e-6 and np.abs(got.sum(1) - 1).max() < 1e-6
    assert np.array_equal(got.argmax(1), ref.argmax(1))


@pytest.mark.mnist
@pytest.mark.parametrize("which", ["teacher", "small"])
def test_mnist_models_match_nnkd_on_the_10000_test_images(which, tmp_path):
    pytest.importorskip("onnx")
    from nnkd.data import load as load_data, to_float32
    from nnkd.data import device_data
    ds = load_data("mnist")
    be = get_backend("numpy")
    if which == "teacher":
        ckpt = TEACHER
    else:  # a small network, trained briefly on 10,000 training images
        cfg = TrainConfig(arch="784-100-10", epochs=2, lr=0.1, init_std=0.05)
        train(cfg, be, device_data(ds, be, train_limit=10_000), tmp_path / "small", log=quiet)
        ckpt = tmp_path / "small" / "checkpoint.npz"
    dest = tmp_path / "model.onnx"
    assert export(ckpt, dest, "--format", "onnx") == 0
    x = to_float32(ds.test_features)
    s, ref = check_model(ckpt, dest, x, 784, 10, f"MNIST {which}")
    if which == "teacher":
        assert int((ref.argmax(1) != ds.test_labels).sum()) == 73


def test_without_the_onnx_package_says_how_to_get_it(digits_ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    dest = tmp_path / "m.onnx"
    assert export(digits_ckpt, dest, "--format", "onnx") == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert extra_hint("onnx") in line
    assert list(tmp_path.iterdir()) == []


def one_error(capsys, *args):
    status = export(*args)
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert status == 2 and len(lines) == 1, err
    return lines[0]


def test_bad_exports_are_one_line_and_write_nothing(digits_ckpt, tmp_path, capsys):
    pytest.importorskip("onnx")
    dest = tmp_path / "m.onnx"
    dest.write_bytes(b"mine")
    assert "already exists" in one_error(capsys, digits_ckpt, dest, "--format", "onnx")
    assert dest.read_bytes() == b"mine"
    assert export(digits_ckpt, dest, "--format", "onnx", "--force") == 0
    assert dest.read_bytes()[:4] != b"mine"
    capsys.readouterr()

    other = tmp_path / "other"
    other.mkdir()
    assert ".onnx" in one_error(capsys, digits_ckpt, other / "m.npz", "--format", "onnx")
    assert ".onnx" in one_error(capsys, digits_ckpt, other / "m", "--format", "onnx")
    for T in ("0", "-1", "nan", "inf"):
        assert "--softmax-temperature" in one_error(capsys, digits_ckpt, other / "m.onnx", "--format", "onnx",
                                                    "--softmax-temperature", T)
    assert "onnx only" in one_error(capsys, digits_ckpt, other / "m.npz", "--softmax-temperature", "2")
    assert "does not exist" in one_error(capsys, digits_ckpt, other / "no" / "m.onnx", "--format", "onnx")
    (tmp_path / "dir.onnx").mkdir()
    assert "folder" in one_error(capsys, digits_ckpt, tmp_path / "dir.onnx", "--format", "onnx")

    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(digits_ckpt.read_bytes()[:5000])
    assert "truncated or corrupted" in one_error(capsys, damaged, other / "m.onnx", "--format", "onnx")
    assert "does not exist" in one_error(capsys, tmp_path / "none.npz", other / "m.onnx", "--format", "onnx")
    assert list(other.iterdir()) == []


def test_npz_stays_the_default(digits_ckpt, tmp_path):
    src = tmp_path / "src.npz"
    shutil.copy(digits_ckpt, src)
    assert export(src, tmp_path / "w.npz") == 0
    arrays, meta = load(tmp_path / "w.npz")
    assert meta["weights_only"] and not any(k.startswith("velocity") for k in arrays)


def test_a_centered_network_is_exported_with_its_centring_folded_in(tmp_path):
    """Trained on 2x - 1 of its inputs: the ONNX model takes the features as given and agrees."""
    pytest.importorskip("onnx")
    cfg = TrainConfig(arch="64-32-10", dropout_input=0.2, epochs=3, lr=0.05, init="uniform", inputs="centered")
    data = digits()
    train(cfg, get_backend("numpy"), data, tmp_path / "model", log=quiet)
    ckpt = tmp_path / "model" / "checkpoint.npz"
    dest = tmp_path / "centered.onnx"
    assert export(ckpt, dest, "--format", "onnx") == 0
    x = data["x_test"]
    _, ref = check_model(ckpt, dest, x, 64, 10, "digits 64-32-10, centered inputs")
    assert (ref.argmax(1) == data["y_test"]).mean() > 0.8  # it learned: the check compares a real model
