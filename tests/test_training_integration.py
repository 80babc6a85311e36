"""The training loop as a whole, on hard labels: the learning rate and momentum that each
epoch's optimizer steps really use (watched at the optimizer, not read from the metrics the
loop writes), and every refusal of a resume, through the Python API and the command line."""

import json
import math
import re
import shutil
import time

import numpy as np
import pytest

from nnkd import checkpoint
from nnkd.install import example_data
from nnkd.network import Network
from nnkd.errors import Interrupted, UserError
from nnkd.optim import SGD
from nnkd.train import StopFlag, TrainConfig, train

from .conftest import error_lines, host, main_py

N, BATCH = 200, 50
STEPS = N // BATCH      # optimizer steps per epoch
EPOCHS = 4


def blobs(backend, n=N, d=64, seed=0):
    """Ten Gaussian blobs of 8x8 "images"."""
    rng = np.random.default_rng(seed)
    centers = rng.random((10, d), dtype=np.float32)
    y = rng.integers(0, 10, n + 100)
    x = np.clip(centers[y] + 0.3 * rng.standard_normal((n + 100, d)).astype(np.float32), 0, 1)
    return {"x_train": backend.asarray(x[:n]), "y_train": backend.asarray(y[:n]),
            "x_test": backend.asarray(x[n:]), "y_test": backend.asarray(y[n:]), "image_shape": (8, 8)}


def cfg(**kw):
    base = dict(arch="64-16-10", epochs=EPOCHS, batch_size=BATCH, lr=0.1, lr_schedule="exp", lr_decay=0.5,
                momentum_start=0.5, momentum_end=0.9, momentum_epochs=3, momentum_form="paper",
                init_std=0.1, max_norm=15.0, dropout_hidden=0.2)
    base.update(kw)
    return TrainConfig(**base)


def expected_lr(c, epoch):
    """The schedules, written out again here from their definitions (epoch counts from 0)."""
    return {"exp": c.lr * c.lr_decay ** epoch,
            "cosine": c.lr / 2 * (1 + math.cos(epoch / c.epochs * math.pi)),
            "constant": c.lr}[c.lr_schedule]


def expected_momentum(c, epoch):
    if epoch >= c.momentum_epochs:
        return c.momentum_end
    return c.momentum_start + epoch / c.momentum_epochs * (c.momentum_end - c.momentum_start)


