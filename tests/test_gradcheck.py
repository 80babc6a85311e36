"""Gradients against finite differences (float64), forward passes against SciPy, and one
optimizer and one max-norm step against numbers worked out by hand."""

import numpy as np
import pytest
import scipy.special as sp

from nnkd import losses
from nnkd.gradcheck import check, standard_checks
from nnkd.layers import Dense, Parameter
from nnkd.backend import get_backend
from nnkd.optim import SGD, Adam, MaxNorm
from nnkd.schedules import learning_rate, momentum_at

from .conftest import gpu_available, host, main_py



def test_standard_checks_pass(backend):
    results = standard_checks(backend)
    names = {r.name for r in results}
    for expected in ("Dense input", "Dense weights", "Dense bias", "ReLU", "Dropout (frozen mask)",
                     "cross_entropy (hard)", "soft_cross_entropy T=1", "soft_cross_entropy T=4",
                     "soft_cross_entropy T=20", "distillation T=20", "log_softmax T=4",
                     "cross_entropy label smoothing 0.1", "distillation T=4 label smoothing 0.1"):
        assert expected in names
    assert sum("teacher-shaped" in n for n in names) == 6
    assert sum("student-shaped" in n for n in names) == 6
    failed = [r.details for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert max(r.max_rel_error for r in results) <= 1e-6


def test_checker_catches_a_planted_error():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 10))
    y = np.array([1, 2, 3])
    _, g = losses.cross_entropy(z, y)
    wrong = g.copy()
    wrong[1, 4] += 1e-3
    good = check("hard CE", lambda: float(losses.cross_entropy(z, y)[0]), z, g)
    bad = check("hard CE planted", lambda: float(losses.cross_entropy(z, y)[0]), z, wrong)
    assert good.passed and not bad.passed
    assert "analytic" in bad.details and "numeric" in bad.details and "(1, 4)" in bad.details


def test_checker_catches_a_planted_error_along_directions():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((30, 20))
    r = rng.standard_normal((30, 20))
    f = lambda: float((r * W ** 2).sum())  # noqa: E731
    assert check("quad", f, W, 2 * r * W).passed
    assert not check("quad planted", f, W, 2 * r * W * 1.001).passed


@pytest.mark.parametrize("T", [1.0, 2.5, 20.0])
def test_forward_matches_scipy(backend, T):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((7, 10)) * 30
    zd = backend.asarray(z)
    np.testing.assert_allclose(host(losses.log_softmax(zd, T)), sp.log_softmax(z / T, axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(losses.softmax(zd, T)), sp.softmax(z / T, axis=1), rtol=1e-12, atol=1e-15)
    y = rng.integers(0, 10, 7)
    loss, _ = losses.cross_entropy(zd, backend.asarray(y))
    ref = np.mean(sp.logsumexp(z, axis=1) - z[np.arange(7), y])
    assert float(host(loss)) == pytest.approx(ref, rel=1e-12)


def test_log_softmax_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4]], dtype=np.float32)
    out = losses.log_softmax(z)
    assert np.isfinite(out).all() and out[0, 0] == 0.0


def test_distillation_objective_by_definition():
    rng = np.random.default_rng(3)
    z, t = rng.standard_normal((5, 10)), rng.standard_normal((5, 10)) * 4
    y = rng.integers(0, 10, 5)
    T, ws, wh = 20.0, 0.7, 0.3
    p = sp.softmax(t / T, axis=1)
    ref = ws * T * T * np.mean(-(p * sp.log_softmax(z / T, axis=1)).sum(1)) \
        + wh * np.mean(-sp.log_softmax(z, axis=1)[np.arange(5), y])
    loss, _ = losses.distillation_loss(z, y, t, T, ws, wh, report_kl=False)
    assert float(loss) == pytest.approx(ref, rel=1e-12)
    # The reported KL form differs by exactly the targets' entropy, times T^2 and the weight.
    kl, _ = losses.distillation_loss(z, y, t, T, ws, wh)
    ent = np.mean(-(p * np.log(p)).sum(1))
    assert float(kl) == pytest.approx(ref - ws * T * T * ent, rel=1e-10)
    # No hidden class average: the soft term scales with the sum over the 10 classes.
    assert float(losses.soft_cross_entropy(z, p, T)[0]) == pytest.approx(
        np.mean(-(p * sp.log_softmax(z / T, axis=1)).sum(1)), rel=1e-12)


