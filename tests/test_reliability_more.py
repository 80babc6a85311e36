"""What a user can throw at the command line and the functions behind it: a failing stdout,
checkpoints that do not fit the data, a race for one run folder, unsupported scheduler
addresses, plot outputs, odd dataset paths, signals, leftover files, and the wording of
what nnkd prints.  Each case: one ``error:`` line and no traceback, or the work goes on,
and nothing already computed is lost."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from nnkd import checkpoint, cli, evaluation, plots, runs
from nnkd.data import device_data
from nnkd.backend import get_backend
from nnkd.config import SettingError, SweepGrid, TrainConfig
from nnkd.data import DataError, load
from nnkd.errors import UserError
from nnkd.network import Network
from nnkd.install import example_data
from nnkd.train import StopFlag
from tests.conftest import ROOT, error_lines, main_py

pytestmark = pytest.mark.mnist

DIGITS = example_data("digits8x8")


def one_line(r, status=2):
    assert r.returncode == status and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "Exception ignored" not in r.stderr, r.stderr
    (line,) = error_lines(r.stderr)
    return line


def ok(r):
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A smoke student on MNIST (also the stand-in teacher), a distill run from it at T=4, a
    model of the 8x8 digits (64 features, 10 classes) and one of 8 classes."""
    base = tmp_path_factory.mktemp("runs")
    ok(main_py("train-student", "--preset", "smoke", "--epochs", "2", "--out", str(base / "student")))
    ok(main_py("distill", "--preset", "smoke", "--teacher", str(base / "student/student/checkpoint.npz"),
               "--epochs", "1", "--temperature", "4", "--no-baseline", "--out", str(base / "distill")))
    ok(main_py("train-student", "--preset", "smoke", "--epochs", "1", "--dataset", f"npz:{DIGITS}",
               "--out", str(base / "digits")))
    z = dict(np.load(DIGITS))
    z["y_train"], z["y_test"] = z["y_train"] % 8, z["y_test"] % 8
    np.savez(base / "eight.npz", **z)
    ok(main_py("train-student", "--preset", "smoke", "--epochs", "1", "--dataset", f"npz:{base / 'eight.npz'}",
               "--out", str(base / "eight")))
    return base


def ckpt(base, run="student"):
    return base / run / "student" / "checkpoint.npz"


# ---- a failing stdout ------------------------------------------------------------------------

def test_a_closed_output_pipe_does_not_stop_training(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "main.py", "train-student", "--preset", "smoke", "--epochs", "3",
                          "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    p.stdout.readline()  # what `| head -1` does: read a line, then go
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=300) == 0 and err == "", err
    rows = [json.loads(line) for line in (out / "student" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert "epoch    3/3" in (out / "log.txt").read_text()


def test_stdout_on_a_full_disk_names_stdout_and_training_finishes(tmp_path):
    out = tmp_path / "run"
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "main.py", "train-student", "--preset", "smoke", "--epochs", "1",
                            "--out", str(out)], cwd=ROOT, stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=300)
    r.stdout = ""
    line = one_line(r, status=1)
    assert "standard output" in line and "--out" not in line and str(out) not in line
    assert (out / "student" / "checkpoint.npz").is_file()
    assert "epoch    1/1" in (out / "log.txt").read_text()


