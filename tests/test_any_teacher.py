"""``distill --teacher model.onnx`` and ``distill --teacher-logits FILE.npy``: a teacher from any
framework gives the distilled student the same logits an nnkd teacher does.

On the 8x8 digits (``nnkd/examples/digits8x8.npz``): an nnkd network exported to ONNX gives the
logits of its ``.npz`` within onnxruntime's float32 rounding (the bound of
tests/test_onnx_export.py: 1e-5 of the row's largest |logit|, at least 1e-5), for every
shift of a jittered transfer set; a hand-built graph with a convolution gives what NumPy
computes of it; every bad model or logits file ends in one ``error:`` line, before anything
is written.
"""

import json

import numpy as np
import pytest

from nnkd import TrainConfig, get_backend, train
from nnkd.batches import shift_into, shifts
from nnkd.install import example_data
from tests.conftest import ROOT, error_lines, main_py

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

DIGITS = example_data("digits8x8")
DATASET = f"npz:{DIGITS}"
RTOL = 1e-5
QUICK = ["--dataset", DATASET, "--preset", "smoke", "--epochs", "1", "--no-baseline"]


def digits():
    d = np.load(DIGITS)
    return {k: d[k].reshape(len(d[k]), -1).astype(np.float32) / np.float32(255) if k[0] == "x"
            else d[k].astype(np.int64) for k in ("x_train", "y_train", "x_test", "y_test")}


def jittered(x, max_shift, side=8):
    """``(shifts, N, F)``: every image of ``x`` moved by every shift, as the transfer set has them."""
    out = np.empty((len(shifts(max_shift)),) + x.shape, np.float32)
    for k, (dy, dx) in enumerate(shifts(max_shift)):
        shift_into(x.reshape(len(x), side, side), out[k].reshape(len(x), side, side), dy, dx)
    return out


def close(got, ref):
    """The logits agree within float32 rounding of the row's scale."""
    assert got.shape == ref.shape
    scale = np.maximum(1.0, np.abs(ref).max(axis=-1, keepdims=True))
    assert (np.abs(got.astype(np.float64) - ref) <= RTOL * scale).all()


