"""The checks by hand of the losses, the optimizer, max-norm and the dense layer, on every
backend: the same numbers on NumPy and, where a GPU is usable, on CuPy, whose code takes
branches of its own (the rates held in a device array, the column norms without einsum,
max-norm without the host-side shortcut)."""

import numpy as np
import pytest
import scipy.special as sp

from nnkd import losses
from nnkd.layers import Dense, Parameter
from nnkd.optim import SGD, MaxNorm

from .conftest import host


def param(backend, w, g):
    p = Parameter(backend.asarray(np.array(w, dtype=np.float64)))
    p.grad[...] = backend.asarray(np.array(g, dtype=np.float64))
    return p


def dense(backend, W, b):
    return Dense(backend.asarray(np.array(W, dtype=np.float64)), backend.asarray(np.array(b, dtype=np.float64)))


def test_sgd_paper_form_by_hand(backend):
    # dw = p*dw - (1-p)*lr*g ; w += dw, with p = 0.5, lr = 2.
    p = param(backend, [1.0, -2.0], [0.5, 1.0])
    opt = SGD([p], form="paper")
    opt.step(lr=2.0, momentum=0.5)
    np.testing.assert_allclose(host(p.data), [0.5, -3.0])
    np.testing.assert_allclose(host(opt.velocity[0]), [-0.5, -1.0])
    p.grad[...] = backend.asarray(np.array([1.0, 0.0]))
    opt.step(lr=2.0, momentum=0.5)
    np.testing.assert_allclose(host(opt.velocity[0]), [-1.25, -0.5])
    np.testing.assert_allclose(host(p.data), [-0.75, -3.5])


def test_sgd_classic_form_by_hand(backend):
    p = param(backend, [1.0], [2.0])
    opt = SGD([p], form="classic")
    opt.step(lr=0.1, momentum=0.9)       # v = -0.2, w = 0.8
    p.grad[...] = backend.asarray(np.array([1.0]))
    opt.step(lr=0.1, momentum=0.9)       # v = 0.9*-0.2 - 0.1 = -0.28, w = 0.52
    np.testing.assert_allclose(host(opt.velocity[0]), [-0.28])
    np.testing.assert_allclose(host(p.data), [0.52])


def test_sgd_new_rates_take_effect_at_the_next_step(backend):
    """Rates that change between steps (a new epoch) are used at once, each time."""
    p = param(backend, [0.0], [1.0])
    opt = SGD([p], form="classic")
    w, v = 0.0, 0.0
    for lr, mom in ((0.1, 0.5), (0.1, 0.5), (0.05, 0.9), (0.05, 0.9), (0.2, 0.0)):
        opt.step(lr=lr, momentum=mom)
        v = mom * v - lr * 1.0
        w += v
        np.testing.assert_allclose(host(p.data), [w], rtol=1e-12)
        np.testing.assert_allclose(host(opt.velocity[0]), [v], rtol=1e-12)


