"""Checkpoints, word for word: the one line a user reads for each thing that can be wrong with a
checkpoint or a destination, what `save` writes, and the edges of what `load` accepts.

tests/test_files.py checks that every fault is refused in one line naming the file; here each
message is pinned whole, since the message is what tells a user what to do."""

import io
import json
import zipfile
from dataclasses import asdict

import numpy as np
import pytest

from nnkd import checkpoint
from nnkd.backend import get_backend
from nnkd.config import TrainConfig
from nnkd.errors import UserError
from nnkd.version import __version__

ADVICE = "use an earlier checkpoint or train again"
WEIGHTS = {"W0": np.ones((12, 6), np.float32), "b0": np.zeros(6, np.float32),
           "W1": np.ones((6, 10), np.float32), "b1": np.zeros(10, np.float32)}


def message(call, *args, **kwargs):
    with pytest.raises(UserError) as e:
        call(*args, **kwargs)
    return str(e.value)


def npy(a):
    f = io.BytesIO()
    np.save(f, a)
    return f.getvalue()


def zip_of(path, **members):
    """An .npz holding ``members`` (name -> raw .npy bytes), as nnkd never writes it."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)
    return path


def meta_npy(meta):
    return npy(np.array(json.dumps(meta)))


def raw(path, meta, **arrays):
    np.savez(path, __meta__=np.array(json.dumps(meta)), **(arrays or {"W0": np.zeros(3, np.float32)}))
    return path


# ---- load: the file -------------------------------------------------------------------------------

def test_a_missing_file(tmp_path):
    p = tmp_path / "c.npz"
    assert message(checkpoint.load, p) == \
        f"checkpoint {p} does not exist: give the path of a checkpoint.npz written by nnkd"


def test_a_folder_with_and_without_a_checkpoint_inside(tmp_path):
    assert message(checkpoint.load, tmp_path) == \
        f"checkpoint {tmp_path} is a folder: give the checkpoint.npz written by nnkd"
    checkpoint.save(tmp_path / "checkpoint.npz", WEIGHTS, {"epoch": 1})
    assert message(checkpoint.load, tmp_path) == \
        f"checkpoint {tmp_path} is a folder: give the checkpoint.npz inside it ({tmp_path / 'checkpoint.npz'})"


def test_an_empty_file(tmp_path):
    p = tmp_path / "c.npz"
    p.write_bytes(b"")
    assert message(checkpoint.load, p) == \
        f"checkpoint {p} is empty: it was cut off while being written; {ADVICE}"


def test_a_single_npy_array(tmp_path):
    p = tmp_path / "w.npz"
    p.write_bytes(npy(np.zeros(3)))
    assert message(checkpoint.load, p) == \
        f"{p} is a single .npy array, not an nnkd checkpoint (.npz): give a checkpoint.npz written by nnkd"


def test_the_json_sidecar_with_and_without_its_npz(tmp_path):
    p = tmp_path / "c.npz"
    checkpoint.save(p, WEIGHTS, {"epoch": 1})
    sidecar = p.with_suffix(".json")
    assert message(checkpoint.load, sidecar) == \
        f"{sidecar} is JSON (the readable copy of a checkpoint's metadata?), give the .npz beside it ({p})"
    p.unlink()
    assert message(checkpoint.load, sidecar) == \
        f"{sidecar} is JSON (the readable copy of a checkpoint's metadata?), give the .npz beside it"


def test_another_kind_of_file(tmp_path):
    p = tmp_path / "c.npz"
    p.write_bytes(b"#!/bin/sh\necho hello\n")
    assert message(checkpoint.load, p) == \
        (f"checkpoint {p} is truncated or corrupted, or another kind of file: it is not an .npz "
         "archive; give a checkpoint.npz written by nnkd")


def test_a_cut_archive_says_what_the_zip_reader_found(tmp_path):
    p = tmp_path / "c.npz"
    checkpoint.save(p, WEIGHTS, {"epoch": 1})
    p.write_bytes(p.read_bytes()[:200])
    assert message(checkpoint.load, p) == \
        f"checkpoint {p} is truncated or corrupted (File is not a zip file); {ADVICE}"


def test_a_member_holding_python_objects_is_refused_unread(tmp_path):
    p = zip_of(tmp_path / "c.npz", W0=npy(np.array([{"a": 1}], dtype=object)), __meta__=meta_npy({"format": 1}))
    assert message(checkpoint.load, p) == \
        (f"checkpoint {p} is truncated or corrupted (array W0 holds Python objects, which nnkd never "
         f"writes and will not unpickle); {ADVICE}")


def test_a_member_shorter_than_its_header(tmp_path):
    p = zip_of(tmp_path / "c.npz", W0=npy(np.zeros(10, np.float32))[:-32], __meta__=meta_npy({"format": 1}))
    assert message(checkpoint.load, p) == \
        (f"checkpoint {p} is truncated or corrupted (array W0: 8 bytes of data where its header "
         f"announces float32(10,), 40 bytes); {ADVICE}")


def test_a_member_of_an_npy_version_nnkd_never_writes(tmp_path):
    data = bytearray(npy(np.zeros(10, np.float32)))
    data[6] = 3  # format version 3.0
    p = zip_of(tmp_path / "c.npz", W0=bytes(data), __meta__=meta_npy({"format": 1}))
    assert message(checkpoint.load, p) == \
        (f"checkpoint {p} is truncated or corrupted (array W0 has an .npy format version nnkd never "
         f"writes); {ADVICE}")


def test_a_damaged_member_header_is_caught_whatever_it_raises(tmp_path):
    """Headers that make NumPy's parser raise each kind of NPY_DAMAGE error end in the same line."""
    good = npy(np.zeros(10, np.float32))
    start = good.index(b"{")
    for text in (b"{'descr': '<f4', 'fortran_order': False, 'shape': (10,", b"{'descr': 17}",
                 b"{'descr': '<f4'}", b"[1, 2, 3]"):
        header = text.ljust(len(good) - start - 41, b" ")[:len(good) - start - 41] + b"\n"
        data = good[:start] + header + good[-40:]
        p = zip_of(tmp_path / "c.npz", W0=data, __meta__=meta_npy({"format": 1}))
        msg = message(checkpoint.load, p)
        assert msg.startswith(f"checkpoint {p} is truncated or corrupted (") and msg.endswith(f"); {ADVICE}"), msg



