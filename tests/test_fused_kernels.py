"""nnkd's ``cupy.fuse`` kernels, traced by the installed CuPy's own fusion without a GPU (the
stand-in runs their bodies with NumPy; this checks that CuPy makes one kernel of each)."""

import subprocess
import sys

import pytest

from .conftest import ROOT


def test_every_fused_kernel_traces_into_one_cupy_kernel():
    if subprocess.run([sys.executable, "-c", "import cupy"], capture_output=True, cwd="/").returncode:
        pytest.skip("CuPy is not installed here")
    r = subprocess.run([sys.executable, "-m", "tests.cupy_standin.trace_fused"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) >= 8 and all(line.endswith(("ElementwiseKernel", "ReductionKernel")) for line in lines)
