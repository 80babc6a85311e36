"""`sweep` runs its cells as tasks on a Dask distributed cluster: the embedded
LocalCluster (``--jobs N``) and a scheduler with workers started from the command line
(``--scheduler``), a worker killed mid-cell, Ctrl-C, and the one-line faults.  Real clusters
with worker processes, no mocks; students from the shipped teacher on the real MNIST."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from nnkd.install import extra_hint
from tests.conftest import ROOT, error_lines, main_py

pytest.importorskip("distributed")
pytest.importorskip("threadpoolctl")

# Smoke-sized cells: 1,000 training images, the plain transfer set (the shipped teacher's
# logits on 1,000 images take a tenth of a second).
SMALL = ["--preset", "smoke", "--train-limit", "1000", "--transfer-jitter", "0", "--seeds", "0"]


def _sweep(out, *args, **kw):
    return main_py("sweep", *SMALL, "--out", str(out), *args, **kw)


def _cells(out):
    return json.loads((out / "results.json").read_text())["cells"]


def _wait_for(what, seconds=120):
    t0 = time.monotonic()
    while not what():
        assert time.monotonic() - t0 < seconds, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.mnist
def test_local_cluster_runs_a_2x2_sweep_then_a_rerun_trains_nothing(tmp_path):
    out = tmp_path / "sweep"
    args = ["--widths", "8,16", "--temperatures", "2,8", "--epochs", "1", "--jobs", "2"]
    r = _sweep(out, *args)
    assert r.returncode == 0, r.stderr
    assert ("4 cells, 0 already done, 4 to train on a local Dask cluster of 2 single-threaded worker "
            "processes") in r.stdout
    assert len(re.findall(r"\] w\d+-T\d-s0: \d+ test errors", r.stdout)) == 4
    cells = _cells(out)
    assert len(cells) == 4 and all(len(c["errors"]) == 1 for c in cells)
    assert "| 8 |" in r.stdout and "| 16 |" in r.stdout and "(n=1)" in r.stdout
    log = (out / "w16-T8-s0" / "log.txt").read_text()
    assert re.search(r"cell w16-T8-s0 on Dask worker tcp://127\.0\.0\.1:\d+ \(pid \d+, 1 BLAS thread\)", log)
    again = _sweep(out, *args)
    assert again.returncode == 0, again.stderr
    assert "4 cells, 4 already done, 0 to train" in again.stdout
    assert _cells(out) == cells


@pytest.mark.slow
@pytest.mark.mnist
def test_a_worker_killed_mid_cell_is_retried_and_the_cell_resumes(tmp_path):
    out = tmp_path / "sweep"
    cell = out / "w512-T2-s0"
    # The w512 cell takes about 10 s here; its worker is killed after its first checkpoint.
    p = subprocess.Popen([sys.executable, "main.py", "sweep", "--preset", "smoke", "--train-limit", "10000",
                          "--transfer-jitter", "0", "--seeds", "0", "--widths", "8,512", "--temperatures", "2",
                          "--epochs", "20", "--jobs", "2", "--out", str(out)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (cell / "checkpoint.npz").exists())
        pid = int(re.search(r"\(pid (\d+),", (cell / "log.txt").read_text()).group(1))
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = p.communicate(timeout=300)
    finally:
        p.kill()
    assert p.returncode == 0, stderr
    assert "[2/2]" in stdout and "| 512 |" in stdout and "| 8 |" in stdout
    assert len(_cells(out)) == 2
    log = (cell / "log.txt").read_text()
    pids = re.findall(r"cell w512-T2-s0 on Dask worker \S+ \(pid (\d+),", log)
    assert len(pids) == 2 and pids[0] == str(pid) and pids[1] != pids[0], log
    resumed = re.search(r"resuming \S+ at epoch (\d+) of 20", log)
    assert resumed and int(resumed.group(1)) >= 2, log
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["epochs"] == 20 and summary["arch"] == "784-512-512-10"
    rows = [json.loads(line) for line in (cell / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 21))


@pytest.mark.slow
@pytest.mark.mnist
def test_ctrl_c_stops_the_cells_shuts_the_cluster_down_and_keeps_finished_cells(tmp_path):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "sweep"
    args = ["--widths", "8,512", "--temperatures", "2,4", "--epochs", "20", "--train-limit", "5000",
            "--jobs", "2"]
    # A terminal's Ctrl-C: SIGINT to the whole process group, workers included.
    p = subprocess.Popen([sys.executable, "main.py", "sweep", *SMALL, "--out", str(out), *args], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: list(out.glob("*/summary.json")))
        workers = psutil.Process(p.pid).children(recursive=True)
        os.killpg(p.pid, signal.SIGINT)
        t0 = time.monotonic()
        stdout, stderr = p.communicate(timeout=120)
        stopped_in = time.monotonic() - t0
    finally:
        p.kill()
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and error_lines(stderr) == [
        "error: sweep stopped; finished cells and every cell's last checkpoint are kept; continue with "
        "the same command"], stderr
    assert stopped_in < 15, stopped_in
    time.sleep(1)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    done = len(list(out.glob("*/summary.json")))
    assert 1 <= done < 4
    r = _sweep(out, *args)
    assert r.returncode == 0, r.stderr
    assert f"4 cells, {done} already done, {4 - done} to train" in r.stdout
    assert len(_cells(out)) == 4


@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, started from the
    command line (in another folder than the sweep's, with nnkd on their path); killed after."""
    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cwd = tmp_path / "workers"
    cwd.mkdir()
    dask = [sys.executable, "-m", "dask"]
    procs = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(sched_file)],
                              cwd=cwd, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(lambda: sched_file.exists() and sched_file.stat().st_size > 0, 60)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen(dask + ["worker", address, "--nthreads", "1", "--nworkers", "1",
                                                  "--no-dashboard", "--local-directory", str(cwd)],
                                          cwd=cwd, env=env, start_new_session=True,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client
        with Client(address, timeout="10s", set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, procs[0]
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.mark.slow
@pytest.mark.mnist
def test_sweep_on_a_scheduler_and_workers_started_from_the_command_line(dask_cluster, tmp_path):
    address, _ = dask_cluster
    out = tmp_path / "sweep"
    args = ["--widths", "8,16", "--temperatures", "2,8", "--epochs", "1", "--scheduler", address]
    r = _sweep(out, *args)
    assert r.returncode == 0, r.stderr
    assert f"4 to train on the Dask cluster at {address} (2 workers now)" in r.stdout, r.stdout
    assert len(_cells(out)) == 4
    pids = {re.search(r"\(pid (\d+),", (d / "log.txt").read_text()).group(1) for d in out.glob("w*")}
    assert len(pids) == 2  # both workers trained cells
    again = _sweep(out, *args)
    assert again.returncode == 0 and "4 already done, 0 to train" in again.stdout, again.stderr


@pytest.mark.slow
@pytest.mark.mnist
def test_a_scheduler_lost_mid_sweep_is_one_line_and_the_cells_stop(dask_cluster, tmp_path):
    address, scheduler = dask_cluster
    out = tmp_path / "sweep"
    p = subprocess.Popen([sys.executable, "main.py", "sweep", *SMALL, "--train-limit", "10000",
                          "--widths", "512", "--temperatures", "2,8", "--epochs", "20", "--scheduler", address,
                          "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: all((out / f"w512-T{t}-s0" / "checkpoint.npz").exists() for t in (2, 8)))
        os.killpg(scheduler.pid, signal.SIGKILL)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 2 and "Traceback" not in stderr, stderr
    errors = error_lines(stderr)
    assert len(errors) == 1 and errors[0].startswith(f"error: lost the Dask scheduler {address}"), stderr
    assert "run the same command again once it is back" in errors[0]
    # The running cells saw the sweep's stop file (the scheduler was gone) and kept their checkpoints.
    for t in (2, 8):
        log = (out / f"w512-T{t}-s0" / "log.txt").read_text()
        assert "error: stopped by the sweep's client at epoch" in log, log


@pytest.mark.mnist
def test_unreachable_scheduler_is_one_line_and_nothing_is_written(tmp_path):
    out = tmp_path / "sweep"
    r = _sweep(out, "--scheduler", "tcp://127.0.0.1:1", timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and errors[0].startswith(
        "error: cannot reach the Dask scheduler at tcp://127.0.0.1:1 (Timed out"), r.stderr
    assert not out.exists()


@pytest.mark.mnist
@pytest.mark.parametrize("args, message", [
    (["--scheduler", "localhost"], "--scheduler must be a Dask scheduler address"),
    (["--scheduler", "tcp://127.0.0.1:8786", "--jobs", "2"], "--jobs sets the size of the local cluster"),
])
def test_bad_scheduler_settings_are_one_line(tmp_path, args, message):
    r = _sweep(tmp_path / "sweep", *args)
    errors = error_lines(r.stderr)
    assert r.returncode == 2 and len(errors) == 1 and message in errors[0], r.stderr


@pytest.mark.parametrize("args", [["--jobs", "2"], ["--scheduler", "tcp://127.0.0.1:8786"]])
def test_without_dask_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys, args):
    from nnkd.cli import main
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["sweep", "--out", str(tmp_path / "sweep"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and extra_hint("dask") in err and err.startswith("error: "), err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_a_folder_a_worker_cannot_see_is_refused(tmp_path):
    from nnkd.cluster import SweepCluster
    from nnkd.errors import UserError
    (tmp_path / "sweep.json").write_text("{}")
    with SweepCluster(None, 1, log=lambda line: None) as c:
        c.check_workers(tmp_path)  # this machine's worker sees it
        assert len(c.threads) == 1 and list(c.threads.values())[0] >= 1
        with pytest.raises(UserError, match=r"the sweep folder \S+ is not visible to the Dask worker\(s\) "
                           r"tcp://127\.0\.0\.1:\d+: a sweep's folder must be on a filesystem that every "
                           "worker shares"):
            c.check_workers(tmp_path / "elsewhere")
