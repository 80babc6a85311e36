"""A run re-run from its record (``--config RUN/run.json``): the same settings give the same
checkpoints bit for bit; flags beside it change single settings, and the header names them."""

import json

import numpy as np
import pytest

from nnkd.cli import main
from nnkd.install import command_name


def arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def same_checkpoints(a, b):
    found = sorted(p.relative_to(a) for p in a.rglob("checkpoint.npz"))
    assert found, a
    for rel in found:
        x, y = arrays(a / rel), arrays(b / rel)
        assert sorted(x) == sorted(y)
        for name in x:
            assert x[name].tobytes() == y[name].tobytes(), f"{rel}: {name}"
    return found


@pytest.mark.mnist
def test_a_smoke_distill_rerun_from_its_run_json_gives_bit_identical_checkpoints(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["distill", "--preset", "smoke", "--out", "a", "--quiet"]) == 0
    assert main(["distill", "--config", "a/run.json", "--out", "b", "--quiet"]) == 0
    assert [str(p) for p in same_checkpoints(tmp_path / "a", tmp_path / "b")] == \
        ["distilled/checkpoint.npz", "student/checkpoint.npz"]
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert json.loads((tmp_path / "b" / "run.json").read_text()) == record
    assert "settings from a/run.json, none changed" in (tmp_path / "b" / "log.txt").read_text()


@pytest.mark.mnist
def test_flags_beside_the_record_change_single_settings_and_the_header_names_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train-student", "--preset", "smoke", "--epochs", "2", "--lr", "0.05", "--seed", "3",
                 "--out", "a", "--quiet"]) == 0
    assert main(["train-student", "--config", "a", "--epochs", "1", "--out", "b", "--quiet"]) == 0
    a = json.loads((tmp_path / "a" / "run.json").read_text())
    b = json.loads((tmp_path / "b" / "run.json").read_text())
    assert b["configs"]["student"] == dict(a["configs"]["student"], epochs=1)
    assert {k: v for k, v in b.items() if k != "configs"} == {k: v for k, v in a.items() if k != "configs"}
    assert "settings from a, changed by --epochs 1" in (tmp_path / "b" / "log.txt").read_text()


def test_a_flag_given_at_its_default_value_still_changes_the_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    spec = {"command": "train-student", "dataset": "mnist", "preset": "smoke", "train_limit": 5000,
            "configs": {"student": {"arch": "784-64-64-10", "epochs": 2, "seed": 3}}}
    (tmp_path / "a" / "run.json").write_text(json.dumps(spec))
    capsys.readouterr()
    assert main(["train-student", "--config", "a", "--seed", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("\n{") + 1:])
    assert printed["configs"]["student"]["seed"] == 0 and printed["configs"]["student"]["epochs"] == 2


def test_a_record_of_another_command_or_with_a_preset_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    spec = {"command": "train-teacher", "dataset": "mnist", "preset": "smoke", "configs": {}}
    (tmp_path / "a" / "run.json").write_text(json.dumps(spec))
    assert main(["distill", "--config", "a/run.json", "--out", "b"]) == 2
    assert capsys.readouterr().err.strip().endswith("error: --config a/run.json: that run was made by "
                                                    "train-teacher, not distill: run `nnkd train-teacher "
                                                    "--config a/run.json`".replace("nnkd", command_name()))
    assert main(["train-teacher", "--config", "a/run.json", "--preset", "paper", "--out", "b"]) == 2
    assert "leave out --preset" in capsys.readouterr().err
    assert main(["train-teacher", "--config", "nowhere.json"]) == 2
    assert "--config nowhere.json: no such file" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
