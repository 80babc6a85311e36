"""Training loop, checkpoints, resume, numerical faults (synthetic data, seconds)."""

import errno
import json

import numpy as np
import pytest

from nnkd import checkpoint
from nnkd.errors import Interrupted, TrainingDiverged, UserError
from nnkd.network import Network
from nnkd.train import StopFlag, TrainConfig, count_errors, train

from .conftest import host


def synthetic(backend, n=600, d=784, seed=0):
    """Ten Gaussian blobs: learnable in a couple of epochs."""
    rng = np.random.default_rng(seed)
    centers = rng.random((10, d), dtype=np.float32)
    y = rng.integers(0, 10, n + 200)
    x = np.clip(centers[y] + 0.3 * rng.standard_normal((n + 200, d)).astype(np.float32), 0, 1)
    return {"x_train": backend.asarray(x[:n]), "y_train": backend.asarray(y[:n]),
            "x_test": backend.asarray(x[n:]), "y_test": backend.asarray(y[n:])}


def small_cfg(**kw):
    base = dict(arch="784-32-32-10", dropout_input=0.2, dropout_hidden=0.5, jitter=2, max_norm=15.0,
                epochs=4, batch_size=50, lr=0.1, lr_schedule="cosine", init_std=0.05)
    base.update(kw)
    return TrainConfig(**base)


def weights(net):
    return {k: v.copy() for k, v in net.state().items()}


def test_training_learns_and_records(backend, tmp_path):
    data = synthetic(backend)
    net, summary = train(small_cfg(jitter=0), backend, data, tmp_path / "s", log=lambda s: None)
    assert summary["test_errors"] < 40  # of 200; chance is 180
    assert summary["test_errors"] == count_errors(net, data["x_test"], data["y_test"])
    rows = [json.loads(l) for l in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"loss", "train_err", "lr", "momentum", "test_errors", "examples_per_s"} <= set(rows[0])
    _, meta = checkpoint.load(tmp_path / "s" / "checkpoint.npz")
    assert meta["epoch"] == 4 and meta["config"]["arch"] == "784-32-32-10"
    assert json.loads((tmp_path / "s" / "checkpoint.json").read_text())["epoch"] == 4


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.1), ("adam", 0.005)])
def test_each_optimizer_learns(tmp_path, optimizer, lr):
    from nnkd.backend import get_backend
    _, summary = train(small_cfg(jitter=0, optimizer=optimizer, lr=lr), get_backend(), synthetic(get_backend()),
                       tmp_path / "s", log=lambda s: None)
    assert summary["test_errors"] < 40  # of 200; chance is 180


def test_same_seed_same_weights_bit_for_bit(tmp_path):
    from nnkd.backend import get_backend
    be = get_backend()
    data = synthetic(be)
    a, _ = train(small_cfg(epochs=2), be, data, tmp_path / "a", log=lambda s: None)
    b, _ = train(small_cfg(epochs=2), be, data, tmp_path / "b", log=lambda s: None)
    for k, v in weights(a).items():
        np.testing.assert_array_equal(v, weights(b)[k])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_interrupt_then_resume_equals_uninterrupted(backend, tmp_path, optimizer):
    data = synthetic(backend)
    cfg = small_cfg(optimizer=optimizer, lr=0.1 if optimizer == "sgd" else 0.002)
    ref, _ = train(cfg, backend, data, tmp_path / "ref", log=lambda s: None)
    stop = StopFlag()

    def log(line):
        if "epoch    2/" in line:
            stop.signal = "SIGINT"  # arrives during epoch 2's bookkeeping: epoch 2 is still saved

    with pytest.raises(Interrupted, match="holds epoch 2"):
        train(cfg, backend, data, tmp_path / "run", log=log, stop=stop)
    resumed, _ = train(cfg, backend, data, tmp_path / "run", log=lambda s: None)
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4]
    for k, v in weights(ref).items():
        if backend.name == "numpy":
            np.testing.assert_array_equal(v, weights(resumed)[k])
        else:
            np.testing.assert_allclose(v, weights(resumed)[k], rtol=1e-4, atol=1e-6)


def test_resume_with_other_settings_is_refused(tmp_path):
    from nnkd.backend import get_backend
    be = get_backend()
    data = synthetic(be)
    train(small_cfg(epochs=1), be, data, tmp_path / "s", log=lambda s: None)
    with pytest.raises(UserError, match="another configuration"):
        train(small_cfg(epochs=1, lr=0.5), be, data, tmp_path / "s", log=lambda s: None)
    with pytest.raises(UserError, match="another configuration|has no array"):
        train(small_cfg(epochs=1, optimizer="adam"), be, data, tmp_path / "s", log=lambda s: None)


