"""Finite-difference gradient checks, in float64.

Central differences of fourth order,
``(-f(x + 2hd) + 8 f(x + hd) - 8 f(x - hd) + f(x - 2hd)) / 12h``, compared with the
analytic gradient by the relative error ``|a - n| / max(|a|, |n|, tiny)``:
element by element for small arrays, and along random unit directions ``d``
for large ones (where ``a = <grad, d>``).  On failure the report holds the
input and both gradients, so the wrong entries can be seen.
"""

from dataclasses import dataclass, field

import numpy as np

from .backend import array_module

# Floor of the relative error's denominator.  Exact zeros of the analytic gradient
# (dropped units, ReLU-off inputs) meet numeric values of pure rounding noise, about
# 1e-12 here; dividing by 1e-5 instead of by that noise keeps such an entry at ~1e-7,
# while any real disagreement above 1e-11 still fails the 1e-6 tolerance.
TINY = 1e-5


@dataclass
class Result:
    """One component's check: ``max_rel_error`` over the elements or directions tried."""

    name: str
    shape: tuple
    max_rel_error: float
    tolerance: float
    details: str = field(default="", repr=False)

    @property
    def passed(self):
        return bool(self.max_rel_error <= self.tolerance)


def rel_error(a, n):
    return abs(a - n) / max(abs(a), abs(n), TINY)


def check(name, f, x, grad, h=1e-4, tol=1e-6, max_elements=64, n_directions=8, seed=0):
    """Check ``grad`` (the analytic dF/dx) against central differences of ``f``.

    Args:
        f: function of no arguments returning the scalar loss as a float; it
            reads ``x``, which is perturbed in place and restored.
        x: a float64 array (NumPy or CuPy), perturbed in place.
        grad: the analytic gradient, same shape as ``x``.
        max_elements: arrays up to this size are checked element by element;
            larger ones along ``n_directions`` random directions.
    """
    xp = array_module(x)
    assert x.dtype == np.float64, "gradient checks run in float64"
    g = np.asarray(_host(grad), dtype=np.float64)
    errors, lines = [], []

    def numeric(direction):
        x_saved = x.copy()
        values = []
        for k in (2, 1, -1, -2):
            x[...] = x_saved + (k * h) * direction
            values.append(f())
        x[...] = x_saved
        f2, f1, fm1, fm2 = values
        return (-f2 + 8 * f1 - 8 * fm1 + fm2) / (12 * h)

    if x.size <= max_elements:
        for i in range(x.size):
            d = np.zeros(x.size)
            d[i] = 1.0
            n = numeric(xp.asarray(d.reshape(x.shape)))
            a = g.reshape(-1)[i]
            errors.append(rel_error(a, n))
            lines.append(f"  element {tuple(int(k) for k in np.unravel_index(i, x.shape))}: analytic {a:.10g} numeric {n:.10g}")
    else:
        rng = np.random.default_rng(seed)
        for k in range(n_directions):
            d = rng.standard_normal(x.shape)
            d /= np.linalg.norm(d)
            n = numeric(xp.asarray(d))
            a = float((g * d).sum())
            errors.append(rel_error(a, n))
            lines.append(f"  direction {k}: analytic {a:.10g} numeric {n:.10g}")
    worst = max(errors)
    details = (f"{name}: max relative error {worst:.3g} > {tol:g}\n"
               f"  input {tuple(x.shape)}:\n{np.array2string(_host(x), threshold=50, precision=4)}\n"
               f"  analytic gradient:\n{np.array2string(g, threshold=50, precision=6)}\n"
               + "\n".join(lines))
    return Result(name, tuple(x.shape), worst, tol, details)


def _host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def standard_checks(backend, tol=1e-6):
    """The checks behind ``python main.py gradcheck``: every layer, every loss and whole
    teacher- and student-shaped networks at reduced width, in float64."""

    rng = np.random.default_rng(0)
    dev = lambda a: backend.asarray(np.asarray(a, dtype=np.float64))  # noqa: E731

    def scalar(a):
        return float(backend.to_host(a))
    return (_loss_checks(backend, rng, dev, scalar, tol) + _layer_checks(rng, dev, scalar, tol)
            + _network_checks(backend, rng, dev, scalar, tol))


