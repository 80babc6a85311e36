"""SGD with momentum, its schedules, and the max-norm constraint.

The paper's update (Srivastava/Hinton 2012, Appendix A.1; RECIPE.md)::

    dw = p * dw - (1 - p) * lr * g;   w += dw          (form="paper")

and the classic heavy-ball form, for comparison with most frameworks::

    v = p * v - lr * g;               w += v          (form="classic")

In steady state the paper's form moves as far as the classic one with
learning rate ``(1 - p) * lr``, which is why its ``lr0`` is large (10.0).
"""

import math

import numpy as np

from .backend import array_module
from .config import MAX_NORM_LAYERS, MOMENTUM_FORMS as FORMS
from .parallel import SERIAL, large


class SGD:
    """Momentum SGD over a list of :class:`nnkd.layers.Parameter`.

    Velocity and scratch buffers are allocated once; :meth:`step` updates the
    parameters and velocities in place, by row parts (``workers``, see
    :mod:`nnkd.parallel`), and leaves the gradients as they are.
    """

    workers = SERIAL

    def __init__(self, params, form="paper"):
        if form not in FORMS:
            raise ValueError(f"momentum form must be one of {FORMS}, got {form!r}")
        self.params = list(params)
        self.form = form
        self.velocity, self._step = [], []
        for p in self.params:
            v = p.data.copy()
            v.fill(0)
            self.velocity.append(v)
            self._step.append(v.copy())
        self._rates, self._rates_for = None, None

    def step(self, lr, momentum):
        scale, mom = self._device_rates(lr, momentum)
        for p, v, s in zip(self.params, self.velocity, self._step):
            xp, w, g = array_module(v), p.data, p.grad

            def rows(r):  # rows of a weight matrix (inputs), entries of a bias
                xp.multiply(g[r], scale, out=s[r])
                v[r] *= mom
                v[r] += s[r]
                w[r] += v[r]
            self.workers.over(rows, w.shape[0], cut=large(w))

    def _device_rates(self, lr, momentum):
        """``(-step size, momentum)`` in the parameters' dtype, where the parameters live: on
        CuPy 0-d views of one device array, rewritten in place only when the rates change
        (once an epoch), so that a step captured as a CUDA graph reads them from device memory
        and one capture serves every epoch; on NumPy scalars (indexing makes a copy)."""
        if self._rates_for != (lr, momentum):
            w = self.params[0].data
            step = (1.0 - momentum) * lr if self.form == "paper" else lr
            host = np.array([-step, momentum], dtype=w.dtype)
            if self._rates is None:
                self._rates = array_module(w).asarray(host)
            else:
                self._rates[...] = array_module(w).asarray(host)
            self._rates_for = (lr, momentum)
        return self._rates[0], self._rates[1]

    def state(self, to_host):
        return {f"velocity{i}": to_host(v) for i, v in enumerate(self.velocity)}

    def load_state(self, arrays, asarray):
        for i, v in enumerate(self.velocity):
            v[...] = asarray(arrays[f"velocity{i}"])


class MaxNorm:
    """Rescale each unit's incoming weight vector to at most a bound, after each update.

    For a dense layer with ``W`` of shape ``(n_in, n_out)``, unit ``j``'s
    incoming vector is column ``W[:, j]`` (plus ``b[j]`` if ``include_bias``).
    If its length exceeds the bound, it is divided by ``length / bound``
    ("we renormalize the weights of the hidden unit by division").

    Args:
        bound: the limit; paper: 15 on the *squared* length.
        squared: if True, ``bound`` limits the squared length (norm <= sqrt(bound)).
        include_bias: whether the bias counts in the length (paper: no; the seed: yes).
        layers: ``"hidden"`` (units of hidden layers only, the paper), ``"all"``
            (the output layer too, as the seed did), or ``"none"``.
    """

    LAYERS = MAX_NORM_LAYERS

    def __init__(self, bound=15.0, squared=True, include_bias=False, layers="hidden"):
        if layers not in self.LAYERS:
            raise ValueError(f"max-norm layers must be one of {self.LAYERS}, got {layers!r}")
        if bound <= 0:
            raise ValueError(f"max-norm bound must be positive, got {bound}")
        self.norm_bound = math.sqrt(bound) if squared else float(bound)
        self.include_bias = include_bias
        self.layers = layers
        self._scale = {}

    def apply(self, dense_layers):
        """Constrain the chosen layers' units in place."""
        if self.layers == "none":
            return
        chosen = dense_layers if self.layers == "all" else dense_layers[:-1]
        for layer in chosen:
            W, b = layer.W.data, layer.b.data
            xp = array_module(W)
            scale = self._scale.get(id(layer))
            if scale is None or scale.shape != b.shape:
                scale = self._scale[id(layer)] = xp.empty_like(b)
            _column_sq_norms(W, scale, xp)
            if xp is np and not self.include_bias and scale.max() <= self.norm_bound ** 2:
                continue  # nothing to rescale (checked on NumPy only, where it costs no device sync)
            if self.include_bias:
                scale += b * b
            # scale = min(1, bound / norm); units under the bound are multiplied by 1.
            xp.sqrt(scale, out=scale)
            xp.maximum(scale, W.dtype.type(self.norm_bound), out=scale)
            xp.divide(W.dtype.type(self.norm_bound), scale, out=scale)
            W *= scale
            if self.include_bias:
                b *= scale


def _column_sq_norms(W, out, xp):
    """``out[j] = sum_i W[i, j]^2`` without a temporary the size of W (on NumPy)."""
    if xp is np:
        return xp.einsum("ij,ij->j", W, W, out=out)
    return xp.sum(xp.square(W), axis=0, out=out)  # CuPy's einsum takes no out=


def learning_rate(epoch, lr0, schedule="exp", decay=0.998, epochs=None):
    """Learning rate for a 0-based ``epoch``.

    ``"exp"``: ``lr0 * decay**epoch`` (the paper's, decay 0.998);
    ``"cosine"``: ``lr0 * (1 + cos(pi * epoch / epochs)) / 2``, from lr0 to near 0;
    ``"constant"``: lr0.
    """
    if schedule == "exp":
        return lr0 * decay ** epoch
    if schedule == "cosine":
        return lr0 * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "constant":
        return lr0
    raise ValueError(f"unknown learning-rate schedule {schedule!r}")


def momentum_at(epoch, start=0.5, end=0.99, ramp_epochs=500):
    """Momentum rising linearly from ``start`` (epoch 0) to ``end`` (epoch ``ramp_epochs``),
    then constant.  ``ramp_epochs=0`` gives ``end`` throughout."""
    if ramp_epochs <= 0 or epoch >= ramp_epochs:
        return end
    return start + (end - start) * epoch / ramp_epochs