def save_model(path, nodes, inits, x_shape, z_shape, out_name="logits"):
    graph = helper.make_graph(nodes, "teacher", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, z_shape)],
                              initializer=[numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def dense(path, W, b, x_shape=("N", 64), softmax=False):
    """``x @ W + b`` (then softmax) as an ONNX model."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["z"] if softmax else ["logits"])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["logits"], axis=-1))
    return save_model(path, nodes, {"W": W, "b": b}, x_shape, ["N", W.shape[1]])


def conv_weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"K": rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32),
            "kb": rng.normal(0, 0.1, 4).astype(np.float32),
            "W": rng.normal(0, 0.1, (4 * 8 * 8, 10)).astype(np.float32),
            "b": rng.normal(0, 0.1, 10).astype(np.float32),
            "image": np.array([-1, 1, 8, 8], np.int64), "flat": np.array([-1, 4 * 8 * 8], np.int64)}


def conv_model(path):
    """Flat pixels -> image -> 3x3 convolution (4 maps, zero padding) -> ReLU -> dense -> logits."""
    nodes = [helper.make_node("Reshape", ["x", "image"], ["img"]),
             helper.make_node("Conv", ["img", "K", "kb"], ["maps"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["maps"], ["relu"]),
             helper.make_node("Reshape", ["relu", "flat"], ["h"]),
             helper.make_node("MatMul", ["h", "W"], ["hw"]),
             helper.make_node("Add", ["hw", "b"], ["logits"])]
    return save_model(path, nodes, conv_weights(), ["N", 64], ["N", 10])


def conv_numpy(x):
    """The conv model computed with NumPy (float64)."""
    w = conv_weights()
    img = np.pad(x.reshape(-1, 8, 8).astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    maps = np.zeros((len(x), 4, 8, 8))
    for i in range(3):
        for j in range(3):
            maps += img[:, None, i:i + 8, j:j + 8] * w["K"][None, :, 0, i, j, None, None]
    h = np.maximum(maps + w["kb"][None, :, None, None], 0).reshape(len(x), -1)
    return h @ w["W"] + w["b"]


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "model"
    cfg = TrainConfig(arch="64-48-10", epochs=3, lr=0.1, init_std=0.1)
    train(cfg, get_backend("numpy"), digits(), out, log=lambda line: None)
    return out / "checkpoint.npz"


def distill(tmp_path, name, *args):
    out = tmp_path / name
    r = main_py("distill", *QUICK, "--out", str(out), *map(str, args))
    assert r.returncode == 0, r.stderr
    return out, json.loads((out / "results.json").read_text())


def test_an_exported_nnkd_teacher_gives_its_own_logits(tmp_path, digits_ckpt):
    model = tmp_path / "teacher.onnx"
    assert main_py("export", str(digits_ckpt), str(model), "--format", "onnx").returncode == 0
    ref_dir, ref = distill(tmp_path, "npz", "--teacher", digits_ckpt, "--transfer-jitter", 1)
    got_dir, got = distill(tmp_path, "onnx", "--teacher", model, "--transfer-jitter", 1)
    z_ref, z = (np.load(d / "teacher_logits.npy") for d in (ref_dir, got_dir))
    assert z.shape == (9, 1500, 10) and z.dtype == np.float32
    close(z, z_ref)
    teacher = got["models"]["teacher"]
    assert teacher["test_errors"] == ref["models"]["teacher"]["test_errors"]
    assert teacher["kind"] == "onnx" and teacher["source"] == str(model)
    assert "teacher teacher.onnx (ONNX, onnxruntime)" in (got_dir / "results.md").read_text()
    assert json.loads((got_dir / "run.json").read_text())["teacher_checkpoint"] == str(model)
    # --resume reads the cached logits and computes nothing again
    before = (got_dir / "teacher_logits.npy").stat().st_mtime_ns
    r = main_py("distill", "--resume", str(got_dir))
    assert r.returncode == 0, r.stderr
    assert "teacher logits: cached" in r.stdout
    assert (got_dir / "teacher_logits.npy").stat().st_mtime_ns == before


def test_any_graph_is_a_teacher_a_convolution(tmp_path):
    model = conv_model(tmp_path / "conv.onnx")
    out, res = distill(tmp_path, "conv", "--teacher", model, "--transfer-jitter", 1)
    d = digits()
    close(np.load(out / "teacher_logits.npy"), conv_numpy(jittered(d["x_train"], 1).reshape(-1, 64)).reshape(9, -1, 10))
    errors = int((conv_numpy(d["x_test"]).argmax(1) != d["y_test"]).sum())
    assert res["models"]["teacher"]["test_errors"] == errors
    assert res["models"]["teacher"]["params"] == sum(a.size for a in conv_weights().values())


def test_probabilities_are_taken_with_the_flag_as_their_log(tmp_path):
    rng = np.random.default_rng(1)
    W, b = rng.normal(0, 1, (64, 10)).astype(np.float32), rng.normal(0, 1, 10).astype(np.float32)
    model = dense(tmp_path / "softmax.onnx", W, b, softmax=True)
    out, _ = distill(tmp_path, "p", "--teacher", model, "--teacher-outputs", "probabilities")
    z = digits()["x_train"].astype(np.float64) @ W + b
    log_p = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    close(np.load(out / "teacher_logits.npy"), log_p)
    assert json.loads((out / "run.json").read_text())["teacher_outputs"] == "probabilities"


def test_a_fixed_batch_size_is_run_in_padded_batches(tmp_path):
    from nnkd.onnx_model import OnnxModel
    rng = np.random.default_rng(2)
    W, b = rng.normal(0, 1, (64, 10)).astype(np.float32), rng.normal(0, 1, 10).astype(np.float32)
    teacher = OnnxModel(dense(tmp_path / "b32.onnx", W, b, x_shape=(32, 64)), get_backend("numpy"), 64, 10)
    x = digits()["x_test"][:50]
    close(teacher.predict_logits(x), x.astype(np.float64) @ W + b)


def test_a_logits_file_is_distilled_from(tmp_path):
    d = digits()
    z = jittered(d["x_train"][:1000], 1).reshape(9, 1000, 64) @ np.ones((64, 10), np.float32)
    np.save(tmp_path / "z.npy", z.astype(np.float64))  # float64 is taken as float32
    out, res = distill(tmp_path, "file", "--teacher-logits", tmp_path / "z.npy", "--train-limit", 1000,
                       "--transfer-jitter", 1)
    assert np.array_equal(np.load(out / "teacher_logits.npy"), z.astype(np.float32))
    assert res["models"]["teacher"]["test_errors"] is None
    assert "| teacher logits from z.npy | - | - |" in (out / "results.md").read_text()
    (tmp_path / "z.npy").unlink()  # --resume reads the run's copy
    assert main_py("distill", "--resume", str(out)).returncode == 0


def bad_models(tmp_path):
    W, b = np.ones((64, 10), np.float32), np.zeros(10, np.float32)
    (tmp_path / "text.onnx").write_text("not a model\n")
    nan_b = np.full(10, np.nan, np.float32)
    return {
        "unopenable": (tmp_path / "text.onnx", "onnxruntime cannot open"),
        "missing": (tmp_path / "none.onnx", "does not exist"),
        "input width": (dense(tmp_path / "w.onnx", np.ones((784, 10), np.float32), b, x_shape=("N", 784)),
                        "takes 784 input features, but the data has 64"),
        "output width": (dense(tmp_path / "o.onnx", np.ones((64, 5), np.float32), b[:5]),
                         "outputs 5 classes, but the data has 10"),
        "dynamic features": (dense(tmp_path / "d.onnx", W, b, x_shape=("N", "F")), "dynamic feature dimension"),
        "image input": (save_model(tmp_path / "i.onnx", [helper.make_node("Flatten", ["x"], ["f"]),
                                                          helper.make_node("MatMul", ["f", "W"], ["logits"])],
                                   {"W": W}, ["N", 1, 8, 8], ["N", 10]), "has shape [?, 1, 8, 8]"),
        "probabilities": (dense(tmp_path / "p.onnx", W, b, softmax=True),
                          "outputs probabilities (every row is >= 0 and sums to 1)"),
        "NaN": (dense(tmp_path / "n.onnx", W, nan_b), "NaN or infinite values"),
    }


def test_every_bad_model_fails_in_one_line(tmp_path):
    for what, (model, message) in bad_models(tmp_path).items():
        out = tmp_path / "run"
        r = main_py("distill", *QUICK, "--teacher", str(model), "--out", str(out))
        lines = error_lines(r.stderr)
        assert r.returncode != 0 and len(lines) == 1 and message in lines[0], (what, r.stderr)
        assert "Traceback" not in r.stderr and not out.exists(), what


def test_every_bad_logits_file_fails_in_one_line(tmp_path):
    good = np.zeros((1500, 10), np.float32)
    nan = good.copy()
    nan[3, 4] = np.nan
    cases = {"classes.npy": (good[:, :9], [], "for 9 classes, but the data has 10"),
             "images.npy": (good, ["--train-limit", 1000], "for 1500 images, but the transfer set has 1000"),
             "held out.npy": (good, ["--validation", 100], "(after --train-limit and --validation)"),
             "shifts.npy": (good, ["--transfer-jitter", 1], "--transfer-jitter 1 needs 9"),
             "nan.npy": (nan, [], "1 NaN or infinite values"),
             "ints.npy": (good.astype(np.int32), [], "holds int32 values"),
             "logits.npz": (good, [], "is an .npz archive")}
    for name, (a, args, message) in cases.items():
        path = tmp_path / name
        if name.endswith(".npz"):
            np.savez(path, logits=a)
        else:
            np.save(path, a)
        out = tmp_path / "run"
        r = main_py("distill", *QUICK, "--teacher-logits", str(path), "--out", str(out), *map(str, args))
        lines = error_lines(r.stderr)
        assert r.returncode != 0 and len(lines) == 1 and message in lines[0], (name, r.stderr)
        assert not out.exists(), name


def test_conflicting_teacher_flags_fail_in_one_line(tmp_path, digits_ckpt):
    np.save(tmp_path / "z.npy", np.zeros((1500, 10), np.float32))
    for args, message in ((["--teacher", digits_ckpt, "--teacher-logits", tmp_path / "z.npy"], "two teachers"),
                          (["--teacher-logits", tmp_path / "z.npy", "--retrain-teacher"], "--retrain-teacher"),
                          (["--teacher", digits_ckpt, "--teacher-outputs", "probabilities"],
                           "--teacher-outputs applies to an ONNX teacher")):
        r = main_py("distill", *QUICK, *map(str, args), "--dry-run")
        lines = error_lines(r.stderr)
        assert r.returncode != 0 and len(lines) == 1 and message in lines[0], r.stderr


def test_a_sweep_distills_from_an_onnx_teacher(tmp_path):
    model = conv_model(tmp_path / "conv.onnx")
    out = tmp_path / "sweep"
    r = main_py("sweep", "--dataset", DATASET, "--teacher", str(model), "--temperatures", "2", "--widths", "8",
                "--seeds", "0", "--epochs", "1", "--transfer-jitter", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    x = jittered(digits()["x_train"], 2)  # a transfer set jittered by 2 px: 25 shifts
    close(np.load(out / "teacher_logits.npy"), conv_numpy(x.reshape(-1, 64)).reshape(25, -1, 10))
