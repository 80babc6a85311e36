"""Damaged files and concurrent processes through the command line: one ``error:`` line,
exit status 2, nothing already computed lost.  The readers themselves are
fuzzed in tests/test_files.py; here each kind of file meets the command that reads it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nnkd import checkpoint
from nnkd.runlock import RunLock
from tests.conftest import ROOT, capped, error_lines, main_py

pytestmark = pytest.mark.mnist


def one_line_exit_2(r):
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout + r.stderr
    (line,) = error_lines(r.stderr)
    return line


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished smoke student and a distill run from it (a small stand-in teacher)."""
    base = tmp_path_factory.mktemp("runs")
    r = main_py("train-student", "--preset", "smoke", "--epochs", "2", "--out", str(base / "student"))
    assert r.returncode == 0, r.stderr
    teacher = base / "student" / "student" / "checkpoint.npz"
    r = main_py("distill", "--preset", "smoke", "--teacher", str(teacher), "--epochs", "1",
                "--no-baseline", "--out", str(base / "distill"))
    assert r.returncode == 0, r.stderr
    return base


def damaged(tmp_path, kind, good):
    """A damaged copy of the file ``good`` (bytes) of the given kind."""
    p = tmp_path / f"bad-{kind}"
    rng = np.random.default_rng(0)
    data = {"empty": b"", "truncated": good[:len(good) // 2 + 7], "random": rng.bytes(300),
            "json-list": b"[1, 2, 3]", "json-string": b'"hello"'}[kind]
    p.write_bytes(data)
    return p


def copy_run(runs, name, tmp_path, damage=None, kind=None):
    """A copy of the fixture's run ``name``; ``damage``: a file in it to damage as ``kind``."""
    run = tmp_path / "run"
    shutil.copytree(runs / name, run)
    if damage:
        (run / damage).write_bytes(damaged(tmp_path, kind, (run / damage).read_bytes()).read_bytes())
    return run


KINDS = ["empty", "truncated", "random", "json-list", "json-string"]


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_checkpoint_given_to_evaluate_and_distill(runs, tmp_path, kind):
    good = (runs / "student" / "student" / "checkpoint.npz").read_bytes()
    bad = damaged(tmp_path, kind, good).rename(tmp_path / "ckpt.npz")
    assert str(bad) in one_line_exit_2(main_py("evaluate", str(bad)))
    out = tmp_path / "run"
    assert str(bad) in one_line_exit_2(main_py(*capped("distill", "--teacher", str(bad), "--out", str(out))))
    assert not out.exists()


def test_wrong_format_given_as_checkpoint(runs, tmp_path):
    npy = tmp_path / "logits.npy"
    np.save(npy, np.zeros((3, 10), np.float32))
    assert "single .npy array" in one_line_exit_2(main_py("evaluate", str(npy)))
    sidecar = runs / "student" / "student" / "checkpoint.json"
    assert "is JSON" in one_line_exit_2(main_py("distill", "--teacher", str(sidecar), "--dry-run"))


def test_checkpoint_with_nan_weights_is_refused_by_evaluate(runs, tmp_path):
    arrays, meta = checkpoint.load(runs / "student" / "student" / "checkpoint.npz")
    arrays["W1"][0, 0] = np.nan
    path = tmp_path / "nan.npz"
    checkpoint.save(path, arrays, meta)
    line = one_line_exit_2(main_py("evaluate", str(path)))
    assert "W1" in line and "NaN" in line


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_run_json_on_resume(runs, tmp_path, kind):
    run = copy_run(runs, "student", tmp_path, "run.json", kind)
    before = (run / "student" / "checkpoint.npz").read_bytes()
    assert "run.json" in one_line_exit_2(main_py("train-student", "--resume", str(run)))
    assert (run / "student" / "checkpoint.npz").read_bytes() == before


def test_run_json_of_the_wrong_shape_on_resume(runs, tmp_path):
    run = copy_run(runs, "student", tmp_path)
    spec = json.loads((run / "run.json").read_text())
    for bad in (dict(spec, configs="a string"), dict(spec, configs={"student": [1, 2]}),
                dict(spec, configs={"student": dict(spec["configs"]["student"], lr="fast")})):
        (run / "run.json").write_text(json.dumps(bad))
        assert "run.json" in one_line_exit_2(main_py("train-student", "--resume", str(run)))


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_results_json_in_report(runs, tmp_path, kind):
    run = copy_run(runs, "distill", tmp_path, "results.json", kind)
    assert "results.json" in one_line_exit_2(main_py("report", str(run)))


def test_torn_metrics_line_is_dropped_on_resume(runs, tmp_path):
    run = copy_run(runs, "student", tmp_path)
    metrics = run / "student" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"epoch": 3, "loss": 0.1')  # a kill mid-append
    r = main_py("train-student", "--resume", str(run))
    assert r.returncode == 0, r.stderr
    assert "dropped a torn last line" in r.stdout
    assert all(json.loads(line) for line in metrics.read_text().splitlines())


def test_damaged_teacher_logits_on_resume(runs, tmp_path):
    run = copy_run(runs, "distill", tmp_path)
    logits = run / "teacher_logits.npy"
    logits.write_bytes(logits.read_bytes()[:1000])
    line = one_line_exit_2(main_py("distill", "--resume", str(run)))
    assert "teacher_logits.npy" in line and "delete it" in line


def test_export_never_overwrites_without_force(runs, tmp_path):
    src = runs / "student" / "student" / "checkpoint.npz"
    dest = tmp_path / "weights.npz"
    (tmp_path / "weights.json").write_text("my notes")
    assert "weights.json" in one_line_exit_2(main_py("export", str(src), str(dest)))
    assert (tmp_path / "weights.json").read_text() == "my notes" and not dest.exists()
    assert ".npz" in one_line_exit_2(main_py("export", str(src), str(tmp_path / "out.json")))
    assert not (tmp_path / "out.json").exists()
    r = main_py("export", str(src), str(dest), "--force")
    assert r.returncode == 0, r.stderr
    arrays, meta = checkpoint.load(dest)
    assert meta["weights_only"] and "velocity0" not in arrays
    assert meta["exported_from"] == "checkpoint.npz"  # a file name, not a machine's absolute path


def test_second_process_on_a_run_folder_is_refused_then_a_dead_holders_lock_is_taken(runs, tmp_path):
    run = copy_run(runs, "student", tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nnkd.runlock import RunLock; "
                               f"RunLock({str(run)!r}).acquire(); print('locked', flush=True); "
                               "time.sleep(600)"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = one_line_exit_2(main_py("train-student", "--resume", str(run)))
        assert f"process {holder.pid}" in line and "one process per run folder" in line
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    r = main_py("train-student", "--resume", str(run))  # the lock of a killed process is taken over
    assert r.returncode == 0, r.stderr
    with RunLock(run):
        pass


def test_sigterm_during_the_teacher_logits_stops_within_a_second(runs, tmp_path):
    """The logits stage checks the stop flag between chunks; the file is whole or absent."""
    teacher = runs / "student" / "student" / "checkpoint.npz"
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "main.py", "distill", "--teacher", str(teacher),
                             "--transfer-jitter", "4", "--epochs", "1", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "log.txt").exists() or "teacher:" not in (out / "log.txt").read_text():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)  # inside the 81 x 60,000-image stage
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 2.0, err
    assert proc.returncode == 130 and "teacher's logits" in err and "Traceback" not in err, err
    assert not (out / "teacher_logits.npy").exists()