def test_a_file_that_cannot_be_read(tmp_path, monkeypatch):
    p = tmp_path / "c.npz"
    checkpoint.save(p, WEIGHTS, {"epoch": 1})

    def refused(*args, **kwargs):  # root reads any file, so the refusal is simulated
        raise PermissionError(13, "Permission denied", str(p))
    monkeypatch.setattr(checkpoint, "open", refused, raising=False)
    assert message(checkpoint.load, p) == \
        f"cannot read checkpoint {p}: Permission denied; check its permissions"

# ---- load: the metadata ---------------------------------------------------------------------------

def test_an_npz_of_another_program(tmp_path):
    p = tmp_path / "c.npz"
    np.savez(p, a=np.zeros(3))
    assert message(checkpoint.load, p) == \
        (f"{p} is not an nnkd checkpoint (no metadata inside: another program's .npz, or damaged): "
         "give a checkpoint.npz written by nnkd")


def test_metadata_that_is_not_text_or_not_json(tmp_path):
    p = tmp_path / "c.npz"
    np.savez(p, __meta__=np.array([1.0, 2.0]), W0=np.zeros(3, np.float32))
    assert message(checkpoint.load, p) == \
        f"checkpoint {p} has unreadable metadata (float64(2,), not text); it is corrupted: {ADVICE}"
    np.savez(p, __meta__=np.array(["{}", "{}"]), W0=np.zeros(3, np.float32))
    assert message(checkpoint.load, p) == \
        f"checkpoint {p} has unreadable metadata (<U2(2,), not text); it is corrupted: {ADVICE}"
    np.savez(p, __meta__=np.array("{not json"), W0=np.zeros(3, np.float32))
    assert message(checkpoint.load, p) == f"checkpoint {p} has unreadable metadata; it is corrupted: {ADVICE}"


