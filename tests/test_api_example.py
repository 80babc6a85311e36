"""The README's "Python API" example, run as it is written there (so the two cannot drift)."""

import re

import pytest

from tests.conftest import ROOT


def readme_example():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_api_example_distills(tmp_path, monkeypatch, capsys):
    code = readme_example().replace('"tests/data/', f'"{ROOT}/tests/data/')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    last = capsys.readouterr().out.strip().splitlines()[-1]
    teacher, student = map(int, re.findall(r"(\d+)", last)[:2])
    assert teacher < 40 and student < 60, last  # of 500 test images (21 and 24 when written)
    assert (tmp_path / "runs" / "api" / "student" / "checkpoint.npz").exists()
