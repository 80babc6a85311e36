"""The adversarial pass of benchmarks/adversarial.py (165 cases over the seams between features:
ONNX teachers, logits files, resume, Adam, npz data, the Python API, signals, the environment,
the command line's surface): every case holds."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_every_case_of_the_adversarial_pass_holds():
    r = subprocess.run([sys.executable, "benchmarks/adversarial.py"], cwd=ROOT, capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, "\n".join(line for line in r.stdout.splitlines() if not line.startswith("ok"))
    assert "| all | 165 | 165 |" in r.stdout