def test_sgd_float32_update_equals_float32_arithmetic(backend):
    rng = np.random.default_rng(0)
    w0, g = rng.standard_normal((2, 50, 40), dtype=np.float32)
    p = Parameter(backend.asarray(w0.copy()))
    p.grad[...] = backend.asarray(g)
    opt = SGD([p], form="paper")
    v, w = np.zeros_like(w0), w0.copy()
    for lr, mom in ((0.1, 0.5), (0.1, 0.5), (0.05, 0.9)):
        opt.step(lr=lr, momentum=mom)
        v = v * np.float32(mom) + g * np.float32(-(1 - mom) * lr)
        w = w + v
        assert host(p.data).dtype == np.float32
        np.testing.assert_allclose(host(opt.velocity[0]), v, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(host(p.data), w, rtol=1e-6, atol=1e-7)


def test_zero_grad_means_no_update_but_momentum_decays(backend):
    p = param(backend, [1.0], [2.0])
    opt = SGD([p], form="classic")
    opt.step(lr=0.1, momentum=0.5)       # v = -0.2, w = 0.8
    p.zero_grad()
    opt.step(lr=0.1, momentum=0.5)       # v = -0.1, w = 0.7
    np.testing.assert_allclose(host(p.data), [0.7])


def test_max_norm_by_hand(backend):
    # Columns: unit 0 has length 5 (3, 4), unit 1 has length 1 (0, 1).  Squared bound 4 -> norm 2.
    d = dense(backend, [[3.0, 0.0], [4.0, 1.0]], [10.0, 0.0])
    out = dense(backend, [[30.0], [40.0]], [0.0])
    MaxNorm(4.0, squared=True, layers="hidden").apply([d, out])
    np.testing.assert_allclose(host(d.W.data), [[1.2, 0.0], [1.6, 1.0]])
    np.testing.assert_allclose(host(d.b.data), [10.0, 0.0])         # biases neither count nor scale
    np.testing.assert_allclose(host(out.W.data), [[30.0], [40.0]])  # the output layer is free
    # Norm bound 2 on [W | b]: unit 0 = (3, 4, 10) has length sqrt(125); every layer.
    d2 = dense(backend, [[3.0], [4.0]], [10.0])
    out2 = dense(backend, [[0.0], [3.0]], [4.0])
    MaxNorm(2.0, squared=False, include_bias=True, layers="all").apply([d2, out2])
    s = 2.0 / np.sqrt(125.0)
    np.testing.assert_allclose(host(d2.W.data), [[3 * s], [4 * s]])
    np.testing.assert_allclose(host(d2.b.data), [10 * s])
    np.testing.assert_allclose(host(out2.W.data), [[0.0], [1.2]])
    np.testing.assert_allclose(host(out2.b.data), [1.6])


def test_max_norm_leaves_units_within_the_bound_alone(backend):
    W = [[1.0, 0.5], [1.0, -0.5]]  # squared lengths 2 and 0.5, under the bound 2.5
    d = dense(backend, W, [7.0, -7.0])
    m = MaxNorm(2.5, squared=True, layers="all")
    m.apply([d])
    m.apply([d])
    np.testing.assert_array_equal(host(d.W.data), W)
    np.testing.assert_array_equal(host(d.b.data), [7.0, -7.0])
    # "none" constrains nothing, even far over the bound.
    big = dense(backend, [[30.0], [40.0]], [0.0])
    MaxNorm(1.0, layers="none").apply([big, big])
    np.testing.assert_array_equal(host(big.W.data), [[30.0], [40.0]])


def test_dense_forward_backward_by_hand(backend):
    d = dense(backend, [[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], [0.5, 0.0, -1.0])
    x = backend.asarray(np.array([[1.0, 2.0], [0.0, -1.0]]))
    y = d.forward(x, True)
    np.testing.assert_allclose(host(y), [[1.5, 0.0, 5.0], [0.5, 1.0, -4.0]])
    gx = d.backward(backend.asarray(np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]])))
    np.testing.assert_allclose(host(gx), [[1.0, 3.0], [4.0, -2.0]])      # gy @ W.T
    np.testing.assert_allclose(host(d.W.grad), [[1.0, 0.0, 1.0], [2.0, -2.0, 2.0]])  # x.T @ gy
    np.testing.assert_allclose(host(d.b.grad), [1.0, 2.0, 1.0])


def test_gradients_accumulate_until_zeroed(backend):
    d = dense(backend, np.ones((2, 3)), np.zeros(3))
    x = backend.asarray(np.array([[1.0, 2.0]]))
    for _ in range(2):
        d.forward(x, True)
        d.backward(backend.asarray(np.ones((1, 3))))
    np.testing.assert_allclose(host(d.W.grad), [[2, 2, 2], [4, 4, 4]])
    np.testing.assert_allclose(host(d.b.grad), [2, 2, 2])
    d.W.zero_grad()
    np.testing.assert_allclose(host(d.W.grad), 0)


def test_log_softmax_is_stable_for_huge_logits(backend):
    z = backend.asarray(np.array([[1e4, 0.0, -1e4]], dtype=np.float32))
    out = host(losses.log_softmax(z))
    assert np.isfinite(out).all() and out[0, 0] == 0.0 and out[0, 1] == np.float32(-1e4)


