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

Cores: products and large elementwise passes run through ``self.workers.over(fn,
n)``, which calls ``fn`` on slices of the output's columns (products) or rows
(elementwise), concurrently on NumPy with several cores (:mod:`nnkd.parallel`),
or once with ``slice(None)``.
"""

import numpy as np

from .backend import array_module, dropout_uniforms, mask_from_uniforms
from .parallel import SERIAL, large


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

    def contribute(self):
        """Begin a contribution to the gradient: returns ``(buffer, add)``, where ``add`` is
        False right after :meth:`zero_grad` (write the contribution over the buffer, e.g.
        with ``out=``) and True otherwise (add it to the buffer).  See :func:`write_or_add`."""
        add = not self._cleared
        self._cleared = False
        return self._grad, add


def write_or_add(add, out, xp_op, *args):
    """``out += xp_op(*args)`` if ``add``, else ``xp_op(*args, out=out)`` (no temporary)."""
    if add:
        out += xp_op(*args)
    else:
        xp_op(*args, out=out)


class Layer:
    """Base class: buffer cache and the forward/backward interface."""

    params = ()
    workers = SERIAL  # see the module docstring

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


INITS = {  # Dense.init's schemes, and what each draws
    "normal": "N(0, init-std^2) weights, zero biases",
    "uniform": "weights and biases from U(-1/sqrt(fan-in), 1/sqrt(fan-in)), PyTorch's default"}


class Centre(Layer):
    """Pixels from [0, 1] to [-1, 1]: ``y = 2x - 1``, as torchvision's
    ``Normalize((0.5,), (0.5,))``.  It comes before input dropout, which then sets a
    dropped pixel to 0, mid-grey, where on [0, 1] pixels it sets it to black.  No
    parameters.  It writes a buffer of its own: the caller's ``x`` is left as it was."""

    def forward(self, x, train):
        xp = array_module(x)
        y = self._buffer("y", x.shape, xp, x.dtype)
        xp.multiply(x, 2, out=y)
        y -= 1
        return y

    def backward(self, gy, need_gx=True):
        gy *= 2
        return gy


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
    def init(cls, n_in, n_out, backend, host_rng, std=0.01, dtype=np.float32, scheme="normal"):
        """``scheme`` "normal": weights from N(0, std^2) (the paper's 0.01), biases 0;
        "uniform": weights and biases from U(-1/sqrt(n_in), 1/sqrt(n_in)), PyTorch's
        default for ``nn.Linear`` (``std`` unused).  The draw happens on the host so that
        both backends start from the same numbers for a seed."""
        if scheme == "uniform":
            bound = 1.0 / np.sqrt(n_in)
            W = host_rng.uniform(-bound, bound, size=(n_in, n_out)).astype(dtype)
            b = host_rng.uniform(-bound, bound, size=n_out).astype(dtype)
            return cls(backend.asarray(W), backend.asarray(b))
        if scheme != "normal":
            raise ValueError(f"init scheme must be one of {', '.join(INITS)}, got {scheme!r}")
        W = host_rng.normal(0.0, std, size=(n_in, n_out)).astype(dtype)
        return cls(backend.asarray(W), backend.xp.zeros(n_out, dtype=dtype))

    @property
    def shape(self):
        return self.W.data.shape

    def forward(self, x, train):
        xp, W, b = self.xp, self.W.data, self.b.data
        self.x = x
        y = self._buffer("y", (x.shape[0], self.shape[1]), xp, x.dtype)

        def units(c):
            xp.matmul(x, W[:, c], out=y[:, c])
            xp.add(y[:, c], b[c], out=y[:, c])
        self.workers.over(units, W.shape[1])
        return y

    def backward(self, gy, need_gx=True):
        xp, x, W = self.xp, self.x, self.W.data
        gW, add_W = self.W.contribute()
        gb, add_b = self.b.contribute()

        def units(c):  # the gradients of unit c's incoming weights and bias
            write_or_add(add_W, gW[:, c], xp.matmul, x.T, gy[:, c])
            write_or_add(add_b, gb[c], xp.sum, gy[:, c], 0)
        self.workers.over(units, W.shape[1])
        if not need_gx:
            return None
        gx = self._buffer("gx", x.shape, xp, gy.dtype)
        self.workers.over(lambda c: xp.matmul(gy, W[c].T, out=gx[:, c]), W.shape[0])
        return gx