def _one_param(w, g):
    p = Parameter(np.array(w, dtype=np.float64))
    p.grad[...] = g
    return p


def test_sgd_paper_form_by_hand():
    # dw = p*dw - (1-p)*lr*g ; w += dw, with p = 0.5, lr = 2: dw1 = -g, dw2 = 0.5*dw1 - g2.
    p = _one_param([1.0, -2.0], [0.5, 1.0])
    opt = SGD([p], form="paper")
    opt.step(lr=2.0, momentum=0.5)
    np.testing.assert_allclose(p.data, [0.5, -3.0])
    np.testing.assert_allclose(opt.velocity[0], [-0.5, -1.0])
    p.grad[...] = [1.0, 0.0]
    opt.step(lr=2.0, momentum=0.5)
    # dw = 0.5*[-0.5, -1] - 0.5*2*[1, 0] = [-1.25, -0.5]
    np.testing.assert_allclose(opt.velocity[0], [-1.25, -0.5])
    np.testing.assert_allclose(p.data, [-0.75, -3.5])


def test_sgd_classic_form_by_hand():
    p = _one_param([1.0], [2.0])
    opt = SGD([p], form="classic")
    opt.step(lr=0.1, momentum=0.9)       # v = -0.2, w = 0.8
    p.grad[...] = [1.0]
    opt.step(lr=0.1, momentum=0.9)       # v = 0.9*-0.2 - 0.1 = -0.28, w = 0.52
    np.testing.assert_allclose(p.data, [0.52])


def test_sgd_rates_live_in_one_array_rewritten_when_they_change():
    """What a CUDA-graph step needs: the rates are read from one array, updated in
    place; on float32 the update is bit for bit the one with the rates as float32 scalars."""
    from nnkd.layers import Parameter
    rng = np.random.default_rng(0)
    w0, g = rng.standard_normal((2, 50, 40), dtype=np.float32)
    p = Parameter(w0.copy())
    p.grad[...] = g
    opt = SGD([p], form="paper")
    v, w, rates = np.zeros_like(w0), w0.copy(), None
    for lr, mom in ((0.1, 0.5), (0.1, 0.5), (0.05, 0.9)):
        opt.step(lr=lr, momentum=mom)
        rates = opt._rates if rates is None else rates
        v = v * np.float32(mom) + g * np.float32(-(1 - mom) * lr)
        w = w + v
        assert np.array_equal(opt.velocity[0], v) and np.array_equal(p.data, w)
    assert opt._rates is rates and rates.dtype == np.float32
    np.testing.assert_array_equal(rates, np.array([-(1 - 0.9) * 0.05, 0.9], dtype=np.float32))


def test_adam_by_hand():
    # Step 1: m = 0.1 g, v = 0.001 g^2, so m / (1 - b1) = g and v / (1 - b2) = g^2: w -= lr * g / |g|.
    # Step 2 with the same g: m = 0.19 g and 1 - b1^2 = 0.19, v = 0.001999 g^2 and 1 - b2^2 = 0.001999.
    p = _one_param([1.0, 2.0], [0.5, -1.0])
    opt = Adam([p], beta2=0.999, eps=0.0)
    opt.step(lr=0.1, momentum=0.9)
    np.testing.assert_allclose(p.data, [0.9, 2.1], rtol=1e-12)
    np.testing.assert_allclose(opt.slots["adam_m"][0], [0.05, -0.1], rtol=1e-12)
    np.testing.assert_allclose(opt.slots["adam_v"][0], [0.00025, 0.001], rtol=1e-12)
    opt.step(lr=0.1, momentum=0.9)
    np.testing.assert_allclose(p.data, [0.8, 2.2], rtol=1e-12)
    assert opt.scalars == {"adam_steps": 2.0, "adam_beta1_power": pytest.approx(0.81, rel=1e-15)}