def test_losses_and_gradients_by_definition(backend):
    rng = np.random.default_rng(3)
    z, t = rng.standard_normal((5, 10)), rng.standard_normal((5, 10)) * 4
    y = rng.integers(0, 10, 5)
    T, ws, wh = 20.0, 0.7, 0.3
    p = sp.softmax(t / T, axis=1)
    zd, yd, pd = backend.asarray(z), backend.asarray(y), backend.asarray(p)
    ref = ws * T * T * np.mean(-(p * sp.log_softmax(z / T, axis=1)).sum(1)) \
        + wh * np.mean(-sp.log_softmax(z, axis=1)[np.arange(5), y])
    td = backend.asarray(t)  # the teacher's logits: the loss softens them at T
    loss, g = losses.distillation_loss(zd, yd, td, T, ws, wh, report_kl=False)
    assert float(host(loss)) == pytest.approx(ref, rel=1e-12)
    # d/dz: soft term ws * T * (q_T - p) / n, hard term wh * (q_1 - onehot) / n.
    onehot = np.eye(10)[y]
    want = (ws * T * (sp.softmax(z / T, axis=1) - p) + wh * (sp.softmax(z, axis=1) - onehot)) / 5
    np.testing.assert_allclose(host(g), want, rtol=1e-10, atol=1e-14)
    kl, _ = losses.distillation_loss(zd, yd, td, T, ws, wh)
    ent = np.mean(-(p * np.log(p)).sum(1))
    assert float(host(kl)) == pytest.approx(ref - ws * T * T * ent, rel=1e-10)
    ce, gce = losses.cross_entropy(zd, yd)
    assert float(host(ce)) == pytest.approx(np.mean(sp.logsumexp(z, axis=1) - z[np.arange(5), y]), rel=1e-12)
    np.testing.assert_allclose(host(gce), (sp.softmax(z, axis=1) - onehot) / 5, rtol=1e-10, atol=1e-14)


def test_loss_defaults_and_temperatures(backend):
    """T = 1 and T = 2 alike; left out, T is 1, the soft weight 1 and the hard weight 0."""
    rng = np.random.default_rng(4)
    z, t = rng.standard_normal((6, 10)) * 3, rng.standard_normal((6, 10))
    y = rng.integers(0, 10, 6)
    p = sp.softmax(t, axis=1)
    zd, yd, pd = backend.asarray(z), backend.asarray(y), backend.asarray(p)
    for T in (1.0, 2.0):
        np.testing.assert_allclose(host(losses.log_softmax(zd, T)), sp.log_softmax(z / T, axis=1), rtol=1e-12)
        np.testing.assert_allclose(host(losses.softmax(zd, T)), sp.softmax(z / T, axis=1), rtol=1e-12)
    np.testing.assert_allclose(host(losses.log_softmax(zd)), sp.log_softmax(z, axis=1), rtol=1e-12)
    np.testing.assert_allclose(host(losses.softmax(zd)), sp.softmax(z, axis=1), rtol=1e-12)
    soft_ce = np.mean(-(p * sp.log_softmax(z, axis=1)).sum(1))
    assert float(host(losses.soft_cross_entropy(zd, pd)[0])) == pytest.approx(soft_ce, rel=1e-12)
    soft_ce_T2 = np.mean(-(p * sp.log_softmax(z / 2, axis=1)).sum(1))
    # Teacher logits 2 t give the targets p at T = 2.
    loss, _ = losses.distillation_loss(zd, yd, backend.asarray(2 * t), 2.0, report_kl=False)
    assert float(host(loss)) == pytest.approx(4 * soft_ce_T2, rel=1e-12)


def test_entropy_counts_zero_probabilities_as_zero(backend):
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    assert float(host(losses.entropy(backend.asarray(p)))) == pytest.approx(np.log(2) / 2, rel=1e-12)
    # One-hot soft targets: the KL the loss reports is the hard cross-entropy, finite.
    z = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    with np.errstate(divide="ignore"):
        one_hot_logits = np.log(np.eye(3)[[0, 1]])  # 0 and -inf: softmax gives exact zeros
    kl, _ = losses.distillation_loss(backend.asarray(z), None, backend.asarray(one_hot_logits), 1.0)
    assert float(host(kl)) == pytest.approx(-np.mean(sp.log_softmax(z, axis=1)[[0, 1], [0, 1]]), rel=1e-12)