BAD_META = [
    ([1, 2], "is a JSON list, not an object"),
    ({"format": 1, "config": [1], "epoch": 1}, "holds a config that is a JSON list, not an object"),
    ({"format": 1, "epoch": -1}, "holds epoch -1, not a whole number >= 0"),
    ({"format": 1, "epoch": 1.0}, "holds epoch 1.0, not a whole number >= 0"),
    ({"format": 1, "epoch": 1, "seconds": -0.5}, "holds seconds -0.5, not a number >= 0"),
    ({"format": 1, "epoch": 1, "seconds": "1"}, "holds seconds '1', not a number >= 0"),
    ({"format": 1, "epoch": 1, "seconds": float("nan")}, "holds seconds nan, not a number >= 0"),
    ({"format": 1, "epoch": 1, "seconds": float("inf")}, "holds seconds inf, not a number >= 0"),
    ({"format": 1, "config": {}}, "has a config but no epoch"),
]


@pytest.mark.parametrize("meta,what", BAD_META, ids=[w for _, w in BAD_META])
def test_metadata_of_the_wrong_shape(tmp_path, meta, what):
    p = raw(tmp_path / "c.npz", meta)
    assert message(checkpoint.load, p) == \
        f"checkpoint {p} has metadata that {what}: it was not written by nnkd or is damaged; {ADVICE}"


def test_another_format(tmp_path):
    p = raw(tmp_path / "c.npz", {"format": 2})
    assert message(checkpoint.load, p) == \
        f"checkpoint {p} has format 2; this nnkd ({__version__}) reads format {checkpoint.FORMAT}"
    p = raw(tmp_path / "c.npz", {"epoch": 1})
    assert message(checkpoint.load, p) == \
        f"checkpoint {p} has format None; this nnkd ({__version__}) reads format {checkpoint.FORMAT}"


@pytest.mark.parametrize("meta", [
    {"format": 1, "epoch": 0, "seconds": 0},
    {"format": 1, "epoch": 0, "seconds": 0.0, "config": {}},
    {"format": 1, "epoch": 7, "seconds": 12},
    {"format": 1},
], ids=["epoch-0-seconds-0", "float-seconds", "int-seconds", "no-epoch"])
def test_the_edges_of_good_metadata_are_accepted(tmp_path, meta):
    p = raw(tmp_path / "c.npz", meta)
    arrays, got = checkpoint.load(p)
    assert got == meta and list(arrays) == ["W0"]


def test_required_keys_and_expected_arrays(tmp_path):
    p = raw(tmp_path / "c.npz", {"format": 1, "epoch": 1}, W0=np.zeros((12, 6), np.float32))
    assert message(checkpoint.load, p, require=("epoch", "config")) == \
        (f"checkpoint {p} has no 'config' in its metadata: it is not a trained nnkd model; give a "
         "checkpoint.npz written by nnkd")
    assert message(checkpoint.load, p, expected={"W0": ((12, 6), np.float32), "W9": ((6,), np.float32)}) == \
        f"checkpoint {p} has no array 'W9': it was written for another model or by another version"
    assert message(checkpoint.load, p, expected={"W0": ((12, 7), np.float32)}) == \
        (f"checkpoint {p}: W0 is float32(12, 6), expected float32(12, 7): it belongs to another "
         "architecture")
    assert message(checkpoint.load, p, expected={"W0": ((12, 6), np.float64)}) == \
        (f"checkpoint {p}: W0 is float32(12, 6), expected float64(12, 6): it belongs to another "
         "architecture")
    arrays, meta = checkpoint.load(p, expected={"W0": ((12, 6), np.float32)}, require=("epoch",))
    assert meta["epoch"] == 1 and arrays["W0"].shape == (12, 6)


def test_arrays_that_are_not_numbers_or_not_finite(tmp_path):
    p = raw(tmp_path / "c.npz", {"format": 1}, W0=np.array([b"ab"]))
    assert message(checkpoint.load, p) == \
        (f"checkpoint {p}: array W0 holds |S2 values, not numbers: it was not written by nnkd or is "
         f"damaged; {ADVICE}")
    p = raw(tmp_path / "c.npz", {"format": 1}, W0=np.array([1 + 1j, complex("nan")]))
    assert message(checkpoint.load, p) == \
        (f"checkpoint {p}: array W0 holds NaN or infinite values: the model diverged before it was "
         f"saved, or the file is damaged; {ADVICE}")
    p = raw(tmp_path / "c.npz", {"format": 1}, W0=np.array([1, 2], np.int64), W1=np.array([True]))
    arrays, _ = checkpoint.load(p)
    assert arrays["W0"].tolist() == [1, 2] and arrays["W1"].tolist() == [True]