def test_adam_on_a_float64_network_matches_a_reference_adam():
    """Adam over the network's own float64 gradients (checked by finite differences
    elsewhere) equals a textbook Adam written here, over several steps of changing data."""
    from nnkd import losses
    from nnkd.network import Network
    be = get_backend("numpy")
    rng = np.random.default_rng(0)
    net = Network([6, 5, 3], be, seed=1, init_std=0.5, dtype=np.float64)
    params = [p for _, p in net.params]
    opt = Adam(params, beta2=0.99)
    ref_w = [p.data.copy() for p in params]
    m = [np.zeros_like(w) for w in ref_w]
    v = [np.zeros_like(w) for w in ref_w]
    for t in range(1, 6):
        x, y = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
        net.zero_grad()
        net.backward(losses.cross_entropy(net.forward(x, train=True), y)[1])
        grads = [p.grad.copy() for p in params]
        opt.step(lr=0.01, momentum=0.8)
        for i, g in enumerate(grads):
            m[i] = 0.8 * m[i] + 0.2 * g
            v[i] = 0.99 * v[i] + 0.01 * g * g
            ref_w[i] = ref_w[i] - 0.01 * (m[i] / (1 - 0.8 ** t)) / (np.sqrt(v[i] / (1 - 0.99 ** t)) + 1e-8)
        for p, w in zip(params, ref_w):
            np.testing.assert_allclose(p.data, w, rtol=1e-12, atol=1e-15)


def test_every_optimizer_is_named_once_and_built_from_settings():
    from nnkd.config import TrainConfig
    from nnkd.optim import OPTIMIZERS, make_optimizer
    p = _one_param([1.0], [1.0])
    for name, cls in OPTIMIZERS.items():
        assert type(make_optimizer(name, [p], TrainConfig(optimizer=name))) is cls
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("lbfgs", [p], TrainConfig())


def test_zero_grad_means_no_update_but_momentum_decays():
    p = _one_param([1.0], [2.0])
    opt = SGD([p], form="classic")
    opt.step(lr=0.1, momentum=0.5)       # v = -0.2, w = 0.8
    p.zero_grad()
    opt.step(lr=0.1, momentum=0.5)       # v = -0.1, w = 0.7
    np.testing.assert_allclose(p.data, [0.7])


def test_gradients_accumulate_until_zeroed():
    be = __import__("nnkd.backend", fromlist=["x"]).get_backend()
    d = Dense(np.ones((2, 3)), np.zeros(3))
    x = np.array([[1.0, 2.0]])
    d.forward(x, True)
    d.backward(np.ones((1, 3)))
    d.forward(x, True)
    d.backward(np.ones((1, 3)))
    np.testing.assert_allclose(d.W.grad, [[2, 2, 2], [4, 4, 4]])
    d.W.zero_grad()
    np.testing.assert_allclose(d.W.grad, 0)
    assert be.name == "numpy"


def test_max_norm_by_hand():
    # Columns: unit 0 has length 5 (3, 4), unit 1 has length 1 (0, 1).  Squared bound 4 -> norm 2.
    d = Dense(np.array([[3.0, 0.0], [4.0, 1.0]]), np.array([10.0, 0.0]))
    out = Dense(np.array([[30.0], [40.0]]), np.array([0.0]))
    MaxNorm(4.0, squared=True, layers="hidden").apply([d, out])
    np.testing.assert_allclose(d.W.data, [[1.2, 0.0], [1.6, 1.0]])
    np.testing.assert_allclose(d.b.data, [10.0, 0.0])          # biases do not count, are not scaled
    np.testing.assert_allclose(out.W.data, [[30.0], [40.0]])   # the output layer is not constrained
    # Norm bound 2 on [W | b]: unit 0 = (3, 4, 10) has length sqrt(125).
    d2 = Dense(np.array([[3.0], [4.0]]), np.array([10.0]))
    MaxNorm(2.0, squared=False, include_bias=True, layers="all").apply([d2])
    s = 2.0 / np.sqrt(125.0)
    np.testing.assert_allclose(d2.W.data, [[3 * s], [4 * s]])
    np.testing.assert_allclose(d2.b.data, [10 * s])


def test_schedules():
    assert learning_rate(0, 10.0, "exp", 0.998) == 10.0
    assert learning_rate(2, 10.0, "exp", 0.998) == pytest.approx(10 * 0.998 ** 2)
    assert learning_rate(50, 0.1, "cosine", epochs=100) == pytest.approx(0.05)
    assert momentum_at(0) == 0.5 and momentum_at(250) == pytest.approx(0.745)
    assert momentum_at(500) == 0.99 and momentum_at(2000) == 0.99


def test_gradcheck_command_prints_table():
    r = main_py("gradcheck")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "28 passed, 0 failed" in r.stdout and "teacher-shaped" in r.stdout