def test_a_report_into_a_closed_pipe_ends_quietly(base):
    p = subprocess.Popen([sys.executable, "main.py", "evaluate", str(ckpt(base))], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.close()
    err = p.stderr.read()
    p.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err and "error" not in err, err


def test_the_log_keeps_its_file_when_printing_fails(tmp_path, monkeypatch):
    class Dead:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(runs, "silence_stdout", lambda: None, raising=False)
    log = runs.Log()
    log("before the file")
    log.to_file(tmp_path / "log.txt")
    monkeypatch.setattr(sys, "stdout", Dead())
    log("first")
    log("second")
    assert (tmp_path / "log.txt").read_text() == "before the file\nfirst\nsecond\n"


# ---- evaluate: the checkpoint against the data -------------------------------------------------

def test_evaluate_refuses_a_model_of_other_features(base):
    line = one_line(main_py("evaluate", str(ckpt(base, "digits")), "--dataset", "mnist"))
    assert "64 inputs" in line and "784 features" in line


def test_evaluate_refuses_labels_beyond_the_models_classes(base):
    line = one_line(main_py("evaluate", str(ckpt(base, "eight")), "--dataset", f"npz:{DIGITS}"))
    assert "8 outputs" in line and "label 9" in line


def test_the_evaluate_function_checks_its_data(base):
    be = get_backend("numpy")
    net, _ = checkpoint.load_model(ckpt(base, "eight"), be)
    data = device_data(load(f"npz:{DIGITS}", log=None), be)
    with pytest.raises(UserError, match="8 outputs"):
        evaluation.evaluate(net, data)
    with pytest.raises(UserError, match="64 inputs"):
        evaluation.evaluate(net, dict(data, x_test=be.xp.zeros((3, 784), np.float32)))


def test_evaluate_a_model_of_65536_classes(tmp_path):
    cfg = TrainConfig(arch="4-8-65536")
    net = Network.from_settings(cfg, get_backend("numpy"))
    path = tmp_path / "wide.npz"
    checkpoint.save(path, dict(net.state()), {"config": asdict(cfg), "epoch": 0})
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 65535, 7] * 5)
    np.savez(tmp_path / "data.npz", x_train=rng.normal(size=(20, 4)), y_train=y,
             x_test=rng.normal(size=(20, 4)), y_test=y)
    r = ok(main_py("evaluate", str(path), "--dataset", f"npz:{tmp_path / 'data.npz'}", timeout=120))
    assert "test errors:" in r.stdout and "not shown for 65536 classes" in r.stdout


# ---- one run folder, one command ---------------------------------------------------------------

def test_a_command_that_took_the_folder_meanwhile_keeps_it(tmp_path, monkeypatch):
    """Another command fills the run folder between this one's first check and its lock."""
    out = tmp_path / "run"
    prepare = cli._prepare

    def meanwhile(spec, args, log):
        ok(main_py("train-student", "--preset", "smoke", "--epochs", "1", "--out", str(out)))
        return prepare(spec, args, log)

    monkeypatch.setattr(cli, "_prepare", meanwhile)
    monkeypatch.setattr(cli, "_install_stop", StopFlag)  # this process keeps its signal handlers
    monkeypatch.setattr(runs, "silence_stdout", lambda: None, raising=False)
    assert cli.main(["train-teacher", "--preset", "smoke", "--epochs", "1", "--out", str(out)]) == 2
    assert json.loads((out / "run.json").read_text())["command"] == "train-student"
    assert not (out / "teacher").exists()


