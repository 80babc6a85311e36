"""The optional Numba kernels (nnkd.cpu_kernels) give bit for bit the NumPy passes' results:
the momentum update, and max-norm's column norms computed on the way."""

import numpy as np
import pytest

from nnkd import cpu_kernels
from nnkd.backend import get_backend
from nnkd.network import Network
from nnkd.optim import MaxNorm
from nnkd.parallel import SERIAL, cpu_workers
from nnkd.presets import preset
from nnkd.train import Step

pytestmark = pytest.mark.skipif(not cpu_kernels._INSTALLED, reason="Numba is not installed")


def _train(monkeypatch, numba, workers, form, bound):
    monkeypatch.setenv("NNKD_NUMBA", "1" if numba else "0")
    be = get_backend("numpy")
    cfg = preset("fast")[0]["teacher"]
    cfg = cfg.__class__(**{**cfg.__dict__, "arch": "784-256-256-10", "momentum_form": form,
                           "max_norm": bound})
    rng = np.random.default_rng(0)
    X = rng.random((1000, 784), dtype=np.float32)
    Y = rng.integers(0, 10, 1000)
    net = Network.from_settings(cfg, be)
    step = Step(cfg, net, workers=workers)
    net.set_rng(be.rng(0))
    host = np.random.default_rng(1)
    for i in range(12):
        step(X, Y, np.arange(i * 100, i * 100 + 100) % 1000, 0.5, 0.9, host)
    return [p.data.copy() for _, p in net.params] + [v.copy() for v in step.opt.velocity]


@pytest.mark.parametrize("form, bound", [("classic", 15.0), ("paper", 0.05)])  # 0.05: units rescaled
@pytest.mark.parametrize("threads", [1, 2])
def test_numba_steps_equal_numpy_steps_bit_for_bit(monkeypatch, form, bound, threads):
    with cpu_workers(get_backend("numpy"), n=threads) as w:
        numba_run = _train(monkeypatch, True, w, form, bound)
        numpy_run = _train(monkeypatch, False, w, form, bound)
    for a, b in zip(numba_run, numpy_run):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_max_norm_binds_in_the_bit_identity_test():
    W = np.random.default_rng(0).standard_normal((784, 256)).astype(np.float32) * 0.01
    assert (W * W).sum(axis=0).max() > 0.05  # so bound 0.05 rescales units from the first step


def test_the_update_writes_the_norms_einsum_would(monkeypatch):
    rng = np.random.default_rng(2)
    w, v, g = (rng.standard_normal((300, 200)).astype(np.float32) for _ in range(3))
    norms = np.empty(200, np.float32)
    w2, v2 = w.copy(), v.copy()
    cpu_kernels.sgd_update(w2, v2, g, np.float32(-0.1), np.float32(0.9), slice(None), norms)
    s = g * np.float32(-0.1)
    v *= np.float32(0.9)
    v += s
    w += v
    assert np.array_equal(w, w2) and np.array_equal(v, v2)
    assert np.array_equal(norms, np.einsum("ij,ij->j", w, w))


def test_numba_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("NNKD_NUMBA", "0")
    assert not cpu_kernels.available()
    monkeypatch.setenv("NNKD_NUMBA", "1")
    assert cpu_kernels.available()


def test_max_norm_skips_norms_the_update_wrote():
    be = get_backend("numpy")
    net = Network([20, 30, 10], be, seed=0)
    m = MaxNorm(bound=1e-6)
    buffers = m.sq_norm_buffers(net.dense)
    assert list(buffers) == [net.dense[0].W]
    buffers[net.dense[0].W][...] = 0  # "already computed": nothing over the bound
    before = net.dense[0].W.data.copy()
    m.apply(net.dense, sq_norms_ready={net.dense[0].W})
    assert np.array_equal(net.dense[0].W.data, before)
    m.apply(net.dense)
    assert not np.array_equal(net.dense[0].W.data, before)
