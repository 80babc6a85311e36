"""Command-line mistakes: one line, exit status 2, no traceback, nothing written."""

import pytest

from tests.conftest import capped, main_py


def run(*args):
    return main_py(*capped(*args))


BAD = [
    (["distill", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["distill", "--temperature", "0"], "--temperature is outside [0.001, 10000]"),
    (["distill", "--temperature", "-3"], "--temperature is outside [0.001, 10000]"),
    (["distill", "--temperature", "1e20"], "--temperature is outside [0.001, 10000]"),
    (["distill", "--init-std", "1e-50"], "--init-std 1e-50 is zero in float32"),
    (["distill", "--lr", "1e-50"], "--lr 1e-50 is zero in float32"),
    (["sweep", "--temperatures", "2,2"], "--temperatures gives 2 twice"),
    (["distill", "--dropout-hidden", "1.0"], "outside [0, 1)"),
    (["train-teacher", "--dropout-input", "-0.1"], "outside [0, 1)"),
    (["train-student", "--epochs", "0"], "--epochs must be a positive"),
    (["train-student", "--label-smoothing", "1"], "--label-smoothing is outside [0, 1): got 1.0"),
    (["distill", "--retrain-teacher", "--teacher-warmup-epochs", "-1"], "--teacher-warmup-epochs must be a whole"),
    (["train-student", "--batch-size", "-5"], "--batch-size must be a positive"),
    (["train-student", "--batch-size", "70000", "--train-limit", "60000"], "larger than the 60000 training examples"),
    (["train-student", "--arch", "784-abc-10"], "malformed"),
    (["train-student", "--arch", "780-800-10"], "starts with 780"),
    (["train-student", "--arch", "784-800-11"], "ends with 11"),
    (["distill", "--beta2", "1"], "error: --beta2 is outside [0, 1): got 1.0"),
    (["distill", "--retrain-teacher", "--teacher-beta2", "1"], "error: --teacher-beta2 is outside [0, 1)"),
    (["distill", "--soft-weight", "0", "--hard-weight", "0"],
     "error: --soft-weight and --hard-weight are both 0: the distilled student would learn nothing"),
    (["sweep", "--soft-weight", "0", "--hard-weight", "0"], "error: --soft-weight and --hard-weight are both 0"),
    (["sweep", "--widths", "30,100000000"], "error: --widths needs about"),
    (["distill", "--preset", "huge"], "unknown preset 'huge'"),
    (["distill", "--teacher", "no/such/file.npz"], "does not exist"),
    (["distill", "--resume", "no/such/run"], "no run.json"),
    (["train-student", "--epochs", "many"], "invalid int value"),
    (["evaluate", "no/such.npz"], "does not exist"),
    # an empty value (an unset shell variable) is refused, not taken for the flag's absence
    (["distill", "--resume", ""], "argument --resume: an empty value"),
    (["distill", "--teacher", ""], "argument --teacher: an empty value"),
    (["distill", "--teacher-logits", " "], "argument --teacher-logits: an empty value"),
    (["distill", "--omit-digit", ""], "argument --omit-digit: an empty value"),
    (["train-teacher", "--out", ""], "argument --out: an empty value"),
    (["evaluate", ""], "argument checkpoint: an empty value"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_clear_line(args, message, tmp_path):
    out = tmp_path / "run"
    extra = [] if args[0] == "evaluate" else ["--out", str(out)]
    r = run(*args, *extra)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr
    assert not out.exists(), "nothing may be written for a bad command"


def test_resuming_a_sweep_folder_points_at_the_sweep_command(tmp_path):
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "sweep.json").write_text("{}")
    r = run("distill", "--resume", str(tmp_path / "sw"))
    assert r.returncode == 2 and r.stderr.strip() == (
        f"error: --resume {tmp_path / 'sw'}: a sweep folder; continue it with the same sweep command "
        f"and --out {tmp_path / 'sw'}"), r.stderr


@pytest.mark.parametrize("command", ["distill", "train-student", "sweep"])
def test_a_file_as_the_run_folder_is_one_line(command, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for extra in ([], ["--dry-run"]):
        r = run(command, "--preset", "smoke", "--out", str(tmp_path / "notes.txt"), *extra)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip() == f"error: {tmp_path / 'notes.txt'} is a file, not a folder: choose another " \
            "folder for the run", r.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("dest", [".", "/", "..", "tests"])
@pytest.mark.parametrize("fmt", ["npz", "onnx"])
def test_export_to_a_folder_is_one_line(dest, fmt):
    r = run("export", "nnkd/pretrained/fast-teacher/checkpoint.npz", dest, "--format", fmt)
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert errors == [f"error: cannot export to {dest}: it is a folder; give a file name ending in .{fmt}"]


def test_teacher_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "teacher.npz"
    bad.write_bytes(b"this is not a zip file")
    r = run("distill", "--teacher", str(bad), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "truncated or corrupted" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_existing_run_folder_is_not_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep me")
    r = run("train-student", "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and "--resume" in r.stderr
    assert (tmp_path / "run" / "precious.txt").read_text() == "keep me"


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("train-student", "--preset", "smoke", "--out", str(blocker / "run"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cannot write" in r.stderr


def test_help_for_every_command():
    for cmd in ("distill", "train-teacher", "train-student", "evaluate", "export", "data", "gradcheck"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "usage:" in r.stdout


def test_damaged_shipped_teacher_is_refused(tmp_path, monkeypatch, capsys):
    from nnkd import cli, install
    ckpt = tmp_path / "pretrained" / install.DEFAULT_TEACHER / "checkpoint.npz"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # e.g. an LFS pointer
    (ckpt.parent / "SHA256SUMS").write_text("0" * 64 + "  checkpoint.npz\n")
    monkeypatch.setattr(install, "PACKAGE", tmp_path)
    assert cli.main(["distill", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "fails its SHA-256 check" in err and "--retrain-teacher" in err
    assert not (tmp_path / "run").exists()


def test_shipped_teacher_matches_its_checksum():
    from nnkd.install import DEFAULT_TEACHER, pretrained
    from tests.conftest import ROOT
    assert pretrained() == ROOT / "nnkd" / "pretrained" / DEFAULT_TEACHER / "checkpoint.npz"
    assert pretrained("no-such-model") is None


def test_a_batch_larger_than_the_restricted_transfer_set_is_refused_before_the_teacher_trains(tmp_path):
    out = tmp_path / "r"
    r = run("distill", "--preset", "smoke", "--retrain-teacher", "--only-digits", "7,8", "--validation", "100",
            "--train-limit", "1100", "--batch-size", "500", "--epochs", "1", "--teacher-epochs", "1",
            "--out", str(out))
    assert r.returncode == 2 and "--batch-size 500 is larger than the 204" in r.stderr, r.stderr
    assert not out.exists()


def test_resume_refuses_other_flags_and_lengthens_only_where_the_schedule_allows(tmp_path):
    out = tmp_path / "r"
    common = ["train-student", "--preset", "smoke", "--train-limit", "1000"]
    assert run(*common, "--epochs", "1", "--lr-schedule", "exp", "--out", str(out)).returncode == 0
    r = run("train-student", "--resume", str(out), "--epochs", "3", "--lr", "5", "--dataset", "fashion-mnist")
    assert r.returncode == 2 and "leave out --dataset, --lr" in r.stderr, r.stderr
    r = run("train-student", "--resume", str(out), "--epochs", "2")
    assert r.returncode == 0 and "lengthening" in r.stdout and "epoch    2/2" in r.stdout, r.stdout + r.stderr
    assert '"epochs": 2' in (out / "run.json").read_text()
    r = run("train-student", "--resume", str(out), "--epochs", "1")
    assert r.returncode == 2 and "not shorten" in r.stderr, r.stderr
    cos = tmp_path / "c"
    assert run(*common, "--epochs", "1", "--out", str(cos)).returncode == 0
    r = run("train-student", "--resume", str(cos), "--epochs", "2")
    assert r.returncode == 2 and "cosine schedule" in r.stderr, r.stderr


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_the_installed_command_answers_the_same(args, message, tmp_path):
    """The `nnkd` console script (what pip installs) gives the same one line as main.py."""
    import shutil
    import subprocess
    nnkd = shutil.which("nnkd")
    if nnkd is None:
        pytest.skip("the nnkd command is not installed here (pip install -e .)")
    extra = [] if args[0] == "evaluate" else ["--out", str(tmp_path / "run")]
    r = subprocess.run([nnkd, *args, *extra], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(errors) == 1 and message in errors[0], r.stderr