def test_sgd_form_defaults_to_the_papers_and_refuses_unknown_ones(backend):
    p = param(backend, [1.0, -2.0], [0.5, 1.0])
    opt = SGD([p])
    assert opt.form == "paper"
    opt.step(lr=2.0, momentum=0.5)
    np.testing.assert_allclose(host(p.data), [0.5, -3.0])  # the paper form's step, as above
    with pytest.raises(ValueError, match=r"^momentum form must be one of \('paper', 'classic'\), got 'heavy'$"):
        SGD([p], form="heavy")


def test_max_norm_defaults_constrain_every_hidden_layer(backend):
    """By default: squared length 15 on the units of every hidden layer, not the output's."""
    m = MaxNorm()
    assert m.norm_bound == pytest.approx(np.sqrt(15.0)) and m.layers == "hidden" and not m.include_bias
    layers = [dense(backend, [[4.0], [0.0]], [0.0]), dense(backend, [[0.0], [5.0]], [0.0]),
              dense(backend, [[6.0], [0.0]], [0.0])]
    m.apply(layers)
    s = np.sqrt(15.0)
    np.testing.assert_allclose(host(layers[0].W.data), [[s], [0.0]])
    np.testing.assert_allclose(host(layers[1].W.data), [[0.0], [s]])
    np.testing.assert_allclose(host(layers[2].W.data), [[6.0], [0.0]])


def test_max_norm_refuses_bad_settings():
    for kw, message in ((dict(bound=0.0), r"^max-norm bound must be positive, got 0.0$"),
                        (dict(layers="first"), r"^max-norm layers must be one of \('hidden', 'all', 'none'\), "
                                               r"got 'first'$")):
        with pytest.raises(ValueError, match=message):
            MaxNorm(**kw)


@pytest.mark.parametrize("bound", [1.0, 15.0])
def test_max_norm_rescales_every_unit_over_the_bound(backend, bound):
    """Just over the bound, in the second hidden layer when the first is within it, for a
    bound below 2 and above it (where its square and its double differ)."""
    over = 1.5 * bound  # the squared length of the unit over the bound
    within = dense(backend, [[np.sqrt(bound / 2)], [0.0]], [0.0])
    beyond = dense(backend, [[0.0], [np.sqrt(over)]], [0.0])
    output = dense(backend, [[9.0], [9.0]], [0.0])
    MaxNorm(bound, squared=True).apply([within, beyond, output])
    np.testing.assert_allclose(host(within.W.data), [[np.sqrt(bound / 2)], [0.0]])
    np.testing.assert_allclose(host(beyond.W.data), [[0.0], [np.sqrt(bound)]])
    MaxNorm(over * 1.1, squared=True).apply([beyond, output])  # within a looser bound: unchanged
    np.testing.assert_allclose(host(beyond.W.data), [[0.0], [np.sqrt(bound)]])


def test_dense_init_draws_the_papers_weights(backend):
    d = Dense.init(300, 200, backend, np.random.default_rng(0))
    W, b = host(d.W.data), host(d.b.data)
    assert W.dtype == b.dtype == np.float32 and W.shape == (300, 200) and b.shape == (200,)
    assert abs(W.std() - 0.01) < 2e-4 and abs(W.mean()) < 2e-4 and not b.any()


class NoDraws:
    def __getattr__(self, name):
        raise AssertionError(f"a draw ({name}) from the dropout generator")


def test_dropout_is_the_identity_in_evaluation_and_at_rate_zero(backend):
    from nnkd.layers import Dropout
    x = np.random.default_rng(0).random((8, 6), dtype=np.float32)
    for rate, train in ((0.5, False), (0.0, True), (0.0, False)):
        d = Dropout(rate)
        d.rng = NoDraws()
        xd = backend.asarray(x.copy())
        np.testing.assert_array_equal(host(d.forward(xd, train)), x)
        g = backend.asarray(np.ones((8, 6), np.float32))
        np.testing.assert_array_equal(host(d.backward(g)), 1.0)
    for rate in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=rf"^dropout rate must be in \[0, 1\), got {rate}$"):
            Dropout(rate)