# ---- save and export ---------------------------------------------------------------------------

def test_save_writes_its_metadata_inside_and_beside_sorted(tmp_path):
    p = tmp_path / "c.npz"
    checkpoint.save(p, WEIGHTS, {"epoch": 2, "config": {"b": 1, "a": 2}, "alpha": 1})
    inside = str(np.load(p)["__meta__"])
    assert p.with_suffix(".json").read_text() == inside
    meta = json.loads(inside)
    assert meta == {"epoch": 2, "config": {"b": 1, "a": 2}, "alpha": 1, "format": checkpoint.FORMAT,
                    "nnkd_version": __version__}
    assert inside == json.dumps(meta, indent=1, sort_keys=True)  # sorted: two checkpoints diff cleanly
    assert list(json.loads(inside)) == sorted(meta)


def test_a_name_not_ending_in_npz(tmp_path):
    p = tmp_path / "c.json"
    assert message(checkpoint.save, p, WEIGHTS, {}) == \
        (f"cannot save a checkpoint to {p}: a checkpoint's name must end in .npz (its readable "
         f"metadata goes beside it, to c.json, and must not replace it): give e.g. {tmp_path / 'c.npz'}")
    assert message(checkpoint.check_export_destination, p) == \
        (f"cannot export to {p}: a checkpoint's name must end in .npz (its readable metadata goes "
         f"beside it, to c.json, and must not replace it): give e.g. {tmp_path / 'c.npz'}")


class NoSpace:
    def __call__(self, path, write):
        raise OSError(28, "No space left on device", str(path))


class Unnamed:
    def __call__(self, path, write):
        raise OSError("disk went away")


def test_a_write_that_fails(tmp_path, monkeypatch):
    p = tmp_path / "c.npz"
    monkeypatch.setattr(checkpoint, "atomic_write", NoSpace())
    assert message(checkpoint.save, p, WEIGHTS, {}) == \
        (f"could not write {p}: No space left on device; the previous checkpoint, if any, is intact: "
         "free space or choose another run folder")
    monkeypatch.setattr(checkpoint, "atomic_write", Unnamed())
    assert message(checkpoint.save, p, WEIGHTS, {}) == \
        (f"could not write {p}: disk went away; the previous checkpoint, if any, is intact: "
         "free space or choose another run folder")


def test_export_destinations(tmp_path):
    dest = tmp_path / "t.npz"
    assert checkpoint.check_export_destination(str(dest)) == dest
    (tmp_path / "t.json").mkdir()
    assert message(checkpoint.check_export_destination, dest, force=True) == \
        f"cannot export to {dest}: {tmp_path / 't.json'} is a folder; give a file name ending in .npz"
    (tmp_path / "t.json").rmdir()
    dest.write_bytes(b"")
    assert message(checkpoint.check_export_destination, dest) == \
        f"{dest} already exists and exporting would replace it: choose another destination, or ask to overwrite it"
    assert checkpoint.check_export_destination(dest, force=True) == dest
    dest.unlink()
    (tmp_path / "t.json").symlink_to(tmp_path / "nowhere")  # a dangling link is still in the way
    assert message(checkpoint.check_export_destination, dest).startswith(f"{tmp_path / 't.json'} already exists")
    away = tmp_path / "no" / "such" / "w.npz"
    assert message(checkpoint.check_export_destination, away, force=True) == \
        (f"cannot export to {away}: the folder {away.parent} does not exist; create it or choose another "
         "destination")


def test_an_export_onto_its_own_checkpoint_is_refused_even_when_forced(tmp_path):
    src = tmp_path / "run" / "checkpoint.npz"
    src.parent.mkdir()
    checkpoint.save(src, WEIGHTS, {"epoch": 3})
    before = src.read_bytes(), src.with_suffix(".json").read_bytes()
    for dest in (src, tmp_path / "run" / ".." / "run" / "checkpoint.npz"):
        assert message(checkpoint.export_weights, src, dest, force=True) == \
            (f"cannot export {src} onto itself ({dest} would replace {src}): the run could no longer "
             "resume; give another destination")
    assert (src.read_bytes(), src.with_suffix(".json").read_bytes()) == before