class StepSpy:
    """Stands between the trainer and :meth:`SGD.step`: records the learning rate and momentum
    of every step, and checks on the first weight matrix that the step applied the update of
    the optimizer's momentum form with exactly those rates."""

    def __init__(self, monkeypatch):
        self.rates = []
        real = SGD.step

        def step(opt, lr, momentum, sq_norms=None):
            v0 = host(opt.velocity[0]).astype(np.float64)
            g = host(opt.params[0].grad).astype(np.float64)
            w0 = host(opt.params[0].data).astype(np.float64)
            done = real(opt, lr, momentum, sq_norms)
            rate = (1 - momentum) * lr if opt.form == "paper" else lr
            v1 = host(opt.velocity[0])
            np.testing.assert_allclose(v1, momentum * v0 - rate * g, rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(host(opt.params[0].data), w0 + v1, rtol=1e-5, atol=1e-6)
            self.rates.append((lr, momentum))
            return done

        monkeypatch.setattr(SGD, "step", step)

    def per_epoch(self):
        """One (lr, momentum) per epoch; every step of an epoch must use the same."""
        assert len(self.rates) % STEPS == 0, len(self.rates)
        epochs = [self.rates[i:i + STEPS] for i in range(0, len(self.rates), STEPS)]
        for steps in epochs:
            assert len(set(steps)) == 1, steps
        return [steps[0] for steps in epochs]


def quiet(line):
    pass


def metrics(stage):
    return [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("form", ["paper", "classic"])
@pytest.mark.parametrize("schedule", ["exp", "cosine", "constant"])
def test_each_epoch_trains_with_its_scheduled_rates(backend, tmp_path, monkeypatch, schedule, form):
    """Every epoch's lr and momentum differ from the next one's (momentum ramps over 3 of the 4
    epochs), so a schedule read one epoch early or late fails."""
    c = cfg(lr_schedule=schedule, momentum_form=form)
    spy = StepSpy(monkeypatch)
    train(c, backend, blobs(backend), tmp_path / "s", log=quiet)
    used = spy.per_epoch()
    assert len(used) == EPOCHS
    for epoch, (lr, mom) in enumerate(used):
        assert lr == pytest.approx(expected_lr(c, epoch), rel=1e-12, abs=1e-15), (epoch, used)
        assert mom == pytest.approx(expected_momentum(c, epoch), rel=1e-12), (epoch, used)
    assert [(r["lr"], r["momentum"]) for r in metrics(tmp_path / "s")] == used


def test_known_schedule_values():
    """The independent formulas above, against numbers worked out by hand."""
    c = cfg(lr_schedule="cosine")
    assert [round(expected_lr(c, e), 6) for e in range(4)] == [0.1, 0.085355, 0.05, 0.014645]
    assert [round(expected_momentum(c, e), 6) for e in range(5)] == [0.5, 0.633333, 0.766667, 0.9, 0.9]
    assert [expected_lr(cfg(), e) for e in range(3)] == [0.1, 0.05, 0.025]


def test_schedule_functions_defaults():
    """The paper's schedule when nothing else is said: lr0 * 0.998^epoch, momentum from 0.5 to
    0.99 over 500 epochs."""
    from nnkd.schedules import learning_rate, momentum_at
    assert learning_rate(3, 2.0) == pytest.approx(2.0 * 0.998 ** 3, rel=1e-15)
    assert learning_rate(3, 2.0, "constant") == 2.0
    assert learning_rate(1, 2.0, "cosine", epochs=3) == pytest.approx(1.5, rel=1e-15)
    assert [momentum_at(e) for e in (0, 100, 499, 500, 501)] == pytest.approx(
        [0.5, 0.598, 0.99 - 0.49 / 500, 0.99, 0.99], rel=1e-15)
    assert momentum_at(0, 0.5, 0.9, 0) == 0.9 and momentum_at(7, 0.5, 0.9, 0) == 0.9
    assert momentum_at(0, 0.5, 0.9, 1) == 0.5 and momentum_at(1, 0.5, 0.9, 1) == 0.9
    with pytest.raises(ValueError, match="^unknown learning-rate schedule 'step'$"):
        learning_rate(0, 1.0, "step")


def test_a_resumed_run_continues_the_schedule_at_its_epoch(tmp_path, monkeypatch):
    from nnkd.backend import get_backend
    be = get_backend()
    data, c = blobs(be), cfg(lr_schedule="cosine")
    stop = StopFlag()

    def log(line):
        if "epoch    2/" in line:
            stop.signal = "SIGINT"

    with pytest.raises(Interrupted, match="holds epoch 2"):
        train(c, be, data, tmp_path / "s", log=log, stop=stop)
    saved = checkpoint.load(tmp_path / "s" / "checkpoint.npz")[1]["seconds"]
    spy = StepSpy(monkeypatch)
    lines = []
    train(c, be, data, tmp_path / "s", log=lines.append)
    assert lines[0] == f"resuming {tmp_path / 's'} at epoch 3 of 4"
    row = metrics(tmp_path / "s")[2]
    assert saved > 0 and row["seconds"] == pytest.approx(saved + N / row["examples_per_s"], rel=1e-9)
    used = spy.per_epoch()
    assert used == [(pytest.approx(expected_lr(c, e)), pytest.approx(expected_momentum(c, e)))
                    for e in (2, 3)], used
    assert [r["epoch"] for r in metrics(tmp_path / "s")] == [1, 2, 3, 4]


@pytest.mark.parametrize("bound", [0.3, 0.6])
def test_training_keeps_hidden_units_within_the_max_norm(backend, tmp_path, bound):
    """After every step (so after training) no hidden unit's squared length exceeds the bound,
    which the unconstrained run exceeds."""
    data = blobs(backend)
    free, _ = train(cfg(max_norm=0.0, lr=1.0, epochs=2), backend, data, tmp_path / "free", log=quiet)
    net, _ = train(cfg(max_norm=bound, lr=1.0, epochs=2), backend, data, tmp_path / "s", log=quiet)
    sq = lambda n: (host(n.dense[0].W.data).astype(np.float64) ** 2).sum(axis=0)  # noqa: E731
    assert sq(free).max() > 1.5 * bound
    assert sq(net).max() <= bound * (1 + 1e-5)


def test_a_step_takes_mnist_sized_images_by_default():
    from nnkd.backend import get_backend
    from nnkd.train import Step
    step = Step(cfg(arch="784-16-10", jitter=2), Network.from_settings(cfg(arch="784-16-10"), get_backend()))
    assert step.image_shape == (28, 28)


def test_epoch_metrics_count_the_steps_errors_and_loss(tmp_path):
    """With a learning rate too small to move the weights, the first epoch's training error and
    mean loss are the initial network's, counted here over the whole training set."""
    from nnkd import losses
    from nnkd.backend import get_backend
    be = get_backend()
    data = blobs(be)
    c = cfg(lr=1e-12, lr_schedule="constant", momentum_start=0.0, momentum_end=0.0, momentum_epochs=0,
            max_norm=0.0, dropout_hidden=0.0, epochs=1)
    initial = Network.from_settings(c, be)
    z = initial.forward(data["x_train"], train=False)
    train(c, be, data, tmp_path / "s", log=quiet)
    (row,) = metrics(tmp_path / "s")
    assert row["train_err"] == (z.argmax(axis=1) != data["y_train"]).sum() / N
    assert 0.5 < row["train_err"] < 1.0  # an untrained network: most are wrong
    assert row["loss"] == pytest.approx(float(losses.cross_entropy(z, data["y_train"])[0]), rel=1e-5)


def test_count_errors_by_chunks_equals_a_count_over_all(backend):
    from nnkd.train import count_errors
    data = blobs(backend)
    net = Network.from_settings(cfg(), backend)
    x, y = data["x_train"], data["y_train"]
    want = int((host(net.forward(x, train=False)).argmax(axis=1) != host(y)).sum())
    assert 0 < want < N
    for chunk in (7, 50, 10000):
        assert count_errors(net, x, y, batch_size=chunk) == want, chunk
    assert count_errors(net, x, y) == want


def test_dropout_is_active_in_training_steps(tmp_path):
    from nnkd.backend import get_backend
    be = get_backend()
    data = blobs(be)
    a, _ = train(cfg(epochs=1, dropout_hidden=0.0), be, data, tmp_path / "a", log=quiet)
    b, _ = train(cfg(epochs=1, dropout_hidden=0.5), be, data, tmp_path / "b", log=quiet)
    assert not np.array_equal(a.dense[0].W.data, b.dense[0].W.data)


def test_divergence_message_names_the_models_setting(tmp_path):
    from nnkd.backend import get_backend
    from nnkd.errors import TrainingDiverged
    be = get_backend()
    # The first step's loss is finite, the second's is not; nothing was saved yet.
    with pytest.raises(TrainingDiverged, match=r"^the loss became inf at epoch 1, step 2 \(lr 1e\+20\); .*the likely "
                       r"cause is a learning rate too high for this model \(lower `teacher.lr`\); the last good "
                       r"checkpoint \(.*checkpoint.npz, epoch 0\) is kept$"):
        train(cfg(lr=1e20, momentum_form="classic", max_norm=0.0, dropout_hidden=0.0, lr_schedule="constant"),
              be, blobs(be),
              tmp_path / "s", log=quiet, name="teacher")


def test_time_left_reads_as_minutes_or_hours():
    from nnkd.train import _fmt_time
    assert [_fmt_time(s) for s in (0, 59.6, 61, 3599, 3600, 3725, 7322, 36061)] == \
        ["0:00", "1:00", "1:01", "59:59", "1:00:00", "1:02:05", "2:02:02", "10:01:01"]


def test_checkpoint_metadata_says_what_was_trained_where(tmp_path):
    from nnkd.backend import get_backend
    be = get_backend()
    c = cfg(epochs=2, seed=5)
    stage = tmp_path / "new" / "nested" / "s"  # folders made as needed
    start = time.perf_counter()
    train(c, be, blobs(be), stage, log=quiet, data_checksum="abcd")
    elapsed = time.perf_counter() - start
    _, meta = checkpoint.load(stage / "checkpoint.npz")
    rows = metrics(stage)
    assert rows[0]["seconds"] == pytest.approx(N / rows[0]["examples_per_s"], rel=1e-9)  # from 0
    assert elapsed > meta["seconds"] == rows[-1]["seconds"] > rows[0]["seconds"] > 0
    assert meta["epoch"] == 2 and meta["data_checksum"] == "abcd" and meta["backend"] == "numpy"
    assert type(meta["cpu_threads"]) is int and meta["cpu_threads"] >= 1
    assert meta["step_mode"] == ("split" if meta["cpu_threads"] > 1 else "whole")  # conftest forces split
    assert meta["rng"] == {"seed": 5, "next_epoch": 2, "scheme": "per-epoch generators from (seed, epoch)"}
    assert json.loads((stage / "config.json").read_text()) == meta["config"]


def test_training_takes_the_datas_image_shape_and_classes(tmp_path):
    """8x8 images jittered, three classes: the data's own sizes, not MNIST's."""
    from nnkd.backend import get_backend
    be = get_backend()
    data = blobs(be)
    for key in ("y_train", "y_test"):
        data[key] = data[key] % 3
    data["n_classes"] = 3
    net, summary = train(cfg(arch="64-16-3", jitter=1), be, data, tmp_path / "s", log=quiet)
    assert net.sizes == [64, 16, 3] and len(metrics(tmp_path / "s")) == EPOCHS


def test_validation_and_test_errors_are_recorded_when_asked(tmp_path):
    """Validation error every epoch, of the network as it is after that epoch; test errors every
    ``eval_every`` epochs and after the last."""
    from nnkd.backend import get_backend
    from nnkd.train import count_errors
    be = get_backend()
    data = blobs(be, n=N + 60)
    for part in ("x", "y"):
        data[f"{part}_val"], data[f"{part}_train"] = data[f"{part}_train"][N:], data[f"{part}_train"][:N]
    net, summary = train(cfg(eval_every=3), be, data, tmp_path / "s", log=quiet)
    rows = metrics(tmp_path / "s")
    assert [("val_err" in r, "test_errors" in r) for r in rows] == [(True, False), (True, False),
                                                                    (True, True), (True, True)]
    assert rows[-1]["val_err"] == count_errors(net, data["x_val"], data["y_val"]) / 60
    assert rows[-1]["test_errors"] == summary["test_errors"]


def test_a_loss_checked_every_few_steps_is_still_checked_at_an_epochs_end(tmp_path):
    """The GPU's way (a finiteness check every 50 steps), here every 10 of 4 steps: a loss that
    goes infinite at step 2 is found at step 4, the epoch's last."""
    from nnkd.backend import get_backend
    from nnkd.errors import TrainingDiverged
    be = get_backend()
    with pytest.raises(TrainingDiverged, match=r"^the loss became \S+ at epoch 1, step 4 "):
        train(cfg(lr=1e20, momentum_form="classic", max_norm=0.0, dropout_hidden=0.0, lr_schedule="constant"),
              be, blobs(be), tmp_path / "s", log=quiet, check_every=10)


class Clock:
    """A stand-in for time.perf_counter that moves 10 s at every reading."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 10.0
        return self.now


EPOCH_LINE = re.compile(r"  epoch +(\d+)/(\d+)  loss (\S+)  train err +(\S+)%  val err +(\S+)%  test +(\S+)  "
                        r"lr (\S+)  mom (\S+) +(\d+) ex/s  left (\S+)")


def test_epoch_log_lines_show_the_epochs_metrics(tmp_path, monkeypatch):
    """Each epoch's line holds the numbers of its metrics row, and the time left at the mean
    time per epoch so far (every epoch takes 10 s of a stand-in clock here)."""
    import sys
    from nnkd.backend import get_backend
    from nnkd.train import _fmt_time
    monkeypatch.setattr(sys.modules["nnkd.train"], "time", Clock())
    be = get_backend()
    data = blobs(be, n=N + 60)
    for part in ("x", "y"):
        data[f"{part}_val"], data[f"{part}_train"] = data[f"{part}_train"][N:], data[f"{part}_train"][:N]
    lines = []
    _, summary = train(cfg(eval_every=2), be, data, tmp_path / "s", log=lines.append)
    rows = metrics(tmp_path / "s")
    assert [r["seconds"] for r in rows] == [10.0, 20.0, 30.0, 40.0] and summary["seconds"] == 40.0
    epoch_lines = [EPOCH_LINE.fullmatch(line) for line in lines if line.startswith("  epoch")]
    assert len(epoch_lines) == EPOCHS and all(epoch_lines), lines
    for e, (m, r) in enumerate(zip(epoch_lines, rows), 1):
        assert (int(m[1]), int(m[2])) == (e, EPOCHS)
        assert float(m[3]) == pytest.approx(r["loss"], abs=1e-4)
        assert float(m[4]) == pytest.approx(100 * r["train_err"], abs=0.005)
        assert float(m[5]) == pytest.approx(100 * r["val_err"], abs=0.005)
        assert m[6] == (str(r["test_errors"]) if e % 2 == 0 else "-")
        assert float(m[7]) == pytest.approx(r["lr"], rel=1e-3) and float(m[8]) == pytest.approx(r["momentum"], abs=1e-3)
        assert int(m[9]) == round(N / 10)
        assert m[10] == _fmt_time((EPOCHS - e) * 10.0), m[10]


def test_time_left_after_a_resume_counts_this_sessions_epochs(tmp_path, monkeypatch):
    import sys
    from nnkd.backend import get_backend
    monkeypatch.setattr(sys.modules["nnkd.train"], "time", Clock())
    be = get_backend()
    data, stop = blobs(be), StopFlag()

    def log(line):
        if "epoch    2/" in line:
            stop.signal = "SIGINT"

    with pytest.raises(Interrupted):
        train(cfg(), be, data, tmp_path / "s", log=log, stop=stop)
    monkeypatch.setattr(sys.modules["nnkd.train"], "time", Clock())  # this session's epochs: 10 s each
    lines = []
    train(cfg(), be, data, tmp_path / "s", log=lines.append)
    epoch_lines = [line for line in lines if line.startswith("  epoch")]
    assert epoch_lines[0].startswith("  epoch    3/4  ") and epoch_lines[0].endswith("  left 0:10")
    assert epoch_lines[1].endswith("  left 0:00") and "  val err    -    test " in epoch_lines[1]


def test_checkpoints_are_written_every_few_epochs_and_at_the_end(tmp_path, monkeypatch):
    from nnkd.backend import get_backend
    saved = []
    real = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, arrays, meta: (saved.append(meta["epoch"]),
                                                                       real(path, arrays, meta)))
    be = get_backend()
    _, summary = train(cfg(checkpoint_every=3), be, blobs(be), tmp_path / "s", log=quiet)
    assert saved == [3, 4]
    assert summary["epochs"] == EPOCHS and summary["params"] == 64 * 16 + 16 + 16 * 10 + 10


def test_exported_weights_keep_the_metadata_and_drop_the_optimizer(tmp_path):
    from nnkd.backend import get_backend
    from nnkd.checkpoint import export_weights
    be = get_backend()
    train(cfg(epochs=1), be, blobs(be), tmp_path / "s", log=quiet)
    src, dst = tmp_path / "s" / "checkpoint.npz", tmp_path / "w.npz"
    export_weights(src, dst, note="x")
    arrays, meta = checkpoint.load(dst)
    full, full_meta = checkpoint.load(src)
    assert sorted(arrays) == ["W0", "W1", "b0", "b1"] and any(k.startswith("velocity") for k in full)
    for k in arrays:
        np.testing.assert_array_equal(arrays[k], full[k])
    assert meta["weights_only"] is True and meta["note"] == "x"
    assert {k: v for k, v in meta.items() if k not in ("weights_only", "note")} == full_meta
    with pytest.raises(UserError, match="already exists"):
        export_weights(src, dst)
    export_weights(src, dst, force=True)


def test_interrupted_before_any_checkpoint_says_so(tmp_path):
    from nnkd.backend import get_backend
    be = get_backend()
    stop = StopFlag()
    stop.signal = "SIGTERM"
    with pytest.raises(Interrupted, match=r"^stopped by SIGTERM at epoch 1, step 1; the checkpoint .* holds epoch 0 \(later steps are discarded\)$"):
        train(cfg(), be, blobs(be), tmp_path / "s", log=quiet, stop=stop)


# ---- refusals on resume, through the Python API ------------------------------------------------

def trained_stage(tmp_path, **kw):
    from nnkd.backend import get_backend
    be = get_backend()
    data = blobs(be)
    stage = tmp_path / "s"
    train(cfg(epochs=1), be, data, stage, log=quiet, data_checksum="aaaa", **kw)
    return be, data, stage, (stage / "checkpoint.npz").read_bytes()


@pytest.mark.parametrize("change", [dict(lr=0.2), dict(momentum_form="classic"), dict(seed=1),
                                    dict(lr_schedule="cosine")],
                         ids=lambda d: next(iter(d)))
def test_resume_with_another_configuration_is_refused(tmp_path, change):
    be, data, stage, before = trained_stage(tmp_path)
    message = rf"^{re.escape(str(stage / 'checkpoint.npz'))} was written with another configuration; resume " \
        r"with the same settings or start a new run folder$"
    with pytest.raises(UserError, match=message):
        train(cfg(**dict(dict(epochs=1), **change)), be, data, stage, log=quiet, data_checksum="aaaa")
    assert (stage / "checkpoint.npz").read_bytes() == before


def test_resume_lengthens_an_exp_schedule_but_not_a_cosine_one(tmp_path):
    from nnkd.backend import get_backend
    be, data = get_backend(), blobs(get_backend())
    lines = []
    train(cfg(epochs=1), be, data, tmp_path / "exp", log=quiet)
    train(cfg(epochs=2), be, data, tmp_path / "exp", log=lines.append)
    assert f"lengthening {tmp_path / 'exp'} from 1 to 2 epochs" in lines and "epoch    2/2" in " ".join(lines)
    train(cfg(epochs=1, lr_schedule="cosine"), be, data, tmp_path / "cos", log=quiet)
    with pytest.raises(UserError, match="another configuration"):
        train(cfg(epochs=2, lr_schedule="cosine"), be, data, tmp_path / "cos", log=quiet)
    with pytest.raises(UserError) as e:
        train(cfg(epochs=1), be, data, tmp_path / "exp", log=quiet, name="teacher")
    assert str(e.value) == (f"{tmp_path / 'exp' / 'checkpoint.npz'} holds 2 epochs already: give "
                            "`teacher.epochs` of at least that to continue it")


def test_resume_on_other_data_is_refused(tmp_path):
    be, data, stage, before = trained_stage(tmp_path)
    message = rf"^{re.escape(str(stage / 'checkpoint.npz'))} was trained on other data \(checksum differs\)$"
    with pytest.raises(UserError, match=message):
        train(cfg(epochs=1), be, data, stage, log=quiet, data_checksum="bbbb")
    assert (stage / "checkpoint.npz").read_bytes() == before


def test_resume_of_another_architecture_is_refused(tmp_path):
    be, data, stage, before = trained_stage(tmp_path)
    with pytest.raises(UserError, match="another architecture"):
        train(cfg(epochs=1, arch="64-12-10"), be, data, stage, log=quiet, data_checksum="aaaa")
    assert (stage / "checkpoint.npz").read_bytes() == before


def test_resume_with_the_same_settings_and_data_is_accepted(tmp_path):
    be, data, stage, before = trained_stage(tmp_path)
    _, summary = train(cfg(epochs=1), be, data, stage, log=quiet, data_checksum="aaaa")
    assert summary["epochs"] == 1 and [r["epoch"] for r in metrics(stage)] == [1]
    assert (stage / "checkpoint.npz").read_bytes() == before  # nothing left to train


# ---- refusals on resume, through the command line (the 8x8 digits: seconds) ---------------------

DIGITS = example_data("digits8x8")


def one_line_exit_2(r):
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
    (line,) = error_lines(r.stderr)
    return line


@pytest.fixture
def digits_run(tmp_path):
    """A finished one-epoch train-student run on a copy of the digits file."""
    from tests.conftest import ROOT
    copy = tmp_path / "digits.npz"
    shutil.copy(DIGITS, copy)
    run = tmp_path / "run"
    r = main_py("train-student", "--dataset", f"npz:{copy}", "--preset", "smoke", "--epochs", "1",
                "--out", str(run), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return copy, run, (run / "student" / "checkpoint.npz").read_bytes()


def rewrite_npz(path, **changes):
    arrays = dict(np.load(path))
    for name, change in changes.items():
        arrays[name] = change(arrays[name].copy())
    np.savez(path, **arrays)


def test_cli_resume_refusals(digits_run, tmp_path):
    copy, run, before = digits_run
    spec = json.loads((run / "run.json").read_text())

    def resume(command="train-student"):
        return main_py(command, "--resume", str(run), timeout=120)

    # Another command.
    assert "made by `train-student`" in one_line_exit_2(resume("train-teacher"))
    # Another configuration in run.json than in the checkpoint.
    other = json.loads(json.dumps(spec))
    other["configs"]["student"]["lr"] = 0.07
    (run / "run.json").write_text(json.dumps(other))
    assert "another configuration" in one_line_exit_2(resume())
    (run / "run.json").write_text(json.dumps(spec))
    # Another dataset, of the same shapes: run.json names a different file.
    other_file = tmp_path / "other.npz"
    shutil.copy(copy, other_file)
    rewrite_npz(other_file, x_train=lambda x: x[::-1])
    other = dict(spec, dataset=f"npz:{other_file}")
    (run / "run.json").write_text(json.dumps(other))
    assert "other data" in one_line_exit_2(resume())
    (run / "run.json").write_text(json.dumps(spec))
    # The same dataset name, but its data changed since (one training label).
    rewrite_npz(copy, y_train=lambda y: np.where(np.arange(y.size) == 0, (y + 1) % 10, y))
    assert "other data" in one_line_exit_2(resume())
    assert (run / "student" / "checkpoint.npz").read_bytes() == before


def test_the_distillation_step_uses_the_logits_of_the_images_it_sees(tmp_path):
    """Through Step: the batch is jittered, and the loss is the distillation objective of the
    student's logits against the teacher's logits of exactly those shifted images."""
    from nnkd import losses, transfer
    from nnkd.backend import get_backend
    from nnkd.batches import jitter
    from nnkd.train import Step
    be = get_backend("numpy")
    rng = np.random.default_rng(0)
    X = rng.random((40, 784), dtype=np.float32)
    Y = rng.integers(0, 10, 40)
    student_cfg = TrainConfig(arch="784-8-10", transfer_jitter=1, temperature=3.0, soft_weight=1.0,
                              hard_weight=0.5, init_std=0.1)
    student = Network.from_settings(student_cfg, be)
    teacher = Network.from_settings(TrainConfig(arch="784-16-10", seed=1, init_std=0.1), be)
    logits = transfer.compute(teacher, {"x_train": X}, tmp_path / "z.npy", max_shift=1, log=quiet)
    idx = rng.permutation(40)[:16]
    xb, xj = X[idx].copy(), np.empty((16, 784), np.float32)
    k = jitter(xb, xj, 1, np.random.default_rng(7))
    assert len(set(k)) > 1  # several shifts in the batch
    want, _ = losses.distillation_loss(student.forward(xj.copy(), train=True), Y[idx],
                                       teacher.forward(xj.copy(), train=False), 3.0, 1.0, 0.5)
    loss, _ = Step(student_cfg, student)(X, Y, idx, 0.0, 0.0, np.random.default_rng(7), logits)
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


def test_without_transfer_jitter_the_distillation_step_uses_the_logits_of_its_own_images(tmp_path):
    """The same through Step, the images unmoved: the teacher's logits of exactly the batch's rows."""
    from nnkd import losses, transfer
    from nnkd.backend import get_backend
    from nnkd.train import Step
    be = get_backend("numpy")
    rng = np.random.default_rng(1)
    X = rng.random((40, 784), dtype=np.float32)
    Y = rng.integers(0, 10, 40)
    student_cfg = TrainConfig(arch="784-8-10", temperature=3.0, soft_weight=1.0, hard_weight=0.5,
                              init_std=0.1)
    student = Network.from_settings(student_cfg, be)
    teacher = Network.from_settings(TrainConfig(arch="784-16-10", seed=1, init_std=0.1), be)
    logits = transfer.compute(teacher, {"x_train": X}, tmp_path / "z.npy", max_shift=0, log=quiet)
    idx = rng.permutation(40)[:16]
    want, _ = losses.distillation_loss(student.forward(X[idx].copy(), train=True), Y[idx],
                                       teacher.forward(X[idx].copy(), train=False), 3.0, 1.0, 0.5)
    loss, _ = Step(student_cfg, student)(X, Y, idx, 0.0, 0.0, np.random.default_rng(7), logits)
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


def test_a_diverging_distillation_names_the_temperature_too(tmp_path):
    from nnkd import transfer
    from nnkd.backend import get_backend
    from nnkd.errors import TrainingDiverged
    be = get_backend()
    data = blobs(be)
    teacher = Network.from_settings(TrainConfig(arch=cfg().arch, seed=1, init_std=0.1), be)
    logits = transfer.compute(teacher, data, tmp_path / "z.npy", max_shift=0, log=quiet)
    with pytest.raises(TrainingDiverged) as e:
        train(cfg(lr=1e20, momentum_form="classic", max_norm=0.0, dropout_hidden=0.0, lr_schedule="constant",
                  soft_weight=1.0, hard_weight=0.0), be, data, tmp_path / "s", teacher_logits=logits,
              log=quiet, name="student")
    assert str(e.value).endswith("the likely cause is a learning rate too high for this model and temperature "
                                 "(lower `student.lr`, or `student.temperature`); the last good checkpoint "
                                 f"({tmp_path / 's' / 'checkpoint.npz'}, epoch 0) is kept")


def test_logits_for_other_images_are_refused_before_training(tmp_path):
    from nnkd import transfer
    from nnkd.backend import get_backend
    be = get_backend()
    data = blobs(be)
    teacher = Network.from_settings(TrainConfig(arch=cfg().arch, seed=1, init_std=0.1), be)
    fewer = dict(data, x_train=data["x_train"][:-1])
    logits = transfer.compute(teacher, fewer, tmp_path / "z.npy", max_shift=0, log=quiet)
    n, classes = data["x_train"].shape[0], 10
    with pytest.raises(UserError) as e:
        train(cfg(soft_weight=1.0), be, data, tmp_path / "s", teacher_logits=logits, log=quiet)
    assert str(e.value) == (f"the array of teacher logits holds logits for {n - 1} images, but the transfer set "
                            f"has {n} training images (after `train_limit` and `validation`)")
    assert not (tmp_path / "s" / "checkpoint.npz").exists()
    with pytest.raises(UserError) as raw:  # the logits as a plain (N, classes) array: the same check
        train(cfg(soft_weight=1.0), be, data, tmp_path / "s", teacher_logits=logits.logits[0], log=quiet)
    assert str(raw.value) == str(e.value)


def test_train_takes_the_run_folders_lock(tmp_path):
    from nnkd.backend import get_backend
    from nnkd.runlock import RunLock
    be = get_backend()
    with RunLock(tmp_path / "s"):
        with pytest.raises(UserError, match=rf"^{re.escape(str(tmp_path / 's'))} is in use by "):
            train(cfg(epochs=1), be, blobs(be), tmp_path / "s", log=quiet)
    assert not (tmp_path / "s" / "checkpoint.npz").exists()


def test_the_time_left_for_this_model_and_for_the_whole_run(tmp_path, monkeypatch):
    """Each epoch takes 7 s on a fake clock: with 6 epochs of this model's cost after it, the
    line gives this model's time left and the run's."""
    import importlib
    import itertools
    from nnkd.backend import get_backend
    be = get_backend()
    clock = itertools.count(0.0, 7.0)
    monkeypatch.setattr(importlib.import_module("nnkd.train").time, "perf_counter", lambda: next(clock))
    lines = []
    train(cfg(epochs=3), be, blobs(be), tmp_path / "a", log=lines.append, later_epochs=6)
    ends = [line.split("ex/s")[1].strip() for line in lines if line.lstrip().startswith("epoch")]
    assert ends == ["left 0:14 (run 0:56)", "left 0:07 (run 0:49)", "left 0:00 (run 0:42)"]
    lines.clear()
    train(cfg(epochs=2), be, blobs(be), tmp_path / "b", log=lines.append)
    ends = [line.split("ex/s")[1].strip() for line in lines if line.lstrip().startswith("epoch")]
    assert ends == ["left 0:07", "left 0:00"]
