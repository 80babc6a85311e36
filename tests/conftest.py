"""Shared fixtures and helpers: every backend test runs on NumPy, and on CuPy where a GPU is
usable, or on the CuPy stand-in (``tests/cupy_standin``) with ``NNKD_CUPY_STANDIN=1``;
``main_py`` runs the command line in a subprocess (always with the real CuPy, if any)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnkd.backend import get_backend
from nnkd.errors import UserError


ROOT = Path(__file__).resolve().parent.parent
# Tests never time anything: a step's mode is forced (the split over nnkd's threads, which the
# tests' bit-identity figures were made with) instead of measured (nnkd.stepmode).
os.environ.setdefault("NNKD_STEP_MODE", "split")
STANDIN = os.environ.get("NNKD_CUPY_STANDIN") == "1"
if STANDIN:  # before anything imports cupy: the stand-in is the `cupy` this process imports
    sys.path.insert(0, str(ROOT / "tests" / "cupy_standin"))


def main_py(*args, timeout=600, **kw):
    """``python main.py ARGS`` in the repository root; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


TRAINING_COMMANDS = ("distill", "train-teacher", "train-student", "sweep")


def capped(*args):
    """A training command's ``args`` with its training cut to seconds (1 epoch on 1,000
    images), for the tests that expect a refusal: if the refusal is lost, the command trains
    briefly and the test fails at once instead of at its timeout.  A flag ``args`` already
    gives is kept (argparse would take the last one), and a resume is left as it is."""
    args = list(args)
    if not args or args[0] not in TRAINING_COMMANDS or "--resume" in args:
        return args
    caps = [("--epochs", "1"), ("--train-limit", "1000")]
    if "--retrain-teacher" in args:
        caps.append(("--teacher-epochs", "1"))
    for flag, value in caps:
        if flag not in args:
            args += [flag, value]
    return args


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _cupy_or_reason():
    try:
        return get_backend("cupy"), None
    except UserError as exc:
        return None, str(exc)


_CUPY, _CUPY_REASON = _cupy_or_reason()


def pytest_report_header(config):
    if STANDIN:
        return "cupy backend: the CuPy stand-in (NumPy on the CPU, tests/cupy_standin), not a GPU"
    if _CUPY is not None:
        return f"cupy backend: {_CUPY.describe()}"
    return f"cupy backend: unavailable, CuPy cases skip ({_CUPY_REASON})"


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """NumPy, and CuPy (marked ``gpu``; skipped where no GPU is usable)."""
    if request.param == "cupy":
        if _CUPY is None:
            pytest.skip(f"CuPy backend unavailable: {_CUPY_REASON}")
        return _CUPY
    return get_backend("numpy")


@pytest.fixture
def cupy_backend():
    if _CUPY is None:
        pytest.skip(f"CuPy backend unavailable: {_CUPY_REASON}")
    return _CUPY


def gpu_available():
    """Whether a real GPU runs the CuPy cases (not the stand-in)."""
    return _CUPY is not None and not STANDIN


def host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)
