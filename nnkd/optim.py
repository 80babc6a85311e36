"""Optimizers and the max-norm constraint (the schedules: :mod:`nnkd.schedules`).

An optimizer updates a list of :class:`nnkd.layers.Parameter` in place from
their gradients.  Each one is a class in this module, named once in
:data:`OPTIMIZERS`; adding one is a class and a line there.  Its state
(velocities, moments) is named by :meth:`Optimizer.state`, which is what a
checkpoint stores and a resume loads back.

Momentum SGD (Srivastava et al. 2014, appendix A.1) in two forms::

    dw = p * dw - (1 - p) * lr * g;   w += dw          (form="paper")
    v = p * v - lr * g;               w += v           (form="classic", most frameworks)

In steady state the paper's form moves as far as the classic one with
learning rate ``(1 - p) * lr``.

Adam (Kingma & Ba 2015), as PyTorch writes it, with the momentum schedule as
``beta1``::

    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
    w -= lr / (1 - prod b1) * m / (sqrt(v / (1 - b2^t)) + eps)
"""

import math

import numpy as np

from . import cpu_kernels
from .backend import array_module, fused
from .parallel import SERIAL, large

MOMENTUM_FORMS = {"paper": "dw = p dw - (1-p) lr g", "classic": "v = p v - lr g"}


class Optimizer:
    """What every optimizer has: the parameters, zero-initialized state buffers per
    parameter (``self.slots``: name -> one array per parameter), scalar state
    (``self.scalars``: name -> float), and ``workers`` that run large updates by row
    parts (:mod:`nnkd.parallel`).  Subclasses define :meth:`step`."""

    workers = SERIAL
    SLOTS = ()      # names of the per-parameter state buffers
    SCALARS = {}    # names and initial values of the scalar state
    SETTINGS = ()   # the settings its from_settings reads (beside the learning rate and momentum)
    help = ""       # what it is, in a few words (the command line's help)

    def __init__(self, params):
        self.params = list(params)
        self.slots = {name: [_zeros_like(p.data) for p in self.params] for name in self.SLOTS}
        self.scalars = dict(self.SCALARS)

    def step(self, lr, momentum, sq_norms=None):
        """Update every parameter from its gradient at this learning rate and momentum; returns
        the parameters whose column squared norms it wrote into ``sq_norms`` on the way (see
        :meth:`SGD.step`), possibly none."""
        raise NotImplementedError

    def state_spec(self):
        """``{name: (shape, dtype)}`` of :meth:`state`, to check a checkpoint against."""
        spec = {f"{name}{i}": (a.shape, a.dtype) for name, arrays in self.slots.items()
                for i, a in enumerate(arrays)}
        spec.update({name: ((), np.dtype(np.float64)) for name in self.scalars})
        return spec

    def state(self, to_host):
        """The state as host arrays by name (what a checkpoint stores)."""
        out = {f"{name}{i}": to_host(a) for name, arrays in self.slots.items() for i, a in enumerate(arrays)}
        out.update({name: np.array(v, dtype=np.float64) for name, v in self.scalars.items()})
        return out

    def load_state(self, arrays, asarray):
        for name, slot in self.slots.items():
            for i, a in enumerate(slot):
                a[...] = asarray(arrays[f"{name}{i}"])
        for name in self.scalars:
            self.scalars[name] = float(arrays[name])


def _zeros_like(a):
    z = a.copy()
    z.fill(0)
    return z