def _loss_checks(backend, rng, dev, scalar, tol, B=4, C=10):
    """Every loss, at several temperatures."""
    from . import losses
    results = []
    # Losses, at several temperatures.  A random linear readout r turns outputs into a scalar.
    z = dev(rng.standard_normal((B, C)) * 3)
    labels = backend.asarray(rng.integers(0, C, B))
    teacher = dev(rng.standard_normal((B, C)) * 5)
    r = dev(rng.standard_normal((B, C)))
    for T in (1.0, 4.0, 20.0):
        # d/dz sum(r * log_softmax(z/T)) = (r - softmax(z/T) * sum_k r) / T
        g = (r - losses.softmax(z, T) * r.sum(axis=1, keepdims=True)) / T
        results.append(check(f"log_softmax T={T:g}", lambda: scalar((r * losses.log_softmax(z, T)).sum()), z, g, tol=tol))
    _, g = losses.cross_entropy(z, labels)
    results.append(check("cross_entropy (hard)", lambda: scalar(losses.cross_entropy(z, labels)[0]), z, g, tol=tol))
    for T in (1.0, 4.0, 20.0):
        p = losses.softmax(teacher, T)
        _, g = losses.soft_cross_entropy(z, p, T)
        results.append(check(f"soft_cross_entropy T={T:g}",
                             lambda: scalar(losses.soft_cross_entropy(z, p, T)[0]), z, g, tol=tol))
    kd = lambda: losses.distillation_loss(z, labels, teacher, 20.0, soft_weight=0.7, hard_weight=0.3, report_kl=False)  # noqa: E731
    results.append(check("distillation T=20", lambda: scalar(kd()[0]), z, kd()[1], tol=tol))
    for eps in (0.1, 0.5):
        _, g = losses.cross_entropy(z, labels, eps)
        results.append(check(f"cross_entropy label smoothing {eps:g}",
                             lambda: scalar(losses.cross_entropy(z, labels, eps)[0]), z, g, tol=tol))
    kds = lambda: losses.distillation_loss(z, labels, teacher, 4.0, 0.7, 0.3, False, label_smoothing=0.1)  # noqa: E731
    results.append(check("distillation T=4 label smoothing 0.1", lambda: scalar(kds()[0]), z, kds()[1], tol=tol))
    return results


def _layer_checks(rng, dev, scalar, tol, B=4):
    """Dense, ReLU and Dropout: loss = sum(r * layer(x))."""
    from .layers import Dense, Dropout, ReLU
    results = []
    x = dev(rng.standard_normal((B, 6)))
    dense = Dense(dev(rng.standard_normal((6, 5)) * 0.5), dev(rng.standard_normal(5)))
    r5 = dev(rng.standard_normal((B, 5)))
    f_dense = lambda: scalar((r5 * dense.forward(x, True)).sum())  # noqa: E731
    f_dense()
    dense.W.zero_grad(); dense.b.zero_grad()
    gx = dense.backward(r5.copy()).copy()
    results.append(check("Dense input", f_dense, x, gx, tol=tol))
    results.append(check("Dense weights", f_dense, dense.W.data, dense.W.grad, tol=tol))
    results.append(check("Dense bias", f_dense, dense.b.data, dense.b.grad, tol=tol))

    # ReLU: inputs kept at least 0.1 away from the kink (h = 1e-6 never crosses it).
    xr_host = rng.standard_normal((B, 6))
    xr_host += np.sign(xr_host) * 0.1
    xr = dev(xr_host)
    relu = ReLU()
    r6 = dev(rng.standard_normal((B, 6)))
    f_relu = lambda: scalar((r6 * relu.forward(xr.copy(), True)).sum())  # noqa: E731
    f_relu()
    results.append(check("ReLU", f_relu, xr, relu.backward(r6.copy()), tol=tol))

    drop = Dropout(0.5)
    drop.mask = dev((rng.random((B, 6)) < 0.5) * 2.0)
    drop.frozen = True
    f_drop = lambda: scalar((r6 * drop.forward(xr.copy(), True)).sum())  # noqa: E731
    f_drop()
    results.append(check("Dropout (frozen mask)", f_drop, xr, drop.backward(r6.copy()), tol=tol))
    return results


def _network_checks(backend, rng, dev, scalar, tol, B=4):
    """Whole networks at reduced width, from the distillation loss to every parameter."""
    from . import losses
    from .network import Network
    results = []
    # Whole networks at reduced width, from the distillation loss to every parameter.
    for label, sizes, drop_in, drop_hid in (("teacher-shaped 20-16-16-10", [20, 16, 16, 10], 0.2, 0.5),
                                             ("student-shaped 20-12-12-10", [20, 12, 12, 10], 0.0, 0.0)):
        net = Network(sizes, backend, seed=1, dropout_input=drop_in, dropout_hidden=drop_hid,
                      init_std=0.5, dtype=np.float64)
        for d in net.dropouts:
            d.mask = dev((rng.random((B, d_width(net, d))) >= d.rate) / (1 - d.rate))
            d.frozen = True
        xb = dev(rng.standard_normal((B, sizes[0])))
        yb = backend.asarray(rng.integers(0, 10, B))
        tb = dev(rng.standard_normal((B, 10)) * 4)  # the teacher's logits

        # soft weight 1/T^2 keeps the loss near 1, so rounding in f stays near 1e-16.
        def f_net():
            zz = net.forward(xb.copy(), True)
            return scalar(losses.distillation_loss(zz, yb, tb, 20.0, 1 / 400, 0.5)[0])

        net.zero_grad()
        zz = net.forward(xb.copy(), True)
        _, gz = losses.distillation_loss(zz, yb, tb, 20.0, 1 / 400, 0.5)
        net.backward(gz)
        for name, prm in net.params:
            results.append(check(f"{label} {name}", f_net, prm.data, prm.grad.copy(), tol=tol))
    return results


def d_width(net, dropout):
    """Width of the activations a dropout layer of ``net`` sees."""
    i = net.layers.index(dropout)
    nxt = net.layers[i + 1]
    return nxt.shape[0]
