"""nnkd as a package: advice that fits how it was installed, where runs and the data cache go,
the shipped files, a dry run that fetches and writes nothing, and the public API.
(tests/install_check.sh installs a built wheel into a fresh venv and runs it from elsewhere.)"""

import json
from pathlib import Path

import numpy as np
import pytest

import nnkd
from nnkd import cli, install, presets
from nnkd.data import default_root
from nnkd.errors import UserError
from tests.conftest import ROOT


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """nnkd as a wheel installs it: the package folder with no checkout around it."""
    monkeypatch.setattr(install, "SOURCE_ROOT", tmp_path / "site-packages")
    monkeypatch.setattr("sys.argv", [str(tmp_path / "venv" / "bin" / "nnkd")])


def test_a_checkout_is_recognised_and_advice_fits_it():
    assert install.in_checkout() and install.SOURCE_ROOT == ROOT
    assert install.command_name() == "python main.py"  # pytest runs from the checkout
    assert install.extra_hint("onnx") == 'pip install -e ".[onnx]"'


def test_an_install_gets_the_installed_advice(installed):
    assert not install.in_checkout()
    assert install.command_name() == "nnkd"
    assert install.extra_hint("onnx") == 'pip install "nnkd[onnx]"'


def test_the_data_cache_of_an_install_is_the_user_cache(installed, tmp_path, monkeypatch):
    monkeypatch.delenv("NNKD_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "nnkd"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "nnkd"
    monkeypatch.setenv("NNKD_DATA", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"


def test_the_data_cache_of_a_checkout_is_its_data_folder(monkeypatch):
    monkeypatch.delenv("NNKD_DATA", raising=False)
    assert default_root() == ROOT / "data"


def test_new_runs_go_under_the_current_folder(tmp_path, monkeypatch):
    from nnkd.cli.parser import build_parser
    monkeypatch.chdir(tmp_path)
    out = cli._new_run_dir(build_parser().parse_args(["distill"]))
    assert out.resolve().parent == tmp_path / "runs" and out.name.startswith("distill-")


def test_dry_run_without_the_data_fetches_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """Settings are checked against the dataset's published sizes; the shipped teacher is found."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("NNKD_DATA", str(cache))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["distill", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "not cached yet" in out and "published sizes" in out
    spec = json.loads(out[out.index("{"):])
    assert spec["teacher_checkpoint"] == str(ROOT / "nnkd" / "pretrained" / install.DEFAULT_TEACHER / "checkpoint.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"] and not any(cache.iterdir())
    # the checks that need the data's sizes still apply
    assert cli.main(["distill", "--dry-run", "--validation", "60000"]) == 2
    assert "no training images out of 60000" in capsys.readouterr().err
    assert cli.main(["distill", "--dry-run", "--jitter", "30"]) == 2
    assert "from 0 to 27" in capsys.readouterr().err
    assert not any(cache.iterdir())


def test_a_shipped_teacher_is_named_by_its_folder(tmp_path, monkeypatch, capsys):
    """--teacher NAME takes the shipped model NAME; a bare name nnkd does not ship is one line
    naming the ones it does; a file of that name in the current folder wins."""
    monkeypatch.setenv("NNKD_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    names = install.shipped_models()
    assert install.DEFAULT_TEACHER in names and "fast-teacher" in names
    for name in names:
        assert cli.main(["distill", "--dry-run", "--teacher", name]) == 0
        spec = json.loads((out := capsys.readouterr().out)[out.index("{"):])
        assert spec["teacher_checkpoint"] == str(ROOT / "nnkd" / "pretrained" / name / "checkpoint.npz")
    assert cli.main(["distill", "--dry-run", "--teacher", "no-such-teacher"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-teacher" in err and ", ".join(names) in err
    (tmp_path / "fast-teacher").write_bytes(b"not a checkpoint")
    assert cli.main(["distill", "--dry-run", "--teacher", "fast-teacher"]) == 2
    assert str(tmp_path / "fast-teacher") in capsys.readouterr().err

def test_a_preset_distills_from_its_own_shipped_teacher(tmp_path, monkeypatch, capsys):
    """--preset paper takes paper-teacher where nnkd ships it and the default teacher where it
    does not; the other presets take the default teacher."""
    monkeypatch.setenv("NNKD_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    def teacher_of(*flags):
        assert cli.main(["distill", "--dry-run", *flags]) == 0
        out = capsys.readouterr().out
        return Path(json.loads(out[out.index("{"):])["teacher_checkpoint"]).parent.name

    if "paper-teacher" not in install.shipped_models():
        assert teacher_of("--preset", "paper") == install.DEFAULT_TEACHER
        package = tmp_path / "package"  # nnkd as it would be with a paper-teacher shipped
        (package / "pretrained").mkdir(parents=True)
        for name in install.shipped_models():
            (package / "pretrained" / name).symlink_to(install.PACKAGE / "pretrained" / name)
        (package / "pretrained" / "paper-teacher").symlink_to(install.PACKAGE / "pretrained" / "fast-teacher")
        monkeypatch.setattr(install, "PACKAGE", package)
    assert teacher_of("--preset", "paper") == "paper-teacher"
    assert teacher_of("--preset", "fast") == teacher_of() == install.DEFAULT_TEACHER == "public-teacher"
    assert teacher_of("--preset", "paper", "--teacher", "fast-teacher") == "fast-teacher"


def test_a_preset_says_when_it_distils_from_a_stand_in_teacher(monkeypatch):
    """Without its own shipped teacher, --preset paper distils from the default one, and its
    log says so; with it, or with any other teacher, nothing is said."""
    stand_in = str(install.PACKAGE / "pretrained" / install.DEFAULT_TEACHER / "checkpoint.npz")
    monkeypatch.setattr(presets, "shipped_models", lambda: ["fast-teacher", "public-teacher"])
    note = presets.stand_in_note("paper", stand_in)
    assert note == ("preset paper: its own teacher paper-teacher is not shipped with this nnkd, so it "
                    "distils from public-teacher; give --teacher to choose another")
    assert presets.stand_in_note("paper", "/elsewhere/public-teacher/checkpoint.npz") is None
    assert presets.stand_in_note("fast", stand_in) is None
    assert presets.stand_in_note("paper", None) is None
    monkeypatch.setattr(presets, "shipped_models", lambda: ["paper-teacher", "public-teacher"])
    assert presets.stand_in_note("paper", stand_in) is None


def test_example_data_is_shipped():
    with np.load(nnkd.example_data()) as d:
        assert d["x_train"].shape == (1500, 8, 8) and d["y_test"].shape == (500,)
    with pytest.raises(UserError, match="ships digits8x8"):
        nnkd.example_data("cifar")


def test_load_model_predicts_classes(tmp_path):
    d = np.load(nnkd.example_data())
    data = {k: d[k].reshape(len(d[k]), -1) / np.float32(255) if k[0] == "x" else d[k].astype(np.int64)
            for k in ("x_train", "y_train", "x_test", "y_test")}
    net, _ = nnkd.train(nnkd.TrainConfig(arch="64-16-10", epochs=2, lr=0.1), nnkd.get_backend("numpy"),
                        data, tmp_path / "model")
    again = nnkd.load_model(tmp_path / "model" / "checkpoint.npz")
    np.testing.assert_array_equal(again.predict_logits(data["x_test"]), net.predict_logits(data["x_test"]))
    labels = again.predict(data["x_test"])
    assert labels.shape == (500,) and np.array_equal(labels, net.predict_logits(data["x_test"]).argmax(1))
    with pytest.raises(UserError, match="missing.npz"):
        nnkd.load_model(tmp_path / "missing.npz")
