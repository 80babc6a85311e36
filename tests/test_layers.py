"""Layers and networks: shapes, dtypes, dropout behaviour, buffers, state round trip."""

import numpy as np
import pytest

from nnkd.errors import UserError
from nnkd.network import Network, parse_arch

from .conftest import host


def test_parse_arch():
    assert parse_arch("784-1200-1200-10", 784, 10) == [784, 1200, 1200, 10]
    for bad in ("784-abc-10", "784", "784--10", "784-0-10"):
        with pytest.raises(UserError, match="malformed"):
            parse_arch(bad)
    with pytest.raises(UserError, match="starts with 700"):
        parse_arch("700-10", 784, 10)
    with pytest.raises(UserError, match="ends with 9"):
        parse_arch("784-9", 784, 10)


def test_teacher_layout_and_params(backend):
    net = Network([784, 1200, 1200, 10], backend, dropout_input=0.2, dropout_hidden=0.5)
    kinds = [type(l).__name__ for l in net.layers]
    assert kinds == ["Dropout", "Dense", "ReLU", "Dropout", "Dense", "ReLU", "Dropout", "Dense"]
    assert net.n_params() == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10
    W0 = host(net.dense[0].W.data)
    assert W0.dtype == np.float32 and abs(W0.std() - 0.01) < 2e-4


def test_dropout_is_identity_in_evaluation_and_scaled_in_training(backend):
    xp = backend.xp
    net = Network([50, 40, 10], backend, dropout_input=0.5, dropout_hidden=0.5)
    net.set_rng(backend.rng(0))
    x = xp.asarray(np.random.default_rng(0).random((64, 50), dtype=np.float32))
    z1 = host(net.forward(x.copy(), train=False))
    z2 = host(net.forward(x.copy(), train=False))
    np.testing.assert_array_equal(z1, z2)
    xin = x.copy()
    net.forward(xin, train=True)
    kept = host(xin) != 0
    assert 0.4 < kept.mean() < 0.6
    np.testing.assert_allclose(host(xin)[kept], 2 * host(x)[kept], rtol=1e-6)


def test_float32_end_to_end(backend):
    net = Network([20, 16, 10], backend, dropout_hidden=0.5)
    net.set_rng(backend.rng(0))
    x = backend.xp.ones((8, 20), dtype=np.float32)
    z = net.forward(x, train=True)
    assert z.dtype == np.float32
    from nnkd import losses
    loss, g = losses.distillation_loss(z, backend.xp.zeros(8, dtype=np.int64),
                                       z, 20.0, 1.0, 0.1)
    assert g.dtype == np.float32
    net.zero_grad()
    net.backward(g)
    assert all(p.grad.dtype == np.float32 for _, p in net.params)


def test_steady_state_reuses_buffers():
    from nnkd.backend import get_backend
    net = Network([30, 20, 10], get_backend(), dropout_hidden=0.5)
    net.set_rng(np.random.default_rng(0))
    x = np.ones((5, 30), dtype=np.float32)
    z1 = net.forward(x.copy(), train=True)
    z2 = net.forward(x.copy(), train=True)
    assert z1 is z2  # the same output buffer, no new allocation


def test_state_round_trip(backend):
    a = Network([20, 16, 10], backend, seed=1)
    b = Network([20, 16, 10], backend, seed=2)
    b.load_state(a.state())
    for (_, p), (_, q) in zip(a.params, b.params):
        np.testing.assert_array_equal(host(p.data), host(q.data))


def test_uniform_init_is_pytorchs_linear_default(backend):
    net = Network([784, 1200, 10], backend, init="uniform", seed=3)
    for dense, fan_in in zip(net.dense, (784, 1200)):
        bound = 1 / np.sqrt(fan_in)
        W, b = host(dense.W.data), host(dense.b.data)
        for a in (W, b):
            assert a.dtype == np.float32 and np.abs(a).max() <= bound and np.abs(a).max() > 0.5 * bound
        assert abs(W.std() - bound / np.sqrt(3)) < 0.01 * bound  # U(-c, c) has std c / sqrt(3)
    again = Network([784, 1200, 10], backend, init="uniform", seed=3)
    np.testing.assert_array_equal(host(again.dense[1].b.data), host(net.dense[1].b.data))
    with pytest.raises(ValueError) as e:
        Network([4, 2], backend, init="he")
    assert str(e.value) == "init scheme must be one of normal, uniform, got 'he'"


def test_centered_inputs_are_two_x_minus_one_before_input_dropout(backend):
    xp = backend.xp
    net = Network([50, 40, 10], backend, dropout_input=0.5, inputs="centered")
    assert [type(l).__name__ for l in net.layers][:3] == ["Centre", "Dropout", "Dense"]
    x = xp.asarray(np.random.default_rng(0).random((64, 50), dtype=np.float32))
    kept = x.copy()
    net.set_rng(backend.rng(0))
    net.forward(kept, train=True)
    np.testing.assert_array_equal(host(kept), host(x))  # the caller's array is left as it was
    centred = host(net.dropouts[0].mask) * (2 * host(x) - 1)  # dropped pixels are 0: mid-grey
    np.testing.assert_allclose(host(net.dense[0].x), centred, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError) as e:
        Network([4, 2], backend, inputs="signed")
    assert str(e.value) == "inputs must be one of unit, centered, got 'signed'"


def test_a_centered_network_is_a_unit_network_with_its_first_layer_folded(backend):
    """(2x - 1) @ W0 + b0 == x @ (2 W0) + (b0 - sum of W0's rows), in evaluation (float64)."""
    xp = backend.xp
    centered = Network([30, 20, 10], backend, init="uniform", inputs="centered", dtype=np.float64)
    unit = Network([30, 20, 10], backend, init="uniform", dtype=np.float64)
    state = {k: host(v) for k, v in centered.state().items()}
    state["b0"] = state["b0"] - state["W0"].sum(axis=0)
    state["W0"] = 2 * state["W0"]
    unit.load_state({k: xp.asarray(v) for k, v in state.items()})
    x = xp.asarray(np.random.default_rng(1).random((16, 30)))
    np.testing.assert_allclose(host(centered.forward(x, train=False)), host(unit.forward(x, train=False)),
                               rtol=1e-12, atol=1e-12)


def test_centre_passes_gradients_back_doubled():
    from nnkd.layers import Centre
    gy = np.array([[1.0, -2.0], [0.5, 0.0]])
    np.testing.assert_array_equal(Centre().backward(gy.copy()), 2 * gy)
