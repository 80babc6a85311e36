"""``python -m nnkd``, the list of shipped models, the data cache shown and cleared, and the
package's metadata."""

import configparser
import os
import subprocess
import sys

import pytest

import nnkd
from nnkd.cli import main
from tests.conftest import ROOT


def test_python_dash_m_nnkd_is_the_command_and_names_itself():
    run = subprocess.run([sys.executable, "-m", "nnkd", "teachers", "--no-such-flag"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("usage: python -m nnkd ")
    run = subprocess.run([sys.executable, "-m", "nnkd", "--version"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert run.stdout.strip() == f"nnkd {nnkd.__version__}"


def test_nnkd_teachers_lists_what_the_api_lists(capsys):
    assert main(["teachers"]) == 0
    out = capsys.readouterr().out
    models = nnkd.shipped_models()
    assert [m.name for m in models] == ["fast-teacher", "paper-teacher", "public-teacher"]
    public = next(m for m in models if m.name == "public-teacher")
    assert public.test_errors == 62 and public.sha256 in out and "centered inputs" in public.recipe
    for m in models:
        assert f"{m.name:16s} {m.test_errors:11d} {m.bytes / 1e6:6.1f} MB  {m.sha256}" in out
        assert m.recipe in out


def test_a_shipped_name_is_a_model_everywhere(tmp_path, capsys):
    net = nnkd.load_model("fast-teacher")
    assert net.sizes == [784, 1200, 1200, 10]
    assert main(["export", "fast-teacher", str(tmp_path / "w.npz")]) == 0
    assert (tmp_path / "w.npz").is_file()
    assert main(["evaluate", "no-such-teacher"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: model no-such-teacher: no such file, and nnkd ships no model of that name (it ships "
        "fast-teacher, paper-teacher, public-teacher); give a file's path or one of those names")


def test_the_cache_is_shown_and_cleared_leaving_other_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNKD_DATA", str(tmp_path))
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"x" * 1000)
    (tmp_path / "mnist" / "notes.txt").write_text("mine")
    assert main(["data", "--cache"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"cache folder {tmp_path} (set NNKD_DATA to use another)", "  mnist          1 file, 0.0 MB"]
    assert main(["data", "--clear-cache"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "removed 1 file, 0.0 MB; a dataset is fetched again when next used"
    assert os.listdir(tmp_path / "mnist") == ["notes.txt"]
    assert main(["data", "--cache"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "  no dataset cached"


def test_the_metadata_has_project_urls_classifiers_and_the_sklearn_extra():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "https://arxiv.org/abs/1503.02531" in cfg["metadata"]["project_urls"]
    assert "License :: OSI Approved :: MIT License" in cfg["metadata"]["classifiers"]
    assert "scikit-learn" in cfg["options.extras_require"]["sklearn"]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {".venv/", "build/", "dist/"} <= set(ignored)


@pytest.mark.parametrize("field", ["title", "authors", "version", "references"])
def test_the_citation_file_names_the_software_and_the_paper(field):
    text = (ROOT / "CITATION.cff").read_text()
    assert f"\n{field}:" in "\n" + text
    assert "Distilling the Knowledge in a Neural Network" in text and "1503.02531" in text