def test_export_keeps_the_weights_and_the_metadata_only(tmp_path):
    src = tmp_path / "run.npz"
    arrays = dict(WEIGHTS, velocity0=np.ones((12, 6), np.float32), step=np.array(3))
    checkpoint.save(src, arrays, {"epoch": 4, "config": {"arch": "12-6-10"}})
    checkpoint.export_weights(src, tmp_path / "w.npz", note="shared")
    got, meta = checkpoint.load(tmp_path / "w.npz")
    assert sorted(got) == ["W0", "W1", "b0", "b1"]
    assert meta == {"epoch": 4, "config": {"arch": "12-6-10"}, "weights_only": True, "note": "shared",
                    "format": checkpoint.FORMAT, "nnkd_version": __version__}


@pytest.mark.parametrize("name,weight", [("W0", True), ("b12", True), ("W", False), ("b", False),
                                         ("velocity0", False), ("Wx", False), ("bias", False), ("x0", False),
                                         ("X0", False)])
def test_which_arrays_are_weights(name, weight):
    assert checkpoint.is_weight(name) is weight


# ---- load_model ----------------------------------------------------------------------------------

def model_file(tmp_path, arrays=None, config=(), **meta):
    cfg = dict(asdict(TrainConfig(arch="12-6-10")), **dict(config))
    p = tmp_path / "m.npz"
    checkpoint.save(p, WEIGHTS if arrays is None else arrays, dict({"config": cfg, "epoch": 1}, **meta))
    return p


def test_load_model_builds_the_network_of_the_checkpoint(tmp_path):
    arrays = {k: np.full_like(v, i + 1) for i, (k, v) in enumerate(WEIGHTS.items())}
    net, meta = checkpoint.load_model(model_file(tmp_path, arrays, data_checksum="abc"), get_backend("numpy"),
                                      data_checksum="abc")
    assert net.sizes == [12, 6, 10] and meta["epoch"] == 1
    for name, p in net.params:
        np.testing.assert_array_equal(p.data, arrays[name])


def test_load_model_refusals(tmp_path):
    be = get_backend("numpy")
    p = model_file(tmp_path, data_checksum="abc")
    assert message(checkpoint.load_model, p, be, data_checksum="xyz", dataset="mnist") == \
        f"{p} was trained on other data than mnist: give a teacher trained on it, or train one"
    assert message(checkpoint.load_model, p, be, data_checksum="xyz") == \
        f"{p} was trained on other data than this dataset: give a teacher trained on it, or train one"
    p = model_file(tmp_path, {k: v for k, v in WEIGHTS.items() if k != "b1"})
    assert message(checkpoint.load_model, p, be) == \
        f"checkpoint {p}: array b1 is missing, but its config 12-6-10 needs (10,): the file is damaged"
    p = model_file(tmp_path, dict(WEIGHTS, W1=np.ones((6, 9), np.float32)))
    assert message(checkpoint.load_model, p, be) == \
        f"checkpoint {p}: array W1 is float32(6, 9), but its config 12-6-10 needs (6, 10): the file is damaged"
    p = raw(tmp_path / "r.npz", {"format": 1, "epoch": 1})
    assert message(checkpoint.load_model, p, be) == \
        (f"checkpoint {p} has no 'config' in its metadata: it is not a trained nnkd model; give a "
         "checkpoint.npz written by nnkd")


@pytest.mark.parametrize("config,why", [
    ({"arch": "12-x-10"}, "architecture '12-x-10' is malformed: expected widths joined by '-', such as "
                          "784-1200-1200-10"),
    ({"dropout_input": 1.5}, "its config cannot build a network (dropout rate must be in [0, 1), got 1.5)"),
    ({"init_std": -1.0}, "its config cannot build a network (scale < 0)"),
    ({"dropout_hidden": "a"}, "its config cannot build a network ('>' not supported between instances of "
                              "'str' and 'int')"),
], ids=["arch", "dropout", "init", "a-string"])
def test_load_model_of_a_config_that_cannot_build_a_network(tmp_path, config, why):
    p = model_file(tmp_path, config=config)
    assert message(checkpoint.load_model, p, get_backend("numpy")) == f"checkpoint {p}: {why}"