@pytest.mark.skipif(gpu_available(), reason="this machine has a usable GPU")
def test_gradcheck_cupy_without_gpu_is_one_clear_line():
    r = main_py("gradcheck", "--backend", "cupy")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "cupy" in lines[0].lower()
    assert "Traceback" not in r.stderr
    assert "--backend numpy" in lines[0]


def test_adam_state_round_trip_and_its_beta2():
    """A resumed Adam continues exactly: its slots and its step count come back from the state."""
    p, q = _one_param([1.0, 2.0], [0.5, -1.0]), _one_param([1.0, 2.0], [0.5, -1.0])
    opt = Adam([p])
    assert opt.beta2 == 0.999
    opt.step(lr=0.1, momentum=0.9)
    opt.step(lr=0.1, momentum=0.9)
    q.data[...] = p.data
    again = Adam([q])
    again.load_state(opt.state(lambda a: a.copy()), np.asarray)
    assert again.scalars == opt.scalars
    opt.step(lr=0.1, momentum=0.9)
    again.step(lr=0.1, momentum=0.9)
    np.testing.assert_array_equal(q.data, p.data)
    Adam([p], beta2=0.0)
    with pytest.raises(ValueError) as e:
        Adam([p], beta2=1.0)
    assert str(e.value) == "beta2 must be in [0, 1), got 1.0"


def test_optimizers_by_name():
    from types import SimpleNamespace
    from nnkd.optim import make_optimizer
    p = _one_param([1.0, 2.0], [0.5, -1.0])
    settings = SimpleNamespace(beta2=0.99, momentum_form="classic")
    adam = make_optimizer("adam", [p], settings)
    assert type(adam) is Adam and adam.beta2 == 0.99
    assert type(make_optimizer("sgd", [p], settings)) is SGD
    with pytest.raises(ValueError) as e:
        make_optimizer("rmsprop", [p], settings)
    assert str(e.value) == "unknown optimizer 'rmsprop': expected one of sgd, adam"


# ---- label smoothing of the hard-label loss -----------------------------------------------------

@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_label_smoothing_gradients_match_finite_differences(backend, eps):
    rng = np.random.default_rng(11)
    z = backend.asarray(rng.standard_normal((6, 10)) * 3)
    y = backend.asarray(rng.integers(0, 10, 6))
    t = backend.asarray(rng.standard_normal((6, 10)) * 4)
    _, g = losses.cross_entropy(z, y, eps)
    r = check("smoothed CE", lambda: float(host(losses.cross_entropy(z, y, eps)[0])), z, g)
    assert r.passed, r.details
    kd = lambda: losses.distillation_loss(z, y, t, 4.0, 0.5, 0.5, report_kl=False, label_smoothing=eps)  # noqa: E731
    r = check("distillation, smoothed hard term", lambda: float(host(kd()[0])), z, kd()[1])
    assert r.passed, r.details


def test_label_smoothing_by_definition():
    rng = np.random.default_rng(12)
    z, y, eps = rng.standard_normal((5, 10)), rng.integers(0, 10, 5), 0.2
    q = np.full((5, 10), eps / 10)
    q[np.arange(5), y] += 1 - eps
    loss, grad = losses.cross_entropy(z, y, eps)
    assert float(loss) == pytest.approx(np.mean(-(q * sp.log_softmax(z, axis=1)).sum(1)), rel=1e-12)
    np.testing.assert_allclose(grad, (sp.softmax(z, axis=1) - q) / 5, rtol=1e-12, atol=1e-15)


def test_no_label_smoothing_is_the_plain_loss_bit_for_bit():
    """label_smoothing 0 (the default) is the hard-label loss as it is, in float32."""
    from nnkd.config import TrainConfig
    rng = np.random.default_rng(13)
    z = rng.standard_normal((50, 10)).astype(np.float32) * 3
    y, t = rng.integers(0, 10, 50), rng.standard_normal((50, 10)).astype(np.float32) * 4
    objective = losses.Objective.from_settings(TrainConfig(temperature=4.0, soft_weight=0.7, hard_weight=0.3))
    for got, want in ((objective(z, y), losses.cross_entropy(z, y)),
                      (objective(z, y, t), losses.distillation_loss(z, y, t, 4.0, 0.7, 0.3))):
        assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes()
    smoothed = losses.Objective.from_settings(TrainConfig(label_smoothing=0.1))
    assert not np.array_equal(smoothed(z, y)[1], objective(z, y)[1])  # the setting reaches the loss
    assert smoothed(z, y)[1].dtype == np.float32
