"""benchmarks/long_runs.sh: where each kind of long run stands (a teacher, a plain student, a
distilled student without its baseline), read from its run folder; a finished teacher shipped."""

import hashlib
import json
import os
import subprocess

import pytest

from tests.conftest import ROOT, main_py


def run_folder(folder, command, stages, **spec):
    """A run folder as nnkd leaves it: run.json, and each stage's epochs in checkpoint.json."""
    folder.mkdir(parents=True)
    configs = {role: {"epochs": 3000} for role in ("teacher", "student")}
    (folder / "run.json").write_text(json.dumps(dict(command=command, configs=configs, **spec)))
    for stage, epoch in stages.items():
        (folder / stage).mkdir()
        (folder / stage / "checkpoint.json").write_text(json.dumps({"epoch": epoch}))


def status(tmp_path, *names):
    r = subprocess.run(["bash", "benchmarks/long_runs.sh", "status", str(tmp_path), *names], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, {line.split(":")[0]: line.split(":", 1)[1].split(";")[0].strip()
                          for line in r.stdout.splitlines()}, r.stderr


def test_status_of_each_kind_of_run(tmp_path):
    run_folder(tmp_path / "paper-teacher", "train-teacher", {"teacher": 1271})
    run_folder(tmp_path / "paper-student", "train-student", {"student": 3000})
    run_folder(tmp_path / "paper-distilled", "distill", {"distilled": 12}, baseline=False)
    rc, where, err = status(tmp_path, "paper-teacher", "paper-student", "paper-distilled", "long-teacher")
    assert rc == 0, err
    assert where == {"paper-teacher": f"teacher 1271/3000 in {tmp_path}",
                     "paper-student": f"done in {tmp_path}",
                     "paper-distilled": f"distilled 12/3000 in {tmp_path}",
                     "long-teacher": f"not started in {tmp_path}"}


def test_a_distill_run_with_its_baseline_counts_both_students(tmp_path):
    run_folder(tmp_path / "paper-distilled", "distill", {"student": 3000}, baseline=True)
    rc, where, err = status(tmp_path, "paper-distilled")
    assert rc == 0 and where == {"paper-distilled": f"student 3000/3000, distilled 0/3000 in {tmp_path}"}, err


def test_an_unknown_run_is_refused(tmp_path):
    rc, _, err = status(tmp_path, "paper-students")
    assert rc == 2 and err.startswith("unknown run paper-students: one of"), err


@pytest.mark.mnist
def test_a_finished_teacher_is_shipped_with_its_figures(tmp_path):
    """`ship` exports the weights, keeps settings, metrics and log, writes SHA256SUMS, and prints
    the figures its README quotes; an unfinished run is refused."""
    runs, shipped = tmp_path / "runs", tmp_path / "pretrained"
    r = main_py("train-teacher", "--preset", "smoke", "--epochs", "1", "--out", str(runs / "paper-teacher"))
    assert r.returncode == 0, r.stderr
    ship = ["bash", "benchmarks/long_runs.sh", "ship", str(runs), "paper-teacher"]
    r = subprocess.run(ship, cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "SHIP_TO": str(shipped)})
    assert r.returncode == 0, r.stderr
    to = shipped / "paper-teacher"
    assert sorted(p.name for p in to.iterdir()) == ["SHA256SUMS", "checkpoint.json", "checkpoint.npz",
                                                    "config.json", "metrics.jsonl", "train.log"]
    digest = hashlib.sha256((to / "checkpoint.npz").read_bytes()).hexdigest()
    assert (to / "SHA256SUMS").read_text() == f"{digest}  checkpoint.npz\n"
    errors = json.loads((runs / "paper-teacher/teacher/metrics.jsonl").read_text().splitlines()[-1])["test_errors"]
    assert f"test errors: {errors} of 10000" in r.stdout
    assert "epochs: 1; training time: 0.00 h" in r.stdout and f"sha256 {digest}" in r.stdout
    run_folder(tmp_path / "again" / "paper-teacher", "train-teacher", {"teacher": 1271})
    r = subprocess.run(ship[:3] + [str(tmp_path / "again"), "paper-teacher"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "SHIP_TO": str(shipped / "no")})
    assert r.returncode == 2 and "not finished" in r.stderr and not (shipped / "no").exists()
