"""Teachers behind one interface: a checkpoint, a shipped name, an ONNX model, a logits file and an
ensemble of them; what ``--resume`` pins of each (the SHA-256 of its file); the ensemble's mean."""

import json
import shutil

import numpy as np
import pytest

from nnkd import TrainConfig, get_backend, train
from nnkd.errors import UserError
from nnkd.install import example_data
from tests.conftest import error_lines, main_py

DIGITS = example_data("digits8x8")
DS = f"npz:{DIGITS}"
QUICK = ["--dataset", DS, "--preset", "smoke", "--epochs", "1", "--no-baseline", "--lr-schedule", "exp"]


def digits():
    with np.load(DIGITS) as d:
        return {k: d[k].reshape(len(d[k]), -1).astype(np.float32) / np.float32(255) if k[0] == "x"
                else d[k].astype(np.int64) for k in ("x_train", "y_train", "x_test", "y_test")}


def model(path, seed):
    """A dense ONNX model ``(path, W, b)`` of seed ``seed`` (the test is skipped without onnx)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from tests.test_any_teacher import dense
    rng = np.random.default_rng(seed)
    W, b = rng.normal(0, 1, (64, 10)).astype(np.float32), rng.normal(0, 1, 10).astype(np.float32)
    return dense(path, W, b), W, b


def run(*args):
    return main_py(*map(str, args))


def ok(r):
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r


def one_line(r):
    lines = error_lines(r.stderr)
    assert r.returncode != 0 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def files(run_dir):
    """Every file of a run but its log and lock, with its time of change."""
    return sorted((str(p), p.stat().st_mtime_ns) for p in run_dir.rglob("*") if p.name not in ("log.txt", ".lock"))


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "model"
    train(TrainConfig(arch="64-48-10", epochs=3, lr=0.1, init_std=0.1), get_backend("numpy"), digits(), out,
          log=lambda line: None)
    return out / "checkpoint.npz"


# ---------------------------------------------------------------- every kind pinned on --resume

def test_an_onnx_teacher_replaced_under_a_run_is_refused_when_it_resumes(tmp_path):
    onnx_file = model(tmp_path / "t.onnx", 0)[0]
    out = tmp_path / "run"
    ok(run("distill", *QUICK, "--teacher", onnx_file, "--out", out))
    model(onnx_file, 1)  # another model under the same name
    before = files(out)
    line = one_line(run("distill", "--resume", out, "--epochs", "2"))
    assert f"the teacher {onnx_file} has changed since this run began" in line
    assert "put that file back, or start a new run" in line
    assert files(out) == before  # nothing trained, nothing rewritten
    pinned = json.loads((out / "run.json").read_text())["teacher_identity"]
    assert pinned["kind"] == "onnx" and pinned["source"] == str(onnx_file) and len(pinned["teacher_sha256"]) == 64


def test_a_deleted_onnx_teacher_resumes_from_the_cached_logits(tmp_path):
    onnx_file = model(tmp_path / "t.onnx", 0)[0]
    out = tmp_path / "run"
    ok(run("distill", *QUICK, "--teacher", onnx_file, "--out", out))
    cached = (out / "teacher_logits.npy").read_bytes()
    onnx_file.unlink()
    r = ok(run("distill", "--resume", out, "--epochs", "2"))
    assert f"this run's teacher {onnx_file} is gone; the run goes on from its logits" in r.stdout
    assert (out / "teacher_logits.npy").read_bytes() == cached
    assert json.loads((out / "results.json").read_text())["models"]["distilled"]["epochs"] == 2
    assert json.loads((out / "run.json").read_text())["teacher_identity"]["source"] == str(onnx_file)
    (out / "teacher_logits.npy").unlink()  # gone, and nothing to stand for it
    line = one_line(run("distill", "--resume", out, "--epochs", "3"))
    assert f"this run's teacher {onnx_file} is gone and its logits are not cached in {out}" in line


def test_a_changed_logits_file_is_refused_when_its_run_resumes(tmp_path):
    z = digits()["x_train"][:1500] @ np.ones((64, 10), np.float32)
    np.save(tmp_path / "z.npy", z)
    out = tmp_path / "run"
    ok(run("distill", *QUICK, "--teacher-logits", tmp_path / "z.npy", "--out", out))
    np.save(tmp_path / "z.npy", z + 1)
    line = one_line(run("distill", "--resume", out, "--epochs", "2"))
    assert f"the teacher {tmp_path / 'z.npy'} has changed since this run began" in line


# ---------------------------------------------------------------- ensembles

def test_the_arithmetic_mean_is_the_mean_distribution_at_T_and_the_geometric_the_mean_logits():
    from nnkd.losses import softmax
    from nnkd.teachers import mean_logits
    rng = np.random.default_rng(0)
    z = [rng.normal(0, 30, (50, 10)).astype(np.float32) for _ in range(3)]  # large logits: stability
    for T in (1.0, 4.0, 20.0):
        got = mean_logits(iter(z), "arithmetic", T)
        assert got.dtype == np.float32 and np.isfinite(got).all()
        want = np.mean([softmax(a.astype(np.float64), T) for a in z], axis=0)
        assert np.allclose(softmax(got.astype(np.float64), T), want, atol=1e-6)
    assert np.allclose(mean_logits(z, "geometric", 4.0), np.mean(z, axis=0), atol=1e-5)


def test_an_ensemble_of_every_kind_is_distilled_from_and_pins_each_member(tmp_path, digits_ckpt):
    from nnkd.teachers import mean_logits
    onnx_file, W, b = model(tmp_path / "t.onnx", 0)
    x = digits()["x_train"][:1500]
    np.save(tmp_path / "z.npy", (x @ W[::-1] + 1).astype(np.float32))
    ckpt = tmp_path / "ckpt.npz"
    shutil.copy(digits_ckpt, ckpt)
    members = [ckpt, onnx_file, tmp_path / "z.npy"]
    singles = []
    for i, m in enumerate(members):
        out = tmp_path / f"single{i}"
        ok(run("distill", *QUICK, "--teacher", m, "--out", out, "--temperature", 3))
        singles.append(np.load(out / "teacher_logits.npy"))
    out = tmp_path / "ensemble"
    r = ok(run("distill", *QUICK, *[a for m in members for a in ("--teacher", m)], "--temperature", 3, "--out", out))
    assert np.allclose(np.load(out / "teacher_logits.npy"), mean_logits(singles, "arithmetic", 3.0), atol=1e-5)
    models = json.loads((out / "results.json").read_text())["models"]
    assert list(models) == ["teacher 1", "teacher 2", "teacher 3", "teacher", "distilled"]
    assert [models[f"teacher {i}"]["kind"] for i in (1, 2, 3)] == ["checkpoint", "onnx", "logits"]
    assert models["teacher 3"]["test_errors"] is None and models["teacher"]["test_errors"] is None
    table = (out / "results.md").read_text()
    assert "| teacher 2: t.onnx |" in table and "| ensemble of 3 teachers, arithmetic mean" in table
    identity = json.loads((out / "run.json").read_text())["teacher_identity"]
    assert identity["kind"] == "ensemble" and identity["temperature"] == 3.0
    assert [m["source"] for m in identity["members"]] == [str(m) for m in members]
    shutil.copy(tmp_path / "single0/distilled/checkpoint.npz", ckpt)  # one member changes
    line = one_line(run("distill", "--resume", out, "--epochs", "2"))
    assert f"the teacher {ckpt} has changed since this run began" in line
    geo = tmp_path / "geometric"
    ok(run("distill", *QUICK, "--teacher", onnx_file, "--teacher", tmp_path / "z.npy", "--ensemble", "geometric",
           "--out", geo))
    assert np.allclose(np.load(geo / "teacher_logits.npy"), (singles[1] + singles[2]) / 2, atol=1e-5)


def test_ensemble_flags_that_do_not_fit_fail_in_one_line(tmp_path, digits_ckpt):
    for args, message in ((["--teacher", digits_ckpt, "--ensemble", "geometric"], "--ensemble applies to an ensemble"),
                          (["--teacher", digits_ckpt, "--teacher", digits_ckpt], "names one teacher twice")):
        assert message in one_line(run("distill", *QUICK, *args, "--dry-run"))


def test_the_python_api_takes_a_list_of_teachers(tmp_path, digits_ckpt):
    from nnkd.config import RunSpec
    from nnkd.data import load
    from nnkd.losses import softmax
    from nnkd.pipeline import run_distill
    from nnkd.presets import preset
    from nnkd.teachers import Ensemble, NetworkTeacher, open_source
    be, ds = get_backend("numpy"), load(DS, log=lambda line: None)
    cfgs, _ = preset("smoke")
    from dataclasses import replace
    spec = RunSpec(command="distill", dataset=DS, student=replace(cfgs["student"], arch="64-16-10", epochs=1),
                   baseline=False)
    parts = [open_source(digits_ckpt, be, ds, 1500), NetworkTeacher.open(digits_ckpt, be, ds)]
    results, table = run_distill(spec, be, ds, tmp_path / "api", log=lambda line: None, teacher=parts)
    assert {"teacher 1", "teacher 2", "teacher"} <= set(results["models"])
    same = np.load(tmp_path / "api" / "teacher_logits.npy")  # two equal members: the member's distribution
    run_distill(spec, be, ds, tmp_path / "one", log=lambda line: None, teacher=parts[0])
    one, T = np.load(tmp_path / "one" / "teacher_logits.npy"), spec.student.temperature
    assert np.allclose(softmax(same.astype(np.float64), T), softmax(one.astype(np.float64), T), atol=1e-6)
    with pytest.raises(UserError, match="two teachers or more"):
        Ensemble(parts[:1])


def test_two_shipped_teachers_are_distilled_from_as_an_ensemble(tmp_path):
    out = tmp_path / "run"
    ok(run("distill", "--preset", "smoke", "--teacher", "public-teacher", "--teacher", "paper-teacher",
           "--epochs", "1", "--train-limit", "2000", "--transfer-jitter", "0", "--out", out))
    models = json.loads((out / "results.json").read_text())["models"]
    assert list(models) == ["teacher 1", "teacher 2", "teacher", "student", "distilled"]
    assert models["teacher 1"]["test_errors"] == 62 and models["teacher 2"]["test_errors"] == 61
    assert models["teacher"]["test_errors"] < 100
    table = (out / "results.md").read_text()
    assert "| teacher 1: public-teacher (784-1200-1200-10) |" in table
    assert "| teacher 2: paper-teacher (784-1200-1200-10) |" in table
    assert "| ensemble of 2 teachers, arithmetic mean of the distributions at T=8 |" in table
