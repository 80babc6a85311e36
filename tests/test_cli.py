"""Command-line mistakes: one line, exit status 2, no traceback, nothing written."""

import pytest

from tests.conftest import capped, main_py


def run(*args):
    return main_py(*capped(*args))


BAD = [
    (["distill", "--backend", "tpu"], "unknown backend 'tpu'"),
    (["distill", "--temperature", "0"], "--temperature must be positive"),
    (["distill", "--temperature", "-3"], "--temperature must be positive"),
    (["distill", "--dropout-hidden", "1.0"], "outside [0, 1)"),
    (["train-teacher", "--dropout-input", "-0.1"], "outside [0, 1)"),
    (["train-student", "--epochs", "0"], "--epochs must be a positive"),
    (["train-student", "--batch-size", "-5"], "--batch-size must be a positive"),
    (["train-student", "--batch-size", "70000", "--train-limit", "60000"], "larger than the 60000 training examples"),
    (["train-student", "--arch", "784-abc-10"], "malformed"),
    (["train-student", "--arch", "780-800-10"], "starts with 780"),
    (["train-student", "--arch", "784-800-11"], "ends with 11"),
    (["distill", "--preset", "huge"], "unknown preset 'huge'"),
    (["distill", "--teacher", "no/such/file.npz"], "does not exist"),
    (["distill", "--resume", "no/such/run"], "no run.json"),
    (["train-student", "--epochs", "many"], "invalid int value"),
    (["evaluate", "no/such.npz"], "does not exist"),
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
    from nnkd import cli
    ckpt = tmp_path / "teacher" / "checkpoint.npz"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")  # e.g. an LFS pointer
    (ckpt.parent / "SHA256SUMS").write_text("0" * 64 + "  checkpoint.npz\n")
    monkeypatch.setattr(cli, "PRETRAINED_TEACHER", ckpt)
    assert cli.main(["distill", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "fails its SHA-256 check" in err and "--retrain-teacher" in err
    assert not (tmp_path / "run").exists()


def test_shipped_teacher_matches_its_checksum():
    import hashlib
    from nnkd.cli import PRETRAINED_TEACHER
    expected = (PRETRAINED_TEACHER.parent / "SHA256SUMS").read_text().split()[0]
    assert hashlib.sha256(PRETRAINED_TEACHER.read_bytes()).hexdigest() == expected
