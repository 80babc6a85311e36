"""benchmarks/long_runs.sh: where each kind of long run stands (a teacher, a plain student, a
distilled student without its baseline), read from its run folder."""

import json
import subprocess

from tests.conftest import ROOT


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