def test_a_checkpoint_without_the_newer_settings_resumes_with_their_defaults(tmp_path):
    """Settings added to TrainConfig later read as their defaults in an older checkpoint."""
    from nnkd.backend import get_backend
    be = get_backend()
    data = synthetic(be)
    train(small_cfg(epochs=1), be, data, tmp_path / "s", log=lambda s: None)
    arrays, meta = checkpoint.load(tmp_path / "s" / "checkpoint.npz")
    for newer in ("optimizer", "beta2"):
        del meta["config"][newer]
    checkpoint.save(tmp_path / "s" / "checkpoint.npz", arrays, meta)
    lines = []
    train(small_cfg(epochs=1), be, data, tmp_path / "s", log=lines.append)
    assert any("resuming" in line for line in lines)


def test_divergence_is_reported_with_epoch_and_step(tmp_path):
    from nnkd.backend import get_backend
    be = get_backend()
    data = synthetic(be)
    with pytest.raises(TrainingDiverged) as e:
        train(small_cfg(lr=1e6, max_norm=0.0, dropout_input=0, dropout_hidden=0, jitter=0),
              be, data, tmp_path / "s", log=lambda s: None)
    msg = str(e.value)
    assert "epoch 1, step" in msg and "lower `lr`" in msg
    assert e.value.exit_code == 3


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    from nnkd.backend import get_backend
    be = get_backend()
    data = synthetic(be)
    good = train(small_cfg(epochs=2), be, data, tmp_path / "s", log=lambda s: None)[0]
    before = (tmp_path / "s" / "checkpoint.npz").read_bytes()
    # Poison the weights and continue to a later epoch: training must stop, checkpoint untouched.
    cfg_more = small_cfg(epochs=3)
    (tmp_path / "s" / "config.json").unlink()
    arrays, meta = checkpoint.load(tmp_path / "s" / "checkpoint.npz")
    arrays["W2"][:] = np.finfo(np.float32).max  # finite (NaN is refused on load), overflows at once
    meta["config"]["epochs"] = 3
    checkpoint.save(tmp_path / "s" / "checkpoint.npz", arrays, {k: v for k, v in meta.items()
                                                                 if k not in ("format", "nnkd_version")})
    poisoned = (tmp_path / "s" / "checkpoint.npz").read_bytes()
    with pytest.raises(TrainingDiverged, match="epoch 3, step 1"):
        train(cfg_more, be, data, tmp_path / "s", log=lambda s: None)
    assert (tmp_path / "s" / "checkpoint.npz").read_bytes() == poisoned
    assert before != poisoned and good is not None


