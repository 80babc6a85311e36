"""The transfer-set experiments: restricted transfer sets and bias correction, sweeps, seed tables, plots."""

import json
import sys

import numpy as np
import pytest

from nnkd import checkpoint
from nnkd.backend import get_backend
from nnkd.evaluation import _errors_after_correction, bias_correction
from nnkd.install import extra_hint
from nnkd.tables import runs_table
from nnkd.transfer import TeacherLogits, without_classes
from tests.conftest import capped, main_py


class FixedLogits:
    """Stands in for a network: returns given logits for given inputs (by identity)."""

    def __init__(self, table):
        self.backend = get_backend("numpy")
        self.table = table

    def predict_logits(self, x):
        return self.table[id(x)]


def test_correction_raises_only_the_absent_classes():
    z = np.array([[0.0, 1.0, 0.5], [3.0, 0.0, 1.5]])
    y = np.array([2, 2])
    assert _errors_after_correction(z, y, [2], 0.0) == (2, 2)
    assert _errors_after_correction(z, y, [2], 0.6) == (1, 1)   # row 0 needs > 0.5, row 1 > 1.5
    assert _errors_after_correction(z, y, [2], 2.0) == (0, 0)
    assert _errors_after_correction(z, y, [0], 5.0) == (2, 0)   # no test image is a 0


def test_bias_correction_is_chosen_on_validation_not_test():
    """The absent class's logit is too low by 3 on validation data and by 6 on test data: the
    chosen offset fits validation (any offset in 1..5 is right there, the middle is taken), and
    only the test-set reference fits the test data (4..8)."""
    rng = np.random.default_rng(0)

    def logits(n, gap):
        y = rng.integers(0, 3, n)
        z = rng.normal(0, 0.05, (n, 3))
        z[np.arange(n), y] += 2.0
        z[:, 2] -= gap
        return z, y

    zv, yv = logits(2000, 3.0)
    zt, yt = logits(2000, 6.0)
    data = {"x_val": np.zeros(1), "y_val": yv, "x_test": np.zeros(2), "y_test": yt}
    net = FixedLogits({id(data["x_val"]): zv, id(data["x_test"]): zt})
    c = bias_correction(net, data, [2])
    assert c["before"]["test_errors"] == c["before"]["test_errors_on_absent"] == (yt == 2).sum()
    assert c["chosen"]["validation_errors"] == 0 and 2.5 < c["chosen"]["offset"] < 3.5, c["chosen"]
    assert c["chosen"]["test_errors"] == (yt == 2).sum()  # too small an offset for the test data
    assert c["best_on_test"]["test_errors"] == 0 and 4.0 < c["best_on_test"]["offset"] < 8.0
    assert "paper" not in c  # the paper's +3.5 is for omitting the 3s of MNIST


@pytest.mark.parametrize("shape, max_shift", [((6, 3), 0), ((9, 6, 3), 1)])
def test_restricted_transfer_set_keeps_images_with_their_logits(shape, max_shift):
    be = get_backend("numpy")
    y = np.array([0, 3, 1, 3, 2, 0])
    data = {"x_train": np.arange(6.0)[:, None] * np.ones((1, 4)), "y_train": y, "x_test": None}
    z = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    d, t = without_classes(data, TeacherLogits(z, max_shift), [3], be)
    keep = [0, 2, 4, 5]
    np.testing.assert_array_equal(d["y_train"], y[keep])
    np.testing.assert_array_equal(d["x_train"][:, 0], keep)
    np.testing.assert_array_equal(t.on_disk(), z[..., keep, :])
    assert t.logits.flags["C_CONTIGUOUS"]  # the training step reshapes it: no copy per step
    with pytest.raises(Exception, match="no images"):
        without_classes(data, TeacherLogits(z, max_shift), [0, 1, 2, 3], be)


def test_teacher_logits_with_the_wrong_number_of_shifts_are_refused():
    with pytest.raises(Exception, match="shift"):
        TeacherLogits(np.zeros((2, 6, 3), np.float32), max_shift=0)
    with pytest.raises(Exception, match="not finite|NaN"):
        TeacherLogits(np.full((6, 3), np.nan, np.float32))


