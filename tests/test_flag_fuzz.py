"""Every value-taking flag of every command, crossed with values a user might type by mistake:
exit 0 or 2, one ``error:`` line on 2, never a traceback, and no run folder on exit 2.

The commands run in this process with ``--dry-run`` (parse, build the run spec, load the
data and the teacher, validate; nothing is trained or written), so the whole cross runs in
seconds.  A few cases also go through ``python main.py`` to see the real exit status.
"""

import argparse

import pytest

from nnkd import cli
from tests.conftest import capped, error_lines, main_py

pytestmark = pytest.mark.mnist

VALUES = ["nan", "inf", "-inf", "-1", "0", "1e30", str(10**30), "abc", ""]
TRAINING = ("distill", "train-teacher", "train-student", "sweep")
# Flags whose value is a path or a folder: crossed with the values too, but the output
# folder is always given.
SKIP = {"--out", "--help"}


def value_flags(command):
    """The options of ``command`` that take a value."""
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(opt for action in sub.choices[command]._actions for opt in action.option_strings
                  if opt.startswith("--") and opt not in SKIP and action.nargs != 0)


CASES = [(cmd, flag, value) for cmd in TRAINING for flag in value_flags(cmd) for value in VALUES]


@pytest.fixture(scope="module", autouse=True)
def cached_data():
    """Load MNIST once for all cases (each case would otherwise verify the cache again)."""
    from nnkd import data
    real = data.load
    memo = {}

    def load(name="mnist", *args, **kw):
        if name not in memo:
            memo[name] = real(name, *args, **kw)
        return memo[name]
    mp = pytest.MonkeyPatch()
    mp.setattr(data, "load", load)
    yield
    mp.undo()


@pytest.mark.parametrize("command,flag,value", CASES, ids=[f"{c} {f} {v!r}" for c, f, v in CASES])
def test_flag_value_is_refused_in_one_line_or_accepted(command, flag, value, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [command, flag, value, "--out", str(out), "--dry-run"]
    if command == "sweep":
        argv += ["--widths", "30"] if flag != "--widths" else []
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse refuses the value itself
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        assert len(error_lines(err)) == 1, err
    assert not out.exists(), "a dry run or a refused command writes no run folder"


def test_case_count():
    """The cross is as large as the commands' flags say (so a new flag is fuzzed too)."""
    assert len(CASES) == len(VALUES) * sum(len(value_flags(c)) for c in TRAINING)
    assert len(CASES) > 600


@pytest.mark.parametrize("args", [
    ["train-teacher", "--lr-schedule", "exp", "--lr-decay", "-1"],
    ["train-student", "--seed", "-1"],
    ["train-student", "--init-std", "-1"],
    ["distill", "--transfer-jitter", "50"],
    ["train-teacher", "--jitter", "100"],
    ["train-student", "--arch", "784-99999999999-10"],
    ["train-student", "--max-norm-on", "bogus"],
    ["train-student", "--max-norm-bias", "maybe"],
    ["distill", "--temperature", "inf"],
    ["distill", "--soft-weight", "nan"],
    ["train-student", "--init-std", "inf"],
    ["train-student", "--init-std", "0"],
    ["train-student", "--max-norm", "nan"],
], ids=lambda a: " ".join(a))
def test_issue_examples_exit_2_before_anything_is_written(args, tmp_path):
    out = tmp_path / "run"
    r = main_py(*capped(*args, "--out", str(out)))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(error_lines(r.stderr)) == 1, r.stderr
    assert not out.exists()


def test_memory_estimate_is_in_the_message(tmp_path):
    r = main_py(*capped("train-student", "--arch", "784-99999999999-10", "--out", str(tmp_path / "run")))
    (line,) = error_lines(r.stderr)
    assert "--arch" in line and "TiB" in line and "available" in line, line
