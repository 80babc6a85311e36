"""Layers with hand-written forward and backward passes.

Conventions (as in Chainer): ``x`` input, ``y`` output, ``gy`` gradient of the
loss with respect to ``y``, ``gx`` with respect to ``x``.  Arrays are
``(batch, features)``.  A dense layer computes ``y = x @ W + b`` with ``W`` of
shape ``(n_in, n_out)``, so column ``j`` of ``W`` is hidden unit ``j``'s
incoming weight vector (what max-norm constrains).

Speed: every layer keeps its output and gradient buffers and reuses them while
the batch size stays the same, so a training step allocates nothing in the
steady state.  ReLU and Dropout work *in place* on the array they are given
(forward) and on ``gy`` (backward); in a network that array is the previous
layer's output buffer, which nothing else reads.  Callers that want to keep
their input must pass a copy.
"""

import numpy as np


class Parameter:
    """A trainable array and its gradient.

    Gradients accumulate (``+=``), so a parameter can receive contributions
    from several losses; :meth:`zero_grad` clears them once per step.  The
    clearing is lazy: it sets ``grad_is_zero`` and the first contribution of
    the next step overwrites ``grad`` instead of adding to it, which saves a
    pass over every weight matrix.  Read the gradient through :meth:`value`.
    """

    def __init__(self, data):
        self.data = data
        self.grad = data.copy()
        self.grad.fill(0)
        self.grad_is_zero = True

    def zero_grad(self):
        self.grad_is_zero = True

    def value(self):
        """The accumulated gradient (zeros if nothing was accumulated since zero_grad)."""
        if self.grad_is_zero:
            self.grad.fill(0)
        return self.grad

    def accumulate(self, xp_op, *args):
        """Add ``xp_op(*args)`` to the gradient, computing it straight into ``grad`` if the
        gradient is zero.  ``xp_op`` must accept ``out=``."""
        if self.grad_is_zero:
            xp_op(*args, out=self.grad)
            self.grad_is_zero = False
        else:
            self.grad += xp_op(*args)


class Layer:
    """Base class: buffer cache and the forward/backward interface."""

    params = ()

    def _buffer(self, name, shape, xp, dtype):
        """A reusable array called ``name``; reallocated only when the shape changes."""
        buf = self.__dict__.get("_buf_" + name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = xp.empty(shape, dtype=dtype)
            self.__dict__["_buf_" + name] = buf
        return buf

    def forward(self, x, train):
        raise NotImplementedError

    def backward(self, gy, need_gx=True):
        raise NotImplementedError


class Dense(Layer):
    """Fully connected layer ``y = x @ W + b``.

    Args:
        W: ``(n_in, n_out)`` weight array on the backend; b: ``(n_out,)``.
    """

    def __init__(self, W, b, xp):
        self.W = Parameter(W)
        self.b = Parameter(b)
        self.params = (self.W, self.b)
        self.xp = xp
        self.x = None

    @classmethod
    def init(cls, n_in, n_out, backend, host_rng, std=0.01, dtype=np.float32):
        """Weights from N(0, std^2) (the paper's 0.01), biases 0.  The draw happens on
        the host so that both backends start from the same numbers for a seed."""
        W = host_rng.normal(0.0, std, size=(n_in, n_out)).astype(dtype)
        return cls(backend.asarray(W), backend.xp.zeros(n_out, dtype=dtype), backend.xp)

    @property
    def shape(self):
        return self.W.data.shape

    def forward(self, x, train):
        xp = self.xp
        self.x = x
        y = self._buffer("y", (x.shape[0], self.shape[1]), xp, x.dtype)
        xp.matmul(x, self.W.data, out=y)
        y += self.b.data
        return y

    def backward(self, gy, need_gx=True):
        xp = self.xp
        self.W.accumulate(xp.matmul, self.x.T, gy)
        self.b.accumulate(xp.sum, gy, 0)
        if not need_gx:
            return None
        gx = self._buffer("gx", self.x.shape, xp, gy.dtype)
        return xp.matmul(gy, self.W.data.T, out=gx)


class ReLU(Layer):
    """``y = max(x, 0)``, in place; keeps the mask ``x > 0`` for backward."""

    def __init__(self, xp):
        self.xp = xp

    def forward(self, x, train):
        xp = self.xp
        self.mask = self._buffer("mask", x.shape, xp, bool)
        xp.greater(x, 0, out=self.mask)
        return xp.maximum(x, 0, out=x)

    def backward(self, gy, need_gx=True):
        return self.xp.multiply(gy, self.mask, out=gy)


class Dropout(Layer):
    """Inverted dropout: in training each unit is kept with probability ``1 - rate`` and
    scaled by ``1 / (1 - rate)``, so evaluation is the identity.

    The mask comes from ``self.rng`` (set by whoever drives training) and is
    kept for backward; tests freeze it by setting ``self.mask`` and
    ``self.frozen = True``.
    """

    def __init__(self, rate, backend):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.backend = backend
        self.xp = backend.xp
        self.rng = None
        self.frozen = False
        self.mask = None
        self.active = False

    def forward(self, x, train):
        self.active = train and self.rate > 0
        if not self.active:
            return x
        if not self.frozen:
            self.mask = self._buffer("mask", x.shape, self.xp, x.dtype)
            self.backend.keep_mask(self.rng, 1.0 - self.rate, self.mask)
        return self.xp.multiply(x, self.mask, out=x)

    def backward(self, gy, need_gx=True):
        if not self.active:
            return gy
        return self.xp.multiply(gy, self.mask, out=gy)
