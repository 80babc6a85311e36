"""Faults at the seams between features: sweeps on data that is not MNIST, the environment
(thread variables, output encodings, locales), float32 settings, array headers, stopping on a
clock, presets on other data, and the promises of the command line and the Python API."""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnkd import example_data
from nnkd.errors import UserError
from tests.conftest import ROOT, capped, error_lines, main_py

DIGITS = example_data("digits8x8")
DS = f"npz:{DIGITS}"


def run(*args, env=None, **kw):
    full = dict(os.environ, **(env or {}))
    return main_py(*args, env=full, **kw)


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    """A smoke-preset teacher trained for 2 epochs on the shipped 8x8 digits."""
    out = tmp_path_factory.mktemp("teacher") / "t"
    r = run("train-teacher", "--dataset", DS, "--preset", "smoke", "--epochs", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out / "teacher" / "checkpoint.npz"


# ---------------------------------------------------------------- sweeps on data of other widths

def test_a_sweep_on_npz_data_continues_and_extends(digits_teacher, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "--dataset", DS, "--preset", "smoke", "--teacher", str(digits_teacher), "--widths", "8",
            "--temperatures", "4", "--epochs", "1", "--out", str(out)]
    r = run(*args, "--seeds", "0")
    assert r.returncode == 0, r.stderr
    again = run(*args, "--seeds", "0")
    assert again.returncode == 0, again.stderr
    assert "1 already done, 0 to train" in again.stdout
    more = run(*args, "--seeds", "0,1")
    assert more.returncode == 0, more.stderr
    assert "1 already done, 1 to train" in more.stdout
    assert json.loads((out / "w8-T4-s1" / "summary.json").read_text())["arch"] == "64-8-8-10"
    other = run(*args[:-4], "--epochs", "2", "--out", str(out))
    assert other.returncode == 2 and "other settings" in other.stderr


# ---------------------------------------------------------------- the environment

@pytest.mark.parametrize("value", ["4,2", "abc", "-3", "1e3"])
def test_thread_variables_that_are_not_whole_numbers_fall_back_with_a_note(value, capsys):
    from nnkd.onnx_model import env_threads
    assert env_threads({"OMP_NUM_THREADS": value}) == 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "OMP_NUM_THREADS" in err
    assert env_threads({"OMP_NUM_THREADS": "3"}) == 3 and env_threads({}) == 0


def test_output_in_an_encoding_without_the_characters_is_replaced(digits_teacher, tmp_path):
    out = tmp_path / "sweep-é"
    r = run("sweep", "--dataset", DS, "--preset", "smoke", "--teacher", str(digits_teacher), "--widths", "8",
            "--temperatures", "4", "--seeds", "0,1", "--epochs", "1", "--out", str(out),
            env={"PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and " ? " in r.stdout  # the ± of the table
    assert "±" in (out / "results.md").read_text(encoding="utf-8")


def test_files_are_utf8_whatever_the_locale(tmp_path):
    out = tmp_path / "rün"
    r = run("train-student", "--dataset", DS, "--preset", "smoke", "--epochs", "1", "--out", str(out),
            env={"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii",
                 "PYTHONCOERCECLOCALE": "0"})
    assert r.returncode == 0, r.stderr
    assert str(out) in (out / "log.txt").read_text(encoding="utf-8")


# ---------------------------------------------------------------- float32 settings, predictions

@pytest.mark.parametrize("flag,value", [("--beta2", "0.999999999"), ("--momentum-start", "0.99999999"),
                                        ("--momentum-end", "0.999999999"), ("--lr-decay", "1e-50"),
                                        ("--dropout-hidden", "0.9999999999")])
def test_a_float_setting_that_rounds_to_a_forbidden_value_in_float32_is_refused(flag, value):
    from nnkd.cli import main
    extra = ["--optimizer", "adam"] if flag == "--beta2" else []
    extra += ["--lr-schedule", "exp"] if flag == "--lr-decay" else []
    with pytest.raises(SystemExit) as e:
        sys.exit(main(["train-student", "--dataset", DS, "--preset", "smoke", "--dry-run", flag, value, *extra]))
    assert e.value.code == 2


def test_a_float_setting_near_its_bound_in_float32_names_float32(capsys):
    from nnkd.cli import main
    assert main(["train-student", "--dataset", DS, "--preset", "smoke", "--dry-run", "--optimizer", "adam",
                 "--beta2", "0.999999999"]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "--beta2" in line and "float32" in line


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_refuses_rows_that_are_not_finite(tmp_path, digits_teacher, bad):
    import nnkd
    net = nnkd.load_model(digits_teacher)
    x = np.zeros((5, 64), np.float32)
    x[3, 7] = bad
    for fn in (net.predict, net.predict_logits):
        with pytest.raises(UserError, match=r"row 3.*NaN or infinite|NaN or infinite.*row 3") as e:
            fn(x)
        assert "\n" not in str(e.value)
    assert net.predict(np.zeros((5, 64), np.float32)).shape == (5,)


# ---------------------------------------------------------------- headers first

def npy_header_only(path, shape, dtype="<f4"):
    """An .npy file of ``shape`` that holds only its header and a sparse hole for the data."""
    import numpy.lib.format as fmt
    with open(path, "wb") as f:
        fmt.write_array_header_2_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.truncate(f.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return path


def test_a_logits_file_of_the_wrong_shape_is_refused_from_its_header(tmp_path):
    from nnkd.transfer import read
    big = npy_header_only(tmp_path / "big.npy", (200_000_000, 10))  # 8 GB, sparse
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="200000000 images") as e:
        read(big, None, 1500, 10, 0)
    assert time.perf_counter() - t0 < 1 and "\n" not in str(e.value)


def test_an_array_larger_than_memory_names_its_size(tmp_path):
    from nnkd.files import read_array
    huge = npy_header_only(tmp_path / "huge.npy", (2**40 // 4, 4))  # 4 TiB, sparse
    with pytest.raises(UserError, match=r"claims 4.0 TiB \(float32\(274877906944, 4\)\)") as e:
        read_array(huge, "teacher logits")
    assert "allocate" not in str(e.value)


def test_an_npz_member_that_claims_tib_is_refused_naming_the_size(tmp_path):
    import numpy.lib.format as fmt
    from nnkd.data import DataError, load
    d = np.load(DIGITS)
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w") as z:
        for k in ("y_train", "x_test", "y_test"):
            with z.open(k + ".npy", "w") as f:
                np.save(f, d[k])
        with z.open("x_train.npy", "w") as f:
            fmt.write_array_header_2_0(f, {"descr": "|u1", "fortran_order": False, "shape": (2**44 // 64, 64)})
            f.write(b"\0" * 100)
    with pytest.raises(DataError, match=r"claims 16.0 TiB") as e:
        load(f"npz:{path}", log=lambda line: None)
    assert "MemoryError" not in str(e.value)


def test_a_checkpoint_array_larger_than_memory_is_refused_from_its_header(tmp_path, monkeypatch):
    from nnkd import checkpoint, memory
    path = tmp_path / "c.npz"
    np.savez(path, W0=np.zeros((1000, 1000), np.float32))
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)
    with pytest.raises(UserError, match=r"array W0 claims 3.8 MiB .*1000 bytes of memory available"):
        checkpoint.load(path)


# ---------------------------------------------------------------- stopping on a clock

def test_the_teacher_logits_check_for_a_stop_on_a_clock():
    from nnkd import transfer
    from nnkd.backend import get_backend
    from nnkd.train import StopFlag

    def slow(x):  # a teacher that runs 1,000 images per call, in 0.3 s (an ONNX model's batches)
        time.sleep(0.3 * len(x) / 1000)
        return np.zeros((len(x), 2), np.float32)

    stop = StopFlag()
    t0 = time.perf_counter()
    data = {"x_train": np.zeros((100_000, 4), np.float32)}
    import threading
    threading.Timer(0.5, lambda: setattr(stop, "signal", "SIGTERM")).start()
    with pytest.raises(Exception, match="SIGTERM"):
        transfer.run(slow, data, 2, get_backend("numpy"), 0, lambda line: None, stop, chunk=1000)
    assert time.perf_counter() - t0 < 1.5


# ---------------------------------------------------------------- presets on other data

def test_jitter_is_off_for_images_that_are_not_28x28_unless_asked(capsys):
    from nnkd.cli import main
    assert main(["train-teacher", "--dataset", DS, "--preset", "fast", "--dry-run"]) == 0
    out = capsys.readouterr().out
    spec = json.loads(out[out.index("{"):])
    assert spec["configs"]["teacher"]["jitter"] == 0
    assert "tuned on MNIST" in out and out.count("tuned on MNIST") == 1
    assert main(["train-teacher", "--dataset", DS, "--preset", "fast", "--jitter", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["configs"]["teacher"]["jitter"] == 1


def test_mnist_runs_keep_the_presets_jitter(capsys):
    from nnkd.cli import main
    assert main(["train-teacher", "--preset", "fast", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["configs"]["teacher"]["jitter"] == 2
    assert "tuned on MNIST" not in out


# ---------------------------------------------------------------- the surface

def test_a_bad_flag_value_is_a_short_hint_and_one_error_line():
    r = main_py("distill", "--lr", "abc")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) <= 2 and lines[-1].startswith("error:") and "--lr" in lines[-1]
    assert "--help" in lines[0]


def test_the_api_refuses_a_bad_stage_dir_as_a_user_error():
    import nnkd
    data = nnkd.example_data()
    d = np.load(data)
    arrays = {k: d[k].reshape(len(d[k]), -1).astype(np.float32) / 255 if k[0] == "x" else d[k]
              for k in ("x_train", "y_train", "x_test", "y_test")}
    cfg = nnkd.TrainConfig(arch="64-8-10", epochs=1)
    for bad in (3, "", b"runs"):  # (None trains in memory)
        with pytest.raises(UserError, match="stage_dir"):
            nnkd.train(cfg, "numpy", arrays, bad)


def test_the_export_refusal_names_force(tmp_path, digits_teacher):
    dest = tmp_path / "w.npz"
    assert run("export", str(digits_teacher), str(dest)).returncode == 0
    r = run("export", str(digits_teacher), str(dest))
    assert r.returncode == 2 and "--force" in error_lines(r.stderr)[0]


def test_every_flag_has_help_text():
    from nnkd.cli.parser import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    empty = [f"{name} {a.option_strings or a.dest}" for name, p in sub.choices.items() for a in p._actions
             if not a.help]
    assert empty == []


def test_evaluate_reads_the_dataset_from_the_runs_settings(digits_teacher):
    r = run("evaluate", str(digits_teacher))
    assert r.returncode == 0, r.stderr
    assert "of 500" in r.stdout


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_sweep_stops_on_sigterm_and_sighup_keeping_its_cells(digits_teacher, tmp_path, sig):
    out = tmp_path / "sweep"
    p = subprocess.Popen([sys.executable, "main.py", "sweep", "--dataset", DS, "--preset", "smoke", "--teacher",
                          str(digits_teacher), "--widths", "8", "--temperatures", "4", "--seeds", "0",
                          "--epochs", "400", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "w8-T4-s0" / "checkpoint.npz").exists():
        time.sleep(0.05)
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "Traceback" not in err, err
    assert "continue with the same command" in error_lines(err)[0]
    assert run("evaluate", str(out / "w8-T4-s0" / "checkpoint.npz")).returncode == 0