def test_checkpoint_refuses_bad_files(tmp_path):
    from nnkd.backend import get_backend
    be = get_backend()
    data = synthetic(be)
    net, _ = train(small_cfg(epochs=1), be, data, tmp_path / "s", log=lambda s: None)
    path = tmp_path / "s" / "checkpoint.npz"
    raw = path.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="truncated or corrupted"):
        checkpoint.load(tmp_path / "trunc.npz")
    with pytest.raises(UserError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(UserError, match="not an nnkd checkpoint"):
        checkpoint.load(tmp_path / "foreign.npz")
    other = Network.from_settings(small_cfg(arch="784-16-10"), be)
    with pytest.raises(UserError, match="another architecture|has no array"):
        checkpoint.load(path, expected={name: (p.data.shape, p.data.dtype) for name, p in other.params})
    # A pickle inside an .npz is never loaded: object arrays are refused.
    np.savez(tmp_path / "pickled.npz", W0=np.array([object()], dtype=object),
             __meta__=np.array(json.dumps({"format": 1})))
    with pytest.raises(UserError, match="truncated or corrupted"):
        checkpoint.load(tmp_path / "pickled.npz")


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    checkpoint.save(path, {"W0": np.ones(3)}, {"epoch": 1})
    before = path.read_bytes()

    def full_disk(f, **arrays):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(UserError, match="No space left on device.*previous checkpoint"):
        checkpoint.save(path, {"W0": np.zeros(3)}, {"epoch": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.npz"]  # no temporary left
    monkeypatch.undo()
    arrays, meta = checkpoint.load(path)
    assert meta["epoch"] == 1 and host(arrays["W0"]).sum() == 3


def test_config_validation():
    for kw, pattern in [(dict(dropout_hidden=1.0), "outside"), (dict(epochs=0), "epochs"),
                        (dict(batch_size=-1), "batch_size"), (dict(temperature=0), "temperature"),
                        (dict(lr_schedule="step"), "lr_schedule"), (dict(momentum_form="x"), "momentum_form")]:
        with pytest.raises(UserError, match=pattern):
            small_cfg(**kw).validate()
    with pytest.raises(UserError, match="larger than"):
        small_cfg(batch_size=1000).validate(n_train=600)


def test_a_setting_the_chosen_optimizer_ignores_is_warned_about():
    """The paper's momentum form belongs to SGD and beta2 to Adam: each, set away from its
    default under the other optimizer, trains the same as without it, so the user is told."""
    def warnings(**kw):
        lines = []
        small_cfg(**kw).validate(prefix="student.", warn=lines.append)
        return lines
    assert warnings(optimizer="adam", momentum_form="paper") == [
        "warning: student.momentum_form 'paper' is read by optimizer sgd only; "
        "student.optimizer adam ignores it"]
    assert warnings(beta2=0.99) == [
        "warning: student.beta2 0.99 is read by optimizer adam only; student.optimizer sgd ignores it"]
    assert warnings(momentum_form="paper") == warnings(optimizer="adam", beta2=0.99) == warnings() == []

def test_gpu_out_of_memory_is_one_clear_line(monkeypatch, tmp_path):
    """CuPy's OutOfMemoryError becomes a UserError naming the batch size and free memory
    (simulated here; tests/test_train.py::test_real_gpu_out_of_memory does it on a GPU)."""
    from nnkd.backend import Backend, get_backend
    from nnkd.train import Step

    class OutOfMemoryError(Exception):
        pass

    def boom(*args, **kwargs):
        raise OutOfMemoryError("Out of memory allocating 4,000,000,000 bytes")

    monkeypatch.setattr(Backend, "is_out_of_memory", lambda self, exc: isinstance(exc, OutOfMemoryError))
    monkeypatch.setattr(Backend, "free_memory", lambda self: (2 ** 30, 80 * 2 ** 30))
    monkeypatch.setattr(Step, "__call__", boom)
    be = get_backend()
    with pytest.raises(UserError, match=r"out of GPU memory .* batch size 50 \(1.0 GiB free of 80.0 GiB"):
        train(small_cfg(), be, synthetic(be), tmp_path / "s", log=lambda s: None)


@pytest.mark.gpu
def test_gpu_out_of_memory_is_one_line_with_the_cards_memory(cupy_backend, tmp_path, monkeypatch):
    """A step that asks the card for more than it has (64 TiB, more than any card): one line naming
    the batch size and the card's free and total memory, not a traceback."""
    from nnkd.train import Step
    be = cupy_backend
    step = Step.__call__

    def greedy_step(self, *args, **kwargs):
        self.xp.empty(2 ** 44, dtype=np.float32)
        return step(self, *args, **kwargs)
    monkeypatch.setattr(Step, "__call__", greedy_step)
    with pytest.raises(UserError, match=r"out of GPU memory .* batch size 50 \(\d+\.\d GiB free of "
                                        r"\d+\.\d GiB on the card\)"):
        train(small_cfg(epochs=1), be, synthetic(be), tmp_path / "s", log=lambda s: None)


def test_jittered_transfer_set_pairs_each_image_with_its_own_logits(backend, tmp_path):
    """With --transfer-jitter, the logits looked up for a jittered batch row are the
    teacher's logits of exactly that shifted image."""
    from nnkd.batches import jitter
    from nnkd import transfer
    data = synthetic(backend, n=300)
    teacher = Network.from_settings(small_cfg(arch="784-16-10"), backend)
    t = transfer.compute(teacher, data, tmp_path / "logits.npy", max_shift=2, log=lambda s: None)
    assert t.logits.shape == (25, 300, 10)
    X = data["x_train"]
    idx = backend.asarray(np.random.default_rng(0).permutation(300)[:50])
    xb = X[idx].copy()
    xj = backend.xp.empty_like(xb)
    k = jitter(xb, xj, 2, np.random.default_rng(1))
    looked_up = t.rows(idx, k)
    np.testing.assert_allclose(host(looked_up), host(teacher.forward(xj, train=False)), rtol=1e-5, atol=1e-5)
    # The cache is reused only for the same layout.
    again = transfer.compute(teacher, data, tmp_path / "logits.npy", max_shift=2, log=lambda s: None)
    assert again.logits.shape == (25, 300, 10)