class SGD(Optimizer):
    """Momentum SGD, ``form`` ``"paper"`` or ``"classic"`` (see the module's docstring).
    Updates parameters and velocities in place and leaves the gradients as they are."""

    SLOTS = ("velocity",)
    SETTINGS = ("momentum_form",)
    help = "momentum SGD"

    @classmethod
    def from_settings(cls, params, settings):
        return cls(params, form=settings.momentum_form)

    def __init__(self, params, form="paper"):
        if form not in MOMENTUM_FORMS:
            raise ValueError(f"momentum form must be one of {tuple(MOMENTUM_FORMS)}, got {form!r}")
        super().__init__(params)
        self.form = form
        self.velocity = self.slots["velocity"]
        self._step = [v.copy() for v in self.velocity]  # scratch: -step * g
        self._rates, self._rates_for = None, None

    def step(self, lr, momentum, sq_norms=None):
        """Update every parameter; with the Numba kernels (:mod:`nnkd.cpu_kernels`), also write
        the column squared norms of each updated weight matrix ``p`` that ``sq_norms`` (a dict
        ``{parameter: array}``, from :meth:`MaxNorm.sq_norm_buffers`) names, in the same pass.
        Returns the parameters whose norms it wrote."""
        scale, mom = self._device_rates(lr, momentum)
        fuse = cpu_kernels.available() and array_module(scale) is np
        done = set()
        for p, v, s in zip(self.params, self.velocity, self._step):
            xp, w, g = array_module(v), p.data, p.grad
            if xp is not np:
                _momentum_update(w, v, g, scale, mom)  # one kernel
            elif fuse:
                norms = (sq_norms or {}).get(p, cpu_kernels.NO_NORMS)
                w2, v2, g2 = (a.reshape(1, -1) if a.ndim == 1 else a for a in (w, v, g))
                self.workers.over(lambda c: cpu_kernels.sgd_update(w2, v2, g2, scale, mom, c, norms),
                                  w2.shape[1], cut=large(w))
                done.update([p] if norms.size else [])
            else:
                self._numpy_update(w, v, g, s, scale, mom)
        return done

    def _numpy_update(self, w, v, g, s, scale, mom):
        """The update by NumPy passes (through the scratch ``s``), by row parts when large."""
        def rows(r):  # rows of a weight matrix (inputs), entries of a bias
            np.multiply(g[r], scale, out=s[r])
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


@fused
def _momentum_update(w, v, g, scale, mom):
    """SGD's update in one CuPy kernel, in the order of the NumPy path's operations."""
    v *= mom
    v += g * scale
    w += v


class Adam(Optimizer):
    """Adam with ``beta1`` = the momentum of the step and a fixed ``beta2``.  The bias
    correction of the first moment uses the product of the ``beta1`` values used so far
    (``b1^t`` when the momentum is constant), so a momentum schedule stays well defined."""

    SLOTS = ("adam_m", "adam_v")
    SCALARS = {"adam_steps": 0.0, "adam_beta1_power": 1.0}
    SETTINGS = ("beta2",)
    help = "the momentum is beta1"

    @classmethod
    def from_settings(cls, params, settings):
        return cls(params, beta2=settings.beta2)

    def __init__(self, params, beta2=0.999, eps=1e-8):
        if not 0.0 <= beta2 < 1.0:
            raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
        super().__init__(params)
        self.beta2, self.eps = beta2, eps
        self._scratch = [_zeros_like(p.data) for p in self.params]

    def step(self, lr, momentum, sq_norms=None):
        sc = self.scalars
        sc["adam_steps"] += 1
        sc["adam_beta1_power"] *= momentum
        b1, b2 = momentum, self.beta2
        dtype = self.params[0].data.dtype.type
        step_size = dtype(-lr / (1.0 - sc["adam_beta1_power"]))
        root_c2 = dtype(math.sqrt(1.0 - b2 ** sc["adam_steps"]))
        b1, b2, eps = dtype(b1), dtype(b2), dtype(self.eps)
        for p, m, v, s in zip(self.params, self.slots["adam_m"], self.slots["adam_v"], self._scratch):
            w, g = p.data, p.grad
            xp = array_module(w)

            def rows(r):  # in place, through the scratch buffer s: no allocation in a step
                m[r] *= b1
                xp.multiply(g[r], 1 - b1, out=s[r])
                m[r] += s[r]
                v[r] *= b2
                xp.multiply(g[r], g[r], out=s[r])
                s[r] *= 1 - b2
                v[r] += s[r]
                xp.sqrt(v[r], out=s[r])
                s[r] /= root_c2
                s[r] += eps
                xp.divide(m[r], s[r], out=s[r])
                s[r] *= step_size
                w[r] += s[r]
            self.workers.over(rows, w.shape[0], cut=large(w))
        return set()