class ReLU(Layer):
    """``y = max(x, 0)``, in place; keeps the mask ``x > 0`` for backward."""

    def forward(self, x, train):
        xp = array_module(x)
        mask = self.mask = self._buffer("mask", x.shape, xp, bool)

        def rows(r):
            xp.greater(x[r], 0, out=mask[r])
            xp.maximum(x[r], 0, out=x[r])
        self.workers.over(rows, x.shape[0], cut=large(x))
        return x

    def backward(self, gy, need_gx=True):
        return _multiply_in_place(self.workers, gy, self.mask)


DROPOUT_SCALINGS = {  # Dropout.scaling: where the keep probability is applied
    "train": "inverted dropout: kept units scaled by 1/keep in training",
    "test": "the paper's: kept units as they are in training, each dropout layer's outgoing weights times keep at evaluation, max-norm on the training-time weights"}


class Dropout(Layer):
    """Dropout: in training each unit is kept with probability ``keep = 1 - rate``.

    ``scaling="train"`` (inverted dropout): kept units are scaled by ``1 / keep`` in training,
    so evaluation is the identity.  ``scaling="test"`` (Srivastava et al. 2012, Hinton et al.
    2015): kept units pass as they are in training, and evaluation multiplies the units by
    ``keep``, which is the same as multiplying the next layer's weights by ``keep`` (how an
    export folds it).  The two are one model up to that factor: weights ``W`` under "test"
    are ``W * keep`` under "train".

    The mask comes from ``self.rng`` (set by whoever drives training) and is
    kept for backward; tests freeze it by setting ``self.mask`` and
    ``self.frozen = True``.
    """

    def __init__(self, rate, scaling="train"):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        if scaling not in DROPOUT_SCALINGS:
            raise ValueError(f"dropout scaling must be one of {', '.join(DROPOUT_SCALINGS)}, got {scaling!r}")
        self.rate = rate
        self.scaling = scaling
        self.rng = None
        self.frozen = False
        self.mask = None
        self.active = False

    @property
    def keep(self):
        return 1.0 - self.rate

    def forward(self, x, train):
        self.active = train and self.rate > 0
        if not self.active:
            if self.scaling == "train" or self.rate == 0:
                return x
            xp = array_module(x)  # evaluation under "test": the units times keep, into a buffer
            y = self._buffer("y", x.shape, xp, x.dtype)  # (x may be the caller's array)
            self.workers.over(lambda r: xp.multiply(x[r], x.dtype.type(self.keep), out=y[r]),
                              x.shape[0], cut=large(x))
            return y
        xp = array_module(x)
        if self.frozen:
            return _multiply_in_place(self.workers, x, self.mask)
        # The draw is one sequential stream (the same for any number of parts); the mask from it
        # and the product are made by parts.
        u = dropout_uniforms(self.rng, x.shape, xp)
        mask = self.mask = self._buffer("mask", x.shape, xp, x.dtype)

        def rows(r):
            mask_from_uniforms(u[r], self.keep, mask[r], 1.0 if self.scaling == "test" else None)
            xp.multiply(x[r], mask[r], out=x[r])
        self.workers.over(rows, x.shape[0], cut=large(x))
        return x

    def backward(self, gy, need_gx=True):
        if not self.active:
            return gy
        return _multiply_in_place(self.workers, gy, self.mask)


def _multiply_in_place(workers, a, mask):
    """``a *= mask`` (by row parts when large); returns ``a``."""
    xp = array_module(a)
    workers.over(lambda r: xp.multiply(a[r], mask[r], out=a[r]), a.shape[0], cut=large(a))
    return a
