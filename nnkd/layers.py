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

from .backend import array_module, keep_mask


class Parameter:
    """A trainable array ``data`` and its gradient ``grad``.

    ``grad`` is always the gradient accumulated since the last :meth:`zero_grad`.
    Gradients accumulate (``+=``), so a parameter can receive contributions from
    several losses.  Clearing costs nothing: :meth:`zero_grad` only marks the
    buffer as cleared, the next contribution is written straight into it
    (``matmul(..., out=)``) instead of added, and reading ``grad`` while it is
    cleared fills it with zeros first.
    """

    def __init__(self, data):
        self.data = data
        self._grad = data.copy()
        self._grad.fill(0)
        self._cleared = True

    @property
    def grad(self):
        if self._cleared:
            self._grad.fill(0)
            self._cleared = False
        return self._grad

    def zero_grad(self):
        self._cleared = True

    def accumulate(self, xp_op, *args):
        """Add ``xp_op(*args)`` to the gradient (written straight into the buffer after a
        :meth:`zero_grad`).  ``xp_op`` must accept ``out=``."""
        if self._cleared:
            xp_op(*args, out=self._grad)
            self._cleared = False
        else:
            self._grad += xp_op(*args)


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
        W: ``(n_in, n_out)`` weight array (NumPy or CuPy); b: ``(n_out,)``.
    """

    def __init__(self, W, b):
        self.W = Parameter(W)
        self.b = Parameter(b)
        self.params = (self.W, self.b)
        self.xp = array_module(W)
        self.x = None

    @classmethod
    def init(cls, n_in, n_out, backend, host_rng, std=0.01, dtype=np.float32):
        """Weights from N(0, std^2) (the paper's 0.01), biases 0.  The draw happens on
        the host so that both backends start from the same numbers for a seed."""
        W = host_rng.normal(0.0, std, size=(n_in, n_out)).astype(dtype)
        return cls(backend.asarray(W), backend.xp.zeros(n_out, dtype=dtype))

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

    def forward(self, x, train):
        xp = array_module(x)
        self.mask = self._buffer("mask", x.shape, xp, bool)
        xp.greater(x, 0, out=self.mask)
        return xp.maximum(x, 0, out=x)

    def backward(self, gy, need_gx=True):
        return array_module(gy).multiply(gy, self.mask, out=gy)


class Dropout(Layer):
    """Inverted dropout: in training each unit is kept with probability ``1 - rate`` and
    scaled by ``1 / (1 - rate)``, so evaluation is the identity.

    The mask comes from ``self.rng`` (set by whoever drives training) and is
    kept for backward; tests freeze it by setting ``self.mask`` and
    ``self.frozen = True``.
    """

    def __init__(self, rate):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.rng = None
        self.frozen = False
        self.mask = None
        self.active = False

    def forward(self, x, train):
        self.active = train and self.rate > 0
        if not self.active:
            return x
        xp = array_module(x)
        if not self.frozen:
            self.mask = self._buffer("mask", x.shape, xp, x.dtype)
            keep_mask(self.rng, 1.0 - self.rate, self.mask)
        return xp.multiply(x, self.mask, out=x)

    def backward(self, gy, need_gx=True):
        if not self.active:
            return gy
        return array_module(gy).multiply(gy, self.mask, out=gy)