@pytest.mark.slow
def test_two_commands_started_together_in_one_folder(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "main.py", "--preset", "smoke", "--epochs", "1", "--out", str(out)]
    first = subprocess.Popen(cmd[:2] + ["train-student"] + cmd[2:], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(0.05)
    second = subprocess.Popen(cmd[:2] + ["train-teacher"] + cmd[2:], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    codes = sorted([first.wait(300), second.wait(300)])
    errors = first.stderr.read() + second.stderr.read()
    assert codes == [0, 2] and "Traceback" not in errors, errors
    assert len(error_lines(errors)) == 1


# ---- sweep --scheduler ---------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["tls://127.0.0.1:8786", "ucx://127.0.0.1:8786", "foo://h:1"])
def test_sweep_takes_only_tcp_schedulers(base, address):
    line = one_line(main_py("sweep", "--preset", "smoke", "--teacher", str(ckpt(base)), "--scheduler", address,
                            "--dry-run"))
    assert "--scheduler" in line and "tcp://" in line
    with pytest.raises(SettingError):
        SweepGrid(scheduler=address).validate()
    SweepGrid(scheduler="tcp://127.0.0.1:8786").validate()
    SweepGrid(scheduler="127.0.0.1:8786").validate()


def test_the_sweep_cluster_refuses_other_schemes_before_connecting(monkeypatch):
    distributed = pytest.importorskip("distributed")
    from nnkd.cluster import SweepCluster

    def no_connection(*a, **kw):
        raise AssertionError("a client was started for a refused scheduler")
    monkeypatch.setattr(distributed, "Client", no_connection)
    with pytest.raises(UserError, match="tls://"):
        with SweepCluster("tls://127.0.0.1:8786"):
            pass


# ---- plot --------------------------------------------------------------------------------------

def test_plot_keeps_an_existing_figure_without_force(base, tmp_path):
    pytest.importorskip("matplotlib")
    fig = tmp_path / "cmp.png"
    fig.write_bytes(b"mine")
    line = one_line(main_py("plot", str(base / "distill"), str(base / "student"), "--out", str(fig)))
    assert str(fig) in line and "--force" in line and fig.read_bytes() == b"mine"
    ok(main_py("plot", str(base / "distill"), str(base / "student"), "--out", str(fig), "--force"))
    assert fig.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(UserError):
        plots.plot(base / "distill", others=[base / "student"], out=fig)


def test_plot_of_one_run_does_not_ignore_out(base, tmp_path):
    pytest.importorskip("matplotlib")
    line = one_line(main_py("plot", str(base / "distill"), "--out", str(tmp_path / "x.png")))
    assert "--out" in line and not (tmp_path / "x.png").exists()


def test_plot_refuses_a_run_given_twice(base, tmp_path):
    again = tmp_path / "again"
    again.symlink_to(base / "distill")
    line = one_line(main_py("plot", str(base / "distill"), str(again), "--out", str(tmp_path / "x.png")))
    assert line == f"error: {again} is given twice (also as {base / 'distill'}): give each run once"
    assert not (tmp_path / "x.png").exists()


def test_plot_skips_values_that_are_not_numbers(base, tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    shutil.copytree(base / "student", run)
    with open(run / "student" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "train_err": None, "test_errors": None}) + "\n")
        f.write(json.dumps({"epoch": 4, "train_err": 0.1, "test_errors": "many"}) + "\n")
    ok(main_py("plot", str(run)))
    assert (run / "learning_curves.png").is_file()


def test_figures_show_the_runs_own_settings_and_data(base):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    spec = runs.read_spec(base / "distill" / "run.json")
    fig = plots.dark_knowledge(base / "distill", spec, plt)
    titles = [ax.get_title() for ax in fig.axes]
    assert any("T=4 " in t for t in titles) and not any("T=20" in t for t in titles)
    assert "distill" in fig._suptitle.get_text()
    plt.close(fig)

    spec = runs.read_spec(base / "student" / "run.json")
    fig = plots.learning_curves(base / "student", spec, plt)
    ax_test, ax_train = fig.axes
    rows = [json.loads(line) for line in (base / "student/student/metrics.jsonl").read_text().splitlines()]
    assert ax_train.get_ylim()[1] > 100 * rows[-1]["train_err"]
    assert "dropout" not in ax_train.get_ylabel() and "jitter" not in ax_train.get_ylabel()
    for ax in (ax_test, ax_train):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    assert "student" in fig._suptitle.get_text()
    plt.close(fig)


def test_plot_colours_runs_of_one_model_each_apart(base):
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    students = [(base / name, runs.read_spec(base / name / "run.json")) for name in ("student", "digits", "eight")]
    fig = plots.learning_curves(*students[0], plt, others=students[1:])
    for ax in fig.axes:
        assert len({line.get_color() for line in ax.get_lines()}) == 3
    plt.close(fig)
    # a distill run holds two models: its curves keep their roles' colours
    distill = (base / "distill", runs.read_spec(base / "distill" / "run.json"))
    fig = plots.learning_curves(*distill, plt, others=students[1:2])
    colours = {next(w for w in line.get_label().split() if w in plots.COLORS): line.get_color()
               for line in fig.axes[0].get_lines()}
    assert colours == {"teacher": plots.COLORS["teacher"], "distilled": plots.COLORS["distilled"],
                       "student": plots.COLORS["student"]}
    plt.close(fig)


def test_plot_puts_runs_of_very_different_lengths_on_a_log_epoch_axis(base, tmp_path):
    """A 1000-epoch teacher beside 60-epoch students: the epoch axis turns logarithmic, and the
    teacher the runs distilled from is named by its folder, once."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt
    distill = (base / "distill", runs.read_spec(base / "distill" / "run.json"))
    teacher = Path(distill[1].teacher_checkpoint).parent
    fig = plots.learning_curves(*distill, plt)  # a teacher of 2 epochs and a student of 1
    assert all(ax.get_xscale() == "linear" and ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["teacher student", "distilled"]
    plt.close(fig)
    long = tmp_path / "long-teacher"
    long.mkdir()
    shutil.copy(teacher / "config.json", long)
    (long / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "train_err": 0.5 / e, "test_errors": 100 + 1000 // e}) + "\n" for e in range(1, 1001)))
    again = tmp_path / "again"
    shutil.copytree(base / "distill", again)
    spec = runs.read_spec(again / "run.json")
    spec.teacher_checkpoint = str(long / "checkpoint.npz")
    runs.write_spec(again / "run.json", spec)
    fig = plots.learning_curves(again, spec, plt, others=[distill])
    for ax in fig.axes:
        assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel()
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels.count("teacher long-teacher") == 1
    plt.close(fig)


# ---- dataset paths -------------------------------------------------------------------------------

def _fifo(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    return fifo


def _loop(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path / "a"


@pytest.mark.parametrize("make", [_fifo, _loop, lambda tmp_path: "~nosuchuser-of-nnkd/x.npz"])
def test_odd_dataset_paths(tmp_path, make):
    name = f"npz:{make(tmp_path)}"
    for args in (["data", "--dataset", name], ["distill", "--dataset", name, "--dry-run"]):
        one_line(main_py(*args, timeout=60))
    with pytest.raises(DataError):
        load(name, log=None)


def test_a_data_folder_under_an_unknown_home(tmp_path):
    env = dict(os.environ, NNKD_DATA="~nosuchuser-of-nnkd/data")
    assert "NNKD_DATA" in one_line(main_py("data", env=env, timeout=60))


# ---- datasets other than MNIST, and report ---------------------------------------------------------

@pytest.fixture(scope="module")
def omitted(base):
    """A distill run on the 8x8 digits without the 3s in the transfer set."""
    out = base / "omit3"
    ok(main_py("distill", "--preset", "smoke", "--dataset", f"npz:{DIGITS}", "--teacher", str(ckpt(base, "digits")),
               "--omit-digit", "3", "--validation", "200", "--epochs", "1", "--no-baseline", "--out", str(out)))
    return out


def test_the_papers_figures_appear_only_on_mnist(omitted):
    table = (omitted / "results.md").read_text()
    assert "the paper's" not in table and "206" not in table and "133 on 3s" not in table
    assert "paper" not in json.loads((omitted / "results.json").read_text())["bias_correction"]["distilled"]


def test_report_refuses_runs_of_other_data_and_the_same_run_twice(base, omitted):
    line = one_line(main_py("report", str(base / "distill"), str(omitted)))
    assert "mnist" in line and "digits8x8" in line
    line = one_line(main_py("report", str(base / "distill"), str(base / "distill" / ".." / "distill")))
    assert "twice" in line
    r = ok(main_py("report", str(base / "distill")))
    assert "(1 run)" in r.stdout


def test_only_digits_on_eight_classes_keeps_what_was_typed(base):
    data = f"npz:{base / 'eight.npz'}"
    r = ok(main_py("distill", "--preset", "smoke", "--dataset", data, "--only-digits", "1,2",
                   "--validation", "100", "--dry-run"))
    assert json.loads(r.stdout[r.stdout.index("{"):])["absent_classes"] == [0, 3, 4, 5, 6, 7]
    line = one_line(main_py("distill", "--preset", "smoke", "--dataset", data, "--only-digits", "1,9",
                            "--dry-run"))
    assert "1,9" in line and "0 to 7" in line


def test_the_default_validation_of_omit_digit_is_named_as_a_default():
    line = one_line(main_py("distill", "--preset", "smoke", "--omit-digit", "3", "--dry-run"))
    assert "by default" in line and "5000" in line


# ---- signals and leftover files ------------------------------------------------------------------

def test_sighup_stops_training_like_sigterm(tmp_path):
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "main.py", "train-student", "--preset", "smoke", "--epochs", "500",
                          "--checkpoint-every", "1", "--out", str(out)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "student" / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGHUP)
    err = p.stderr.read()
    assert p.wait(60) == 130 and "Traceback" not in err, err
    (line,) = error_lines(err)
    assert "SIGHUP" in line and "--resume" in line


def test_sigterm_while_fetching_leaves_no_scratch_folder(tmp_path):
    script = textwrap.dedent("""
        import dataclasses, sys, time
        from nnkd.data import registry
        from nnkd.data.sources import Source

        class Slow(Source):
            label = "a slow source"

            def fetch(self, spec, needed, workdir):
                (workdir / "part").write_bytes(b"half a file")
                print("fetching", flush=True)
                time.sleep(60)

        registry.SPECS["mnist"] = dataclasses.replace(registry.SPECS["mnist"], sources=(Slow(),))
        from nnkd.cli import main
        sys.exit(main(["data"]))
    """)
    env = dict(os.environ, NNKD_DATA=str(tmp_path))
    p = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    while p.stdout.readline() not in ("fetching\n", ""):  # the cache line names tmp_path
        pass
    p.send_signal(signal.SIGTERM)
    err = p.stderr.read()
    assert p.wait(60) == 130 and "Traceback" not in err, err
    assert "SIGTERM" in error_lines(err)[0]
    assert not list((tmp_path / "mnist").glob(".fetch-*"))


def test_a_teacher_changed_under_a_run_is_refused_when_it_resumes(base, tmp_path):
    teacher = tmp_path / "teacher.npz"
    shutil.copy(base / "student/student/checkpoint.npz", teacher)
    run = tmp_path / "run"
    ok(main_py("distill", "--preset", "smoke", "--teacher", str(teacher), "--epochs", "1", "--no-baseline",
               "--lr-schedule", "exp", "--out", str(run)))
    pinned = json.loads((run / "run.json").read_text())["teacher_identity"]
    assert pinned == {"kind": "checkpoint", "source": str(teacher),
                      "teacher_sha256": hashlib.sha256(teacher.read_bytes()).hexdigest()}
    ok(main_py("distill", "--resume", str(run), "--epochs", "2"))  # the same teacher: resumes
    ok(main_py("train-student", "--preset", "smoke", "--epochs", "1", "--seed", "1", "--out", str(tmp_path / "other")))
    shutil.copy(tmp_path / "other/student/checkpoint.npz", teacher)
    def files():  # all but the log and the run's lock, which every command touches
        return sorted((str(p), p.stat().st_mtime_ns) for p in run.rglob("*") if p.name not in ("log.txt", ".lock"))
    before = files()
    line = one_line(main_py("distill", "--resume", str(run), "--epochs", "3"))
    assert f"the teacher {teacher} has changed since this run began" in line and "new run" in line
    assert files() == before
    (run / "teacher_logits.npy").rename(tmp_path / "kept.npy")
    teacher.unlink()
    line = one_line(main_py("distill", "--resume", str(run)))
    assert f"this run's teacher {teacher} is gone and its logits are not cached in {run}: put it back" in line
    assert files() == [f for f in before if not f[0].endswith("teacher_logits.npy")]

def test_a_sweep_refuses_a_teacher_changed_since_it_began(base, tmp_path):
    teacher = tmp_path / "teacher.npz"
    shutil.copy(ckpt(base), teacher)
    out = tmp_path / "sweep"

    def sweep(seeds):
        return main_py("sweep", "--preset", "smoke", "--teacher", str(teacher), "--temperatures", "2", "--widths",
                       "8", "--seeds", seeds, "--epochs", "1", "--train-limit", "1000", "--out", str(out))
    ok(sweep("0"))
    pinned = json.loads((out / "sweep.json").read_text())["teacher_identity"]
    assert pinned["teacher_sha256"] == hashlib.sha256(teacher.read_bytes()).hexdigest()
    ok(sweep("0,1"))  # the same teacher: the sweep grows
    ok(main_py("train-student", "--preset", "smoke", "--epochs", "1", "--seed", "1", "--out", str(tmp_path / "other")))
    shutil.copy(tmp_path / "other/student/checkpoint.npz", teacher)
    line = one_line(sweep("0,1,2"))
    assert f"the teacher {teacher} has changed since this run began" in line
    assert (out / "w8-T2-s1").exists() and not (out / "w8-T2-s2").exists()
    assert json.loads((out / "sweep.json").read_text())["sweep"]["seeds"] == [0, 1]  # nothing written


def test_leftover_temporary_files_are_removed_when_a_run_resumes(base, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base / "student", run)
    left = [run / "student" / ".checkpoint.npz.k9x2_b7q.part", run / ".run.json.a1b2c3d4.part"]
    for p in left + [run / ".my notes.part"]:
        p.write_bytes(b"cut off")
    ok(main_py("train-student", "--resume", str(run)))
    assert not any(p.exists() for p in left) and (run / ".my notes.part").exists()
    assert "removed 2 temporary files" in (run / "log.txt").read_text()


def test_each_sweep_value_gets_its_own_cell(base, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--preset", "smoke", "--teacher", str(ckpt(base)), "--temperatures", "2,2.0000001",
            "--widths", "8", "--seeds", "0", "--epochs", "1", "--train-limit", "1000", "--out", str(out)]
    ok(main_py(*args))
    assert sorted(p.name for p in out.glob("w8-*")) == ["w8-T2-s0", "w8-T2.0000001-s0"]
    assert "T=2.0000001" in (out / "results.md").read_text()
    ok(main_py(*args))
    for flag, values in (("--temperatures", "2,2.0"), ("--widths", "8,8"), ("--seeds", "0,1,0")):
        line = one_line(main_py("sweep", "--teacher", str(ckpt(base)), flag, values, "--dry-run"))
        assert flag in line and "twice" in line


def test_a_full_disk_while_writing_the_teachers_logits_names_the_file(base, tmp_path):
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import errno, sys
        import numpy
        def full(*args, **kw):
            raise OSError(errno.ENOSPC, "No space left on device")
        numpy.save = full
        from nnkd.cli import main
        sys.exit(main(["distill", "--preset", "smoke", "--teacher", {str(ckpt(base))!r}, "--epochs", "1",
                       "--out", {str(out)!r}]))
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    line = one_line(r)
    assert str(out / "teacher_logits.npy") in line and "No space left" in line
    assert not list(out.glob(".*.part"))


def test_export_onto_its_own_checkpoint_is_refused(base, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base / "student", run)
    src = run / "student" / "checkpoint.npz"
    before = src.read_bytes()
    line = one_line(main_py("export", str(src), str(src), "--force"))
    assert "itself" in line and src.read_bytes() == before
    line = one_line(main_py("export", str(src), str(run / "student" / "checkpoint.json"), "--format", "onnx",
                            "--force"))
    assert "itself" in line
    ok(main_py("train-student", "--resume", str(run)))


# ---- wording ---------------------------------------------------------------------------------------

def test_counts_of_one_and_jitter_of_zero_read_right(base):
    log = (base / "distill" / "log.txt").read_text()
    assert "1 epoch" in log and "1 epochs" not in log and "up to 0 px" not in log
