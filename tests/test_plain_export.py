"""The .npz export is a plain network: ``relu(x @ W + b)`` between layers, on the features as
given, read by code that does not import nnkd, gives the model's own predictions; the ONNX
export holds the same layers."""

import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from nnkd import checkpoint, load_model, shipped_models
from nnkd.backend import get_backend
from nnkd.config import TrainConfig
from nnkd.network import Network

# Reads an exported .npz and labelled pixels (uint8 .npy files) with NumPy alone; prints the
# predictions to a .npy file and the number of errors.
PLAIN_MLP = """
import sys
import numpy as np
weights, images, labels, out = sys.argv[1:]
z = np.load(weights, allow_pickle=False)
x = np.load(images).reshape(len(np.load(labels)), -1).astype(np.float32) / np.float32(255)
n = sum(1 for k in z.files if k.startswith("W"))
for i in range(n):
    x = x @ z[f"W{i}"] + z[f"b{i}"]
    if i < n - 1:
        x = np.maximum(x, 0)
pred = x.argmax(axis=1)
np.save(out, pred)
assert not any(m == "nnkd" or m.startswith("nnkd.") for m in sys.modules)
print(int((pred != np.load(labels)).sum()))
"""


def plain_mlp(tmp_path, weights, images, labels):
    """(errors, predictions) of the exported ``weights`` on uint8 ``images``, computed in a
    Python that never imports nnkd."""
    files = {name: tmp_path / f"{name}.npy" for name in ("images", "labels", "pred")}
    np.save(files["images"], images)
    np.save(files["labels"], labels)
    (tmp_path / "plain_mlp.py").write_text(PLAIN_MLP)
    run = subprocess.run([sys.executable, "-I", str(tmp_path / "plain_mlp.py"), str(weights),
                          str(files["images"]), str(files["labels"]), str(files["pred"])],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    return int(run.stdout), np.load(files["pred"])


def centered_checkpoint(path, sizes=(12, 16, 8, 5)):
    """A checkpoint of a small network that maps its inputs to 2x - 1 first."""
    cfg = TrainConfig(arch="-".join(map(str, sizes)), inputs="centered", init="uniform", seed=3)
    net = Network.from_settings(cfg, get_backend("numpy"))
    checkpoint.save(path, net.state(), {"config": asdict(cfg), "epoch": 1})
    return net


def test_a_centered_network_exports_as_plain_layers_that_give_its_predictions(tmp_path):
    net = centered_checkpoint(tmp_path / "c.npz")
    checkpoint.export_weights(tmp_path / "c.npz", tmp_path / "w.npz")
    images = np.random.default_rng(0).integers(0, 256, (500, 12), dtype=np.uint8)
    own = net.predict(images.astype(np.float32) / np.float32(255))
    errors, pred = plain_mlp(tmp_path, tmp_path / "w.npz", images, own)
    assert errors == 0 and (pred == own).all()
    # The raw arrays are not the plain layers: read as a plain network they give other predictions.
    arrays, _ = checkpoint.load(tmp_path / "c.npz")
    np.savez(tmp_path / "raw.npz", **arrays)
    assert plain_mlp(tmp_path, tmp_path / "raw.npz", images, own)[0] > 0


def test_the_export_loads_back_as_the_same_model_and_says_what_it_folded(tmp_path):
    net = centered_checkpoint(tmp_path / "c.npz")
    checkpoint.export_weights(tmp_path / "c.npz", tmp_path / "w.npz")
    _, meta = checkpoint.load(tmp_path / "w.npz")
    assert meta["config"]["inputs"] == "unit" and meta["folded"] == {"inputs": "centered"}
    x = np.random.default_rng(1).random((300, 12), dtype=np.float32)
    again = load_model(tmp_path / "w.npz")
    np.testing.assert_allclose(again.predict_logits(x), net.predict_logits(x), rtol=1e-5, atol=1e-5)
    checkpoint.export_weights(tmp_path / "w.npz", tmp_path / "w2.npz")  # folded once, not twice
    for name, a in checkpoint.load(tmp_path / "w2.npz")[0].items():
        assert (a == checkpoint.load(tmp_path / "w.npz")[0][name]).all()


def test_the_onnx_export_holds_the_same_layers_as_the_npz_export(tmp_path):
    pytest.importorskip("onnx")
    import onnx.numpy_helper
    from nnkd.onnx_export import export_onnx
    centered_checkpoint(tmp_path / "c.npz")
    checkpoint.export_weights(tmp_path / "c.npz", tmp_path / "w.npz")
    export_onnx(tmp_path / "c.npz", tmp_path / "m.onnx")
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(tmp_path / "m.onnx").graph.initializer}
    weights, _ = checkpoint.load(tmp_path / "w.npz")
    assert sorted(weights) == sorted(inits)
    for name, a in weights.items():
        assert (inits[name] == a).all(), name


@pytest.mark.mnist
@pytest.mark.parametrize("model", shipped_models(), ids=lambda m: m.name)
def test_every_shipped_teacher_exports_as_a_plain_network_with_its_test_errors(tmp_path, model):
    from nnkd.data import load, to_float32
    ds = load("mnist")
    checkpoint.export_weights(model.path, tmp_path / "w.npz")
    net = load_model(model.name)
    own = net.predict(to_float32(ds.test_features))
    errors, pred = plain_mlp(tmp_path, tmp_path / "w.npz", ds.test_features, ds.test_labels)
    assert (pred == own).all()
    assert errors == model.test_errors
    if model.name == "public-teacher":
        assert errors == 62
