"""The readers of every kind of file nnkd reads, checkpoints, metrics and the run-folder lock:
whatever is wrong with a file ends in one UserError line that names it (no training here,
except one resume with the tiny synthetic data of test_train)."""

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnkd import checkpoint, runlock
from nnkd.errors import UserError
from nnkd.files import append_metrics, read_array, read_json, read_metrics, write_metrics
from nnkd.runlock import RunLock
from nnkd.checkpoint import export_weights

ROOT = Path(__file__).resolve().parents[1]
SEED = 20240501


def one_line(exc_info, path):
    """The error is one line, names ``path``, and speaks of no command-line flag."""
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    assert not re.search(r"(^|\s)--[a-z]", msg), msg
    return msg


def put(path, data):
    """Write ``data`` to a new file ``path`` (truncating an existing file in place makes ext4
    flush it to disk, which would make the fuzz tests slow)."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


# ---- the files, good and bad -----------------------------------------------------------------

def tiny_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"W0": rng.standard_normal((12, 6)).astype(np.float32), "b0": np.zeros(6, np.float32),
            "W1": rng.standard_normal((6, 10)).astype(np.float32), "b1": np.zeros(10, np.float32),
            "velocity0": np.zeros((12, 6), np.float32), "velocity1": np.zeros(6, np.float32)}


TINY_META = {"config": {"arch": "12-6-10"}, "epoch": 3, "seconds": 1.5}


def checkpoint_bytes(tmp_path):
    p = tmp_path / "made" / "checkpoint.npz"
    p.parent.mkdir(exist_ok=True)
    checkpoint.save(p, tiny_arrays(), TINY_META)
    return p.read_bytes()


def npy_bytes(a=None):
    f = io.BytesIO()
    np.save(f, np.arange(40, dtype=np.float32).reshape(4, 10) if a is None else a)
    return f.getvalue()


def json_bytes():
    return json.dumps({"command": "distill", "dataset": "mnist", "student": {"lr": 0.1}}).encode()


READERS = {
    # name: (file name, good bytes, read)
    "json": ("run.json", lambda tmp: json_bytes(), lambda p: read_json(p, "run settings")),
    "array": ("teacher_logits.npy", lambda tmp: npy_bytes(),
              lambda p: read_array(p, "teacher logits", shape=(None, 10), dtype=np.float32)),
    "checkpoint": ("checkpoint.npz", checkpoint_bytes, lambda p: checkpoint.load(p)),
}

FAULTS = {
    "missing": None,
    "empty": lambda tmp: b"",
    "random": lambda tmp: np.random.default_rng(SEED).integers(0, 256, 300, dtype=np.uint8).tobytes(),
    "json-list": lambda tmp: b"[1, 2, 3]\n",
    "json-string": lambda tmp: b'"a string"\n',
    "json-number": lambda tmp: b"42\n",
    "npy": lambda tmp: npy_bytes(),
    "npz": checkpoint_bytes,
    "json-object": lambda tmp: json_bytes(),
    "folder": "folder",
}
GOOD = {("json", "json-object"), ("array", "npy"), ("checkpoint", "npz")}
CASES = [(r, f) for r in READERS for f in FAULTS if (r, f) not in GOOD]


def test_good_files_are_read(tmp_path):
    for name, (fname, good, read) in READERS.items():
        p = tmp_path / fname
        p.write_bytes(good(tmp_path))
        assert read(p) is not None


@pytest.mark.parametrize("reader,fault", CASES, ids=[f"{r}-{f}" for r, f in CASES])
def test_every_reader_refuses_every_bad_file_in_one_line(tmp_path, reader, fault):
    fname, _, read = READERS[reader]
    p = tmp_path / fname
    if FAULTS[fault] == "folder":
        p.mkdir()
    elif FAULTS[fault] is not None:
        p.write_bytes(FAULTS[fault](tmp_path))
    with pytest.raises(UserError) as e:
        read(p)
    one_line(e, p)


@pytest.mark.parametrize("reader", list(READERS))
def test_every_reader_refuses_a_file_cut_at_any_byte(tmp_path, reader):
    fname, good, read = READERS[reader]
    raw = good(tmp_path)
    p = tmp_path / fname
    offsets = sorted(set(np.random.default_rng(SEED).integers(1, len(raw), 12).tolist()) | {1, len(raw) - 1})
    for n in offsets:
        put(p, raw[:n])
        with pytest.raises(UserError) as e:
            read(p)
        msg = one_line(e, p)
        if reader == "checkpoint":
            assert "truncated or corrupted" in msg, msg


def test_messages_say_what_is_wrong(tmp_path):
    cases = [
        ("json", b"", "is empty"), ("json", b'{"a": [1, 2', "is not valid JSON"),
        ("json", b"\xff\xfe{}", "is not text"), ("json", b"[1]", "holds a list"),
        ("array", npy_bytes()[:150], "is cut off"), ("array", checkpoint_bytes(tmp_path), "is an .npz archive"),
        ("array", json_bytes(), "is JSON text"), ("array", b"\x00" * 200, "not an .npy array"),
        ("array", npy_bytes(np.zeros((4, 9), np.float32)), "has shape (4, 9), expected (any, 10)"),
        ("array", npy_bytes(np.zeros((4, 10), np.float64)), "holds float64 values, expected float32"),
        ("array", npy_bytes(np.zeros((40,), np.float32)), "has shape (40,)"),
        ("array", npy_bytes(np.array([[np.nan] * 10], np.float32)), "holds 10 NaN or infinite values"),
        ("checkpoint", b"", "is empty"),
        ("checkpoint", npy_bytes(), "is a single .npy array, not an nnkd checkpoint (.npz)"),
        ("checkpoint", json_bytes(), "is JSON (the readable copy of a checkpoint's metadata?), give the .npz"),
        ("checkpoint", b"\x00" * 200, "not an .npz archive"),
    ]
    for reader, data, words in cases:
        fname, _, read = READERS[reader]
        p = tmp_path / fname
        p.write_bytes(data)
        with pytest.raises(UserError) as e:
            read(p)
        assert words in one_line(e, p)
    with pytest.raises(UserError, match="does not exist"):
        read_json(tmp_path / "nope.json", "run settings")


def test_read_array_refuses_object_arrays_without_unpickling(tmp_path):
    p = tmp_path / "logits.npy"
    np.save(p, np.array([object(), 1], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="Python objects") as e:
        read_array(p, "teacher logits")
    one_line(e, p)


def test_read_array_every_header_byte_flipped(tmp_path):
    raw = npy_bytes()
    p = tmp_path / "logits.npy"
    for i in range(128):  # the header; data bytes are any float
        for v in (0x00, 0xff, raw[i] ^ 0x20):
            b = bytearray(raw)
            b[i] = v
            put(p, bytes(b))
            try:
                a = read_array(p, "teacher logits", shape=(None, 10), dtype=np.float32)
            except UserError as e:
                assert "\n" not in str(e) and str(p) in str(e)
            else:
                assert a.shape[1] == 10 and a.dtype == np.float32


# ---- read_json -----------------------------------------------------------------------------------

def test_read_json_kinds(tmp_path):
    p = tmp_path / "cells.json"
    p.write_text("[1, 2]")
    assert read_json(p, "cells", kind=list) == [1, 2]
    with pytest.raises(UserError, match="holds a list .* where an object .* is expected"):
        read_json(p, "cells")
    p.write_text("true")
    with pytest.raises(UserError, match="holds true or false"):
        read_json(p, "cells", kind=(int, float))
    p.write_text("[" * 100000)
    with pytest.raises(UserError, match="not valid JSON"):
        read_json(p, "cells", kind=list)


# ---- metrics.jsonl -------------------------------------------------------------------------------

ROWS = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}, {"epoch": 3, "loss": 0.125}]


def test_metrics_round_trip_and_missing(tmp_path):
    p = tmp_path / "metrics.jsonl"
    assert read_metrics(p) == []
    write_metrics(p, ROWS[:2])
    append_metrics(p, ROWS[2])
    assert read_metrics(p) == ROWS
    assert p.read_text().endswith("\n") and len(p.read_text().splitlines()) == 3
    p.write_text("")
    assert read_metrics(p) == []
    p.write_text("\n".join(json.dumps(r) for r in ROWS))  # complete last line, no newline: kept
    assert read_metrics(p) == ROWS


def test_torn_last_line_is_dropped_with_one_log_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    write_metrics(p, ROWS)
    raw = p.read_bytes()
    start = raw.rindex(b"\n", 0, len(raw) - 1) + 1
    for cut in list(range(start + 1, len(raw) - 1)) + [None]:
        p.write_bytes(raw[:cut] if cut else raw[:-1] + b"\x00\x00\x00\n")  # cut off, or zero-filled
        logged = []
        assert read_metrics(p, log=logged.append) == ROWS[:2]
        assert logged == [f"{p}: dropped a torn last line (a run stopped while writing it)"]
    p.write_bytes(raw[:-5] + b"\xc3")  # a character cut in half
    assert read_metrics(p, log=lambda s: None) == ROWS[:2]


@pytest.mark.parametrize("bad,words", [
    (b'{"epoch": 2, "lo\n', "line 2 is not valid JSON"),
    (b"\xff\xfe\n", "line 2 is not valid JSON"),
    (b"[2]\n", "line 2 is not a row of training metrics"),
    (b'{"epoch": "2"}\n', "line 2 is not a row"),
    (b'{"epoch": true}\n', "line 2 is not a row"),
    (b'{"loss": 1}\n', "line 2 is not a row"),
])
def test_bad_middle_line_of_metrics_is_refused(tmp_path, bad, words):
    p = tmp_path / "metrics.jsonl"
    p.write_bytes(b'{"epoch": 1}\n' + bad + b'{"epoch": 3}\n')
    with pytest.raises(UserError, match=words) as e:
        read_metrics(p)
    one_line(e, p)


def test_last_line_that_is_whole_but_not_a_row_is_refused(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_bytes(b'{"epoch": 1}\n{"epoch": 2.5}\n')
    with pytest.raises(UserError, match="line 2 is not a row"):
        read_metrics(p)
    p.write_bytes(np.random.default_rng(SEED).integers(0, 256, 300, dtype=np.uint8).tobytes() + b"\n{}")
    with pytest.raises(UserError):
        read_metrics(p)


def test_append_is_one_write_and_a_short_one_tears_only_the_last_line(tmp_path, monkeypatch):
    p = tmp_path / "metrics.jsonl"
    write_metrics(p, ROWS[:1])
    writes, syncs = [], []
    real_write, real_fsync = os.write, os.fsync
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(bytes(data)) or real_write(fd, data))
    monkeypatch.setattr(os, "fsync", lambda fd: syncs.append(fd) or real_fsync(fd))
    append_metrics(p, ROWS[1])
    assert writes == [(json.dumps(ROWS[1]) + "\n").encode()] and len(syncs) == 1
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:7]))  # disk full mid-line
    with pytest.raises(UserError, match="could not write .*metrics.jsonl") as e:
        append_metrics(p, ROWS[2])
    one_line(e, p)
    monkeypatch.undo()
    assert read_metrics(p, log=lambda s: None) == ROWS[:2]


def test_write_metrics_failure_is_one_line(tmp_path):
    p = tmp_path / "gone" / "metrics.jsonl"
    with pytest.raises(UserError, match="could not write") as e:
        write_metrics(p, ROWS)
    one_line(e, p)


def test_resume_after_a_torn_metrics_line(tmp_path):
    from nnkd.backend import get_backend
    from nnkd.errors import Interrupted
    from nnkd.train import StopFlag, train

    from .test_train import small_cfg, synthetic, weights
    be = get_backend("numpy")
    data = synthetic(be)
    ref, _ = train(small_cfg(), be, data, tmp_path / "ref", log=lambda s: None)
    stop = StopFlag()

    def log(line):
        if "epoch    2/" in line:
            stop.signal = "SIGKILL"

    with pytest.raises(Interrupted):
        train(small_cfg(), be, data, tmp_path / "run", log=log, stop=stop)
    metrics = tmp_path / "run" / "metrics.jsonl"
    with open(metrics, "ab") as f:  # epoch 3's line, torn by a kill
        f.write(b'{"epoch": 3, "loss": 0.1, "train_er')
    logged = []
    resumed, _ = train(small_cfg(), be, data, tmp_path / "run", log=logged.append)
    assert f"{metrics}: dropped a torn last line (a run stopped while writing it)" in logged
    assert [r["epoch"] for r in read_metrics(metrics)] == [1, 2, 3, 4]
    for k, v in weights(ref).items():
        np.testing.assert_array_equal(v, weights(resumed)[k])


# ---- checkpoints ---------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path):
    p = tmp_path / "c.npz"
    checkpoint.save(p, tiny_arrays(), TINY_META)
    arrays, meta = checkpoint.load(p, require=("config", "epoch"))
    assert meta["epoch"] == 3 and set(arrays) == set(tiny_arrays())
    assert json.loads(p.with_suffix(".json").read_text())["epoch"] == 3


@pytest.mark.parametrize("name,value", [("W1", np.nan), ("b0", np.inf), ("velocity0", -np.inf)])
def test_non_finite_arrays_are_refused_naming_the_array(tmp_path, name, value):
    arrays = tiny_arrays()
    arrays[name] = arrays[name].copy()
    arrays[name].flat[3] = value
    p = tmp_path / "c.npz"
    checkpoint.save(p, arrays, TINY_META)
    with pytest.raises(UserError) as e:
        checkpoint.load(p)
    assert (f"checkpoint {p}: array {name} holds NaN or infinite values: the model diverged before it "
            "was saved, or the file is damaged; use an earlier checkpoint or train again") == one_line(e, p)


def test_sidecar_json_given_as_checkpoint_names_the_npz(tmp_path):
    p = tmp_path / "checkpoint.npz"
    checkpoint.save(p, tiny_arrays(), TINY_META)
    with pytest.raises(UserError) as e:
        checkpoint.load(p.with_suffix(".json"))
    msg = one_line(e, p.with_suffix(".json"))
    assert "is JSON (the readable copy of a checkpoint's metadata?)" in msg and str(p) in msg
    np.save(tmp_path / "w.npy", np.zeros(3))
    with pytest.raises(UserError, match=r"is a single \.npy array, not an nnkd checkpoint \(\.npz\)"):
        checkpoint.load(tmp_path / "w.npy")
    with pytest.raises(UserError, match="is a folder: give the checkpoint.npz inside it"):
        checkpoint.load(tmp_path)


def raw_checkpoint(path, meta, **arrays):
    """An .npz with ``meta`` (any JSON value, or an array) as its metadata, as nnkd never writes."""
    if not isinstance(meta, np.ndarray):
        meta = np.array(json.dumps(meta))
    np.savez(path, __meta__=meta, **(arrays or {"W0": np.zeros(3, np.float32)}))
    return path


@pytest.mark.parametrize("meta,words", [
    ([1, 2], "is a JSON list, not an object"),
    ("a string", "is a JSON str, not an object"),
    (7, "is a JSON int"),
    ({"format": 1, "config": "a string", "epoch": 1}, "config that is a JSON str"),
    ({"format": 1, "config": {}, "epoch": "x"}, "epoch 'x', not a whole number"),
    ({"format": 1, "epoch": -1}, "epoch -1"),
    ({"format": 1, "epoch": True}, "epoch True"),
    ({"format": 1, "epoch": 2.0}, "epoch 2.0"),
    ({"format": 1, "epoch": 1, "seconds": "x"}, "seconds 'x'"),
    ({"format": 1, "config": {}}, "has a config but no epoch"),
    ({"format": 2}, "has format 2"),
    ({}, "has format None"),
    (np.array([1.0, 2.0]), "unreadable metadata"),
    (np.array("{not json"), "unreadable metadata"),
])
def test_checkpoint_metadata_of_the_wrong_shape_is_refused(tmp_path, meta, words):
    p = raw_checkpoint(tmp_path / "c.npz", meta)
    with pytest.raises(UserError) as e:
        checkpoint.load(p)
    assert words in one_line(e, p)


def test_checkpoint_required_metadata_and_foreign_arrays(tmp_path):
    p = raw_checkpoint(tmp_path / "c.npz", {"format": 1})
    with pytest.raises(UserError, match="has no 'config' in its metadata"):
        checkpoint.load(p, require=("config",))
    p = raw_checkpoint(tmp_path / "d.npz", {"format": 1}, W0=np.array(["text"]))
    with pytest.raises(UserError, match="array W0 holds <U4 values, not numbers"):
        checkpoint.load(p)
    np.savez(tmp_path / "e.npz", a=np.zeros(3))
    with pytest.raises(UserError, match="not an nnkd checkpoint .no metadata inside"):
        checkpoint.load(tmp_path / "e.npz")


def test_checkpoint_member_longer_than_its_header_says(tmp_path):
    """A member whose .npy header announces more data than the member holds (or a huge
    shape) is refused before memory is allocated for it."""
    import zipfile
    p = tmp_path / "c.npz"
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                             "shape": (10 ** 7, 10 ** 6)})  # 40 TB announced
    fake = f.getvalue() + b"\0" * 64
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("W0.npy", fake)
        z.writestr("__meta__.npy", npy_bytes(np.array(json.dumps({"format": 1}))))
    with pytest.raises(UserError, match="truncated or corrupted") as e:
        checkpoint.load(p)
    one_line(e, p)


def test_checkpoint_member_with_a_damaged_header_and_a_valid_crc(tmp_path, recwarn):
    """Members rewritten with each .npy header byte changed (the zip's CRC-32 made to match):
    refused in one line, with no warning printed (NumPy parses the header as Python)."""
    import zipfile
    meta = npy_bytes(np.array(json.dumps({"format": 1})))
    good = npy_bytes(np.ones((3, 4), np.float32))
    p = tmp_path / "c.npz"
    for i in range(10, 128):
        for v in b"(){}'\" 0fx\n\x00":
            b = bytearray(good)
            b[i] = v
            p.unlink(missing_ok=True)
            with zipfile.ZipFile(p, "w") as z:
                z.writestr("W0.npy", bytes(b))
                z.writestr("__meta__.npy", meta)
            try:
                arrays, _ = checkpoint.load(p)
            except UserError as e:
                assert "\n" not in str(e) and str(p) in str(e)
            else:
                assert arrays["W0"].size == 12
    assert not [w for w in recwarn if issubclass(w.category, (SyntaxWarning, DeprecationWarning))]


def test_checkpoint_fuzz_every_cut_and_flipped_byte(tmp_path):
    """Every truncation and every byte set to 0x00, 0xff or flipped: a UserError or the very
    same arrays and metadata (CRC-32 guards the data), never a traceback."""
    raw = checkpoint_bytes(tmp_path)
    good, good_meta = checkpoint.load(tmp_path / "made" / "checkpoint.npz")
    p = tmp_path / "c.npz"
    variants = [raw[:n] for n in range(len(raw))]
    rng = np.random.default_rng(SEED)
    for i in range(len(raw)):
        b = bytearray(raw)
        b[i] = (0x00, 0xff, raw[i] ^ 0x01, raw[i] ^ 0x80)[i % 4]
        variants.append(bytes(b))
    for _ in range(300):
        b = bytearray(raw)
        i, n = int(rng.integers(len(raw))), int(rng.integers(1, 40))
        b[i:i + n] = rng.integers(0, 256, len(b[i:i + n]), dtype=np.uint8).tobytes()
        variants.append(bytes(b))
    refused = 0
    for data in variants:
        put(p, data)
        try:
            arrays, meta = checkpoint.load(p)
        except UserError as e:
            assert "\n" not in str(e) and str(p) in str(e), str(e)
            refused += 1
        else:
            assert meta == good_meta and set(arrays) == set(good)
            for k in good:
                np.testing.assert_array_equal(arrays[k], good[k])
    assert refused > len(raw)


@pytest.mark.parametrize("name", ["c.json", "c.npy", "c", "c.npz.tmp"])
def test_save_refuses_a_name_not_ending_in_npz(tmp_path, name):
    with pytest.raises(UserError, match="must end in .npz") as e:
        checkpoint.save(tmp_path / name, tiny_arrays(), TINY_META)
    one_line(e, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_save_writes_nothing_but_the_npz_and_its_json(tmp_path):
    checkpoint.save(tmp_path / "c.NPZ", tiny_arrays(), TINY_META)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.NPZ", "c.json"]


# ---- export --------------------------------------------------------------------------------------

@pytest.fixture
def trained(tmp_path):
    src = tmp_path / "run" / "checkpoint.npz"
    src.parent.mkdir()
    checkpoint.save(src, tiny_arrays(), TINY_META)
    return src


def test_export_writes_weights_only(tmp_path, trained):
    dest = tmp_path / "teacher.npz"
    export_weights(trained, dest, exported_from="checkpoint.npz")
    arrays, meta = checkpoint.load(dest)
    assert set(arrays) == {"W0", "b0", "W1", "b1"} and meta["weights_only"] is True
    assert meta["exported_from"] == "checkpoint.npz" and meta["epoch"] == 3
    assert json.loads(dest.with_suffix(".json").read_text())["weights_only"] is True


@pytest.mark.parametrize("existing", ["teacher.npz", "teacher.json"])
def test_export_refuses_an_existing_destination_or_sidecar_unless_forced(tmp_path, trained, existing):
    dest = tmp_path / "teacher.npz"
    (tmp_path / existing).write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists") as e:
        export_weights(trained, dest)
    msg = one_line(e, tmp_path / existing)
    assert "choose another destination, or allow overwriting with `force`" in msg
    assert (tmp_path / existing).read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", existing]
    export_weights(trained, dest, force=True)
    assert set(checkpoint.load(dest)[0]) == {"W0", "b0", "W1", "b1"}
    assert json.loads(dest.with_suffix(".json").read_text())["epoch"] == 3


@pytest.mark.parametrize("name", ["x.json", "x.npy", "x"])
def test_export_refuses_a_destination_not_ending_in_npz(tmp_path, trained, name):
    with pytest.raises(UserError, match="must end in .npz") as e:
        export_weights(trained, tmp_path / name, force=True)
    one_line(e, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_export_of_a_bad_checkpoint_writes_nothing(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 nothing")
    with pytest.raises(UserError, match="truncated or corrupted"):
        export_weights(tmp_path / "bad.npz", tmp_path / "out.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]


# ---- one process per run folder --------------------------------------------------------------------

HOLDER = ("import sys, time; sys.path.insert(0, sys.argv[2]); from nnkd.runlock import RunLock; "
          "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)")


def test_run_lock_refuses_a_second_process_and_is_taken_over_after_kill_9(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(ROOT)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(UserError) as e:
            RunLock(folder).acquire()
        msg = one_line(e, folder)
        assert re.fullmatch(rf"{re.escape(str(folder))} is in use by process {holder.pid} \(started "
                            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\): wait for it to finish or stop it; one "
                            r"process per run folder", msg), msg
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()
    assert json.loads((folder / ".lock").read_text())["pid"] == holder.pid  # left behind by kill -9
    logged = []
    with RunLock(folder, log=logged.append):
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
    assert logged == [f"{folder / '.lock'}: taking over the lock of process {holder.pid}, which has ended"]


def test_run_lock_in_one_process_and_release(tmp_path):
    folder = tmp_path / "a" / "run"
    with RunLock(folder) as lock:
        assert (folder / ".lock").exists() and lock.fd is not None
        with pytest.raises(UserError, match=f"in use by process {os.getpid()} ") as e:
            with RunLock(folder):
                pass
        one_line(e, folder)
        with RunLock(tmp_path / "other"):  # another folder is free
            pass
    assert (folder / ".lock").read_text() == ""  # released, file kept
    with RunLock(folder):
        pass
    with pytest.raises(ValueError), RunLock(folder):  # released when the body raises, too
        raise ValueError
    with RunLock(folder):
        pass


def test_run_lock_on_a_folder_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    folder = tmp_path / "file" / "run"
    with pytest.raises(UserError, match="cannot write the run folder") as e:
        RunLock(folder).acquire()
    one_line(e, folder)


def test_run_lock_without_fcntl_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "fcntl", None)
    with RunLock(tmp_path / "run"), RunLock(tmp_path / "run"):
        pass
    assert not (tmp_path / "run").exists()