BAD = [
    (["distill", "--omit-digit", "11"], "must be classes 0 to 9, got [11]"),
    (["distill", "--only-digits", "7,x"], "give whole numbers separated by commas"),
    (["distill", "--omit-digit", "3", "--only-digits", "7,8"], "exclude each other"),
    (["distill", "--omit-digit", "0,1,2,3,4,5,6,7,8,9"], "no class"),
    (["distill", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["sweep", "--temperatures", "1,hot"], "--temperatures '1,hot'"),
    (["sweep", "--widths", "0,30"], "--widths must be a positive whole number"),
    (["sweep", "--jobs", "0"], "--jobs must be"),
    (["sweep", "--validation", "60000"], "leave no training images"),
    (["sweep", "--dataset", "fashion-mnist"], "give --teacher"),
    (["sweep", "--widths", "800", "--batch-size", "0"], "--batch-size must be"),
    (["report", "no/such/run"], "no results.json"),
    (["plot", "no/such/run"], "not a run or sweep folder"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    out = tmp_path / "run"
    extra = ["--out", str(out)] if args[0] in ("distill", "sweep") else []
    r = main_py(*capped(*args, *extra))
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in r.stderr and len(errors) == 1 and message in errors[0], r.stderr
    assert not out.exists()


def test_teacher_trained_on_other_data_is_refused(tmp_path):
    ckpt = tmp_path / "teacher.npz"
    checkpoint.save(ckpt, {"W0": np.zeros((784, 10), np.float32), "b0": np.zeros(10, np.float32)},
                    {"config": {"arch": "784-10"}, "epoch": 1, "data_checksum": "0123456789abcdef"})
    r = main_py(*capped("distill", "--teacher", str(ckpt), "--out", str(tmp_path / "run")))
    assert r.returncode == 2 and "trained on other data than mnist" in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


# ---- on the real MNIST: a smoke teacher, then the experiments that distill from it --------------

@pytest.fixture(scope="module")
def smoke_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    r = main_py("train-teacher", "--preset", "smoke", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out / "teacher" / "checkpoint.npz"


@pytest.mark.mnist
def test_omit_digit_reports_the_bias_correction(smoke_teacher, tmp_path):
    out = tmp_path / "omit3"
    r = main_py("distill", "--preset", "smoke", "--teacher", str(smoke_teacher), "--omit-digit", "3",
                "--no-baseline", "--validation", "1000", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["absent_classes"] == [3]
    c = res["bias_correction"]["distilled"]
    assert c["n_test_absent"] == 1010 and c["paper"]["offset"] == 3.5
    assert c["chosen"]["n_validation"] == 1000
    assert c["best_on_test"]["test_errors"] <= min(c["before"]["test_errors"], c["chosen"]["test_errors"])
    assert "transfer set: 3608 images, without class(es) 3" in r.stdout  # 4000 minus their 392 threes
    assert "+3.5 (the paper's)" in r.stdout and "206 (133 on 3s)" in r.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["validation"] == 1000 and run["absent_classes"] == [3]


@pytest.mark.mnist
def test_sweep_trains_each_cell_once_and_tables_them(smoke_teacher, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--preset", "smoke", "--teacher", str(smoke_teacher), "--widths", "16,8",
            "--temperatures", "2,8", "--seeds", "0,1", "--epochs", "2", "--train-limit", "1000",
            "--out", str(out)]
    r = main_py(*args, "--jobs", "2")
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    assert len(res["cells"]) == 4 and all(len(c["errors"]) == 2 for c in res["cells"])
    assert "| 16 |" in r.stdout and " ± " in r.stdout and "(n=2)" in r.stdout
    # A cell is its own stage folder; run again: nothing left to train, same table.
    summary = json.loads((out / "w8-T2-s1" / "summary.json").read_text())
    assert summary["arch"] == "784-8-8-10" and summary["temperature"] == 2.0 and summary["seed"] == 1
    (out / "w8-T2-s1" / "summary.json").unlink()
    again = main_py(*args)
    assert again.returncode == 0, again.stderr
    assert "7 already done, 1 to train" in again.stdout
    assert json.loads((out / "results.json").read_text())["cells"] == res["cells"]
    other = main_py(*args[:-2], "--epochs", "3", "--out", str(out))
    assert other.returncode == 2 and "other settings" in other.stderr


@pytest.mark.mnist
def test_plot_writes_valid_pngs(smoke_teacher, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image
    out = tmp_path / "run"
    r = main_py("distill", "--preset", "smoke", "--teacher", str(smoke_teacher), "--epochs", "3",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    r = main_py("plot", str(out))
    assert r.returncode == 0, r.stderr
    for name in ("learning_curves.png", "dark_knowledge.png"):
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0.01, name


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    from nnkd.cli import main
    (tmp_path / "run.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and extra_hint("plot") in err


def test_runs_table_gives_mean_and_std(tmp_path):
    for name, errs in (("a", (70, 150, 80)), ("b", (74, 154, 86))):
        d = tmp_path / name
        d.mkdir()
        models = {role: {"test_errors": e, "seconds": 60.0} for role, e in
                  zip(("teacher", "student", "distilled"), errs)}
        (d / "results.json").write_text(json.dumps({"models": models, "student_config": {"seed": 1}}))
    table = runs_table([tmp_path / "a", tmp_path / "b"])
    assert "| a | 1 | 70 | 150 | 80 | 3.0 min |" in table
    assert "| mean ± std (2 runs) | | 72.0 ± 2.8 | 152.0 ± 2.8 | 83.0 ± 4.2 | |" in table
