"""The README's "Python API" example, run as it is written there (so the two cannot drift);
tests/install_check.sh runs it too, with nnkd installed from a wheel."""

import re

import pytest

from tests.conftest import ROOT


def readme_example():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_api_example_distills(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    (result,) = [line for line in lines if line.startswith("teacher ")]
    teacher, student = map(int, re.findall(r"(\d+)", result)[:2])
    assert teacher < 40 and student < 60, result  # of 500 test images (21 and 24 when written)
    assert re.fullmatch(r"predicted: \[[\d ]+\] true: \[[\d ]+\]", lines[-1]), lines[-1]
    assert (tmp_path / "runs" / "api" / "student" / "checkpoint.npz").exists()