# The optimizers by the name that settings use (TrainConfig.optimizer).
OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def make_optimizer(name, params, settings):
    """The optimizer called ``name``, set up from ``settings`` (any object with the fields its
    class reads, e.g. a :class:`~nnkd.config.TrainConfig`)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name].from_settings(params, settings)


class MaxNorm:
    """Rescale each unit's incoming weight vector to at most a bound, after each update.

    For a dense layer with ``W`` of shape ``(n_in, n_out)``, unit ``j``'s
    incoming vector is column ``W[:, j]`` (plus ``b[j]`` if ``include_bias``).
    If its length exceeds the bound, it is divided by ``length / bound``
    ("we renormalize the weights of the hidden unit by division").

    Args:
        bound: the limit; paper: 15 on the *squared* length.
        squared: if True, ``bound`` limits the squared length (norm <= sqrt(bound)).
        include_bias: whether the bias counts in the length (paper: no).
        layers: ``"hidden"`` (units of hidden layers only, the paper), ``"all"``
            (the output layer too), or ``"none"``.
    """

    LAYERS = {"hidden": "the paper's", "all": "the output layer too", "none": ""}

    def __init__(self, bound=15.0, squared=True, include_bias=False, layers="hidden"):
        if layers not in self.LAYERS:
            raise ValueError(f"max-norm layers must be one of {tuple(self.LAYERS)}, got {layers!r}")
        if bound <= 0:
            raise ValueError(f"max-norm bound must be positive, got {bound}")
        self.norm_bound = math.sqrt(bound) if squared else float(bound)
        self.include_bias = include_bias
        self.layers = layers
        self._scale = {}

    def chosen(self, dense_layers):
        """The layers whose units are constrained."""
        if self.layers == "none":
            return []
        return list(dense_layers) if self.layers == "all" else list(dense_layers[:-1])

    def sq_norm_buffers(self, dense_layers):
        """``{W: array}``: where an optimizer may write the column squared norms of each chosen
        layer's updated weights ``W`` (a :class:`~nnkd.layers.Parameter`) on its way (see
        :meth:`SGD.step`); :meth:`apply` then skips computing them."""
        return {layer.W: self._buffer(layer) for layer in self.chosen(dense_layers)}

    def _buffer(self, layer):
        b = layer.b.data
        scale = self._scale.get(id(layer))
        if scale is None or scale.shape != b.shape:
            scale = self._scale[id(layer)] = array_module(b).empty_like(b)
        return scale

    def apply(self, dense_layers, sq_norms_ready=()):
        """Constrain the chosen layers' units in place.  ``sq_norms_ready``: the weight
        parameters whose column squared norms are already in :meth:`sq_norm_buffers`' arrays."""
        for layer in self.chosen(dense_layers):
            W, b = layer.W.data, layer.b.data
            xp = array_module(W)
            scale = self._buffer(layer)
            if layer.W not in sq_norms_ready:
                _column_sq_norms(W, scale, xp)
            if xp is np and not self.include_bias and scale.max() <= self.norm_bound ** 2:
                continue  # nothing to rescale (checked on NumPy only, where it costs no device sync)
            if self.include_bias:
                scale += b * b
            bound = W.dtype.type(self.norm_bound)
            if xp is not np and not self.include_bias:
                _rescale_columns(W, scale, bound)  # one kernel
                continue
            # scale = min(1, bound / norm); units under the bound are multiplied by 1.
            xp.sqrt(scale, out=scale)
            xp.maximum(scale, bound, out=scale)
            xp.divide(bound, scale, out=scale)
            W *= scale
            if self.include_bias:
                b *= scale


@fused
def _rescale_columns(W, sq_norms, bound):
    """Max-norm's rescaling in one CuPy kernel: ``W[:, j] *= bound / max(norm_j, bound)``."""
    xp = array_module(W)
    W *= bound / xp.maximum(xp.sqrt(sq_norms), bound)


def _column_sq_norms(W, out, xp):
    """``out[j] = sum_i W[i, j]^2`` without a temporary the size of W (on NumPy)."""
    if xp is np:
        return xp.einsum("ij,ij->j", W, W, out=out)
    return xp.sum(xp.square(W), axis=0, out=out)  # CuPy's einsum takes no out=
