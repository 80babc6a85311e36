"""The quick figures docs/usage.md quotes ("Figures the tests check"): each row's command is run
and what it prints is compared with the row, so the documents cannot go stale.  The figures were
measured under the conditions that section names; elsewhere the test skips, naming the
difference."""

import json
import re

import pytest

from nnkd.backend import get_backend
from nnkd.cli import main
from nnkd.parallel import blas_kernels, step_threads
from nnkd.train import machine_step_mode
from tests.conftest import ROOT

USAGE = ROOT / "docs" / "usage.md"
KERNELS, THREADS = "Haswell", 2  # the conditions the section names


def figure_rows():
    """``{command: [numbers]}`` of the table under "Figures the tests check"."""
    section = USAGE.read_text().split("## Figures the tests check", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("command", "---"):
            continue
        figures = re.sub(r"\(.*?\)|T=\d+|width \d+", "", cells[1])  # drop times, settings, notes
        rows[cells[0].strip("`")] = [int(n) for n in re.findall(r"\d+", figures)]
    return rows


def same_conditions():
    kernels, threads = blas_kernels(), step_threads(get_backend("numpy"))
    mode = machine_step_mode(get_backend("numpy"), threads)[0]
    if mode != "split":
        pytest.skip(f"the figures were measured in split step mode; here {mode}")
    if (kernels, threads) != (KERNELS, THREADS):
        pytest.skip(f"the figures were measured with OpenBLAS {KERNELS} kernels on {THREADS} threads; "
                    f"here {kernels} on {threads}")


def run_smoke_distill(tmp_path):
    assert main(["distill", "--preset", "smoke", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    models = json.loads((tmp_path / "d" / "results.json").read_text())["models"]
    return [models["student"]["test_errors"], models["distilled"]["test_errors"]]


def run_smoke_sweep(tmp_path):
    assert main(["sweep", "--preset", "smoke", "--widths", "64,32", "--temperatures", "2,8", "--seeds", "0",
                 "--epochs", "10", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    cells = json.loads((tmp_path / "s" / "results.json").read_text())["cells"]
    order = [(64, 2.0), (64, 8.0), (32, 2.0), (32, 8.0)]
    errors = {(c["width"], c["temperature"]): c["errors"][0] for c in cells}
    return [errors[k] for k in order]


def run_readme_api_example(tmp_path, capsys):
    from tests.test_api_example import readme_example
    exec(compile(readme_example(), "README.md", "exec"), {})
    (line,) = [l for l in capsys.readouterr().out.splitlines() if l.startswith("teacher ")]
    return [int(n) for n in re.findall(r"\d+", line)]


def run_grid_search(tmp_path, capsys):
    pytest.importorskip("sklearn")
    block = USAGE.read_text().split("## scikit-learn estimators", 1)[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    exec(compile(code, "docs/usage.md", "exec"), {})
    out = capsys.readouterr().out
    best = int(re.search(r"\{'temperature': (\d+)\}", out).group(1))
    return [best, int(re.search(r"test errors: (\d+)", out).group(1))]


RUNNERS = {  # the command of each row -> (how to run it, marks)
    "nnkd distill --preset smoke": (run_smoke_distill, []),
    "nnkd sweep --preset smoke --widths 64,32 --temperatures 2,8 --seeds 0 --epochs 10": (run_smoke_sweep, []),
    "the Python API example of the README": (run_readme_api_example, [pytest.mark.slow]),
    "the grid search [above](#scikit-learn-estimators)": (run_grid_search, [pytest.mark.slow]),
}


def test_every_row_of_the_table_has_a_runner():
    assert set(figure_rows()) == set(RUNNERS)


def test_the_table_is_read_as_written():
    rows = figure_rows()
    assert rows["nnkd distill --preset smoke"] == [697, 465]
    assert len(rows["nnkd sweep --preset smoke --widths 64,32 --temperatures 2,8 --seeds 0 --epochs 10"]) == 4


@pytest.mark.mnist
@pytest.mark.parametrize("command", [pytest.param(c, marks=m) for c, (_, m) in RUNNERS.items()])
def test_the_command_prints_the_figures_the_docs_quote(command, tmp_path, monkeypatch, capsys):
    same_conditions()
    monkeypatch.chdir(tmp_path)
    run = RUNNERS[command][0]
    got = run(tmp_path, capsys) if run.__code__.co_argcount == 2 else run(tmp_path)
    assert got == figure_rows()[command], f"{command}: prints {got}; docs/usage.md says {figure_rows()[command]}"
