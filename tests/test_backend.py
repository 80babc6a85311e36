"""The backend module: NumPy always, CuPy when usable, one clear sentence when not."""

import subprocess
import sys
import types

import numpy as np
import pytest

from nnkd.backend import array_module, get_backend
from nnkd.layers import Dropout
from nnkd.errors import UserError

from .conftest import ROOT, gpu_available, host


def test_numpy_backend_basics():
    be = get_backend("numpy")
    assert be.xp is np and not be.is_gpu
    a = be.asarray([1, 2, 3], dtype=np.float32)
    assert array_module(a) is np and host(a).dtype == np.float32
    assert be.rng([1, 2]).random() == np.random.default_rng([1, 2]).random()
    be.synchronize()


def test_unknown_backend():
    with pytest.raises(UserError, match="unknown backend 'torch'"):
        get_backend("torch")


def test_cupy_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(UserError) as e:
        get_backend("cupy")
    msg = str(e.value)
    assert "not installed" in msg and "pip install" in msg and "`backend` numpy" in msg
    assert "\n" not in msg


def test_cupy_without_usable_device(monkeypatch):
    """What the CuPy wheels do on a machine without a GPU driver."""
    class CUDARuntimeError(RuntimeError):
        pass

    def device_count():
        raise CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient "
                               "for CUDA runtime version")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=device_count))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(UserError) as e:
        get_backend("cupy")
    msg = str(e.value)
    assert "cudaErrorInsufficientDriver" in msg and "`backend` numpy" in msg and "\n" not in msg


@pytest.mark.skipif(gpu_available(), reason="this machine has a usable GPU")
def test_real_cupy_if_installed_fails_clearly():
    """With the real CuPy wheels and no GPU (this project's CI installs them); in a fresh process,
    where ``cupy`` is the real package even when these tests run on the stand-in."""
    if subprocess.run([sys.executable, "-c", "import cupy"], capture_output=True).returncode:
        pytest.skip("CuPy is not installed here")
    r = subprocess.run([sys.executable, "-c", "from nnkd.backend import get_backend; get_backend('cupy')"],
                       cwd=ROOT, capture_output=True, text=True)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0 and "UserError" in last and "no usable CUDA GPU" in last, r.stderr


def test_dropout_mask_rate_and_scale(backend):
    layer = Dropout(0.2)
    layer.rng = backend.rng(0)
    m = host(layer.forward(backend.xp.ones((200, 500), dtype=np.float32), train=True))
    assert set(np.unique(m)) == {0.0, np.float32(1 / 0.8)}
    assert (m > 0).mean() == pytest.approx(0.8, abs=0.01)
    assert m.dtype == np.float32


def test_flush_subnormals_inside_the_block_only():
    from nnkd.backend import flush_subnormals
    tiny = np.array([1e-39], np.float32)  # subnormal in float32
    assert (tiny * np.float32(2))[0] != 0
    with flush_subnormals() as done:
        inside = (tiny * np.float32(2))[0]
        product = (np.array([1e-20], np.float32) * np.array([1e-20], np.float32))[0]
    after = (tiny * np.float32(2))[0]
    if not done:
        pytest.skip("flushing subnormals is only done on x86-64 Linux")
    assert inside == 0 and product == 0       # subnormal operands and results are zero inside
    assert after == np.float32(2e-39)         # and the thread's mode is restored after
