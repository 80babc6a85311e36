"""A multilayer perceptron built from a spec such as ``784-1200-1200-10``."""

import numpy as np

from .errors import UserError
from .layers import INITS, Centre, Dense, Dropout, ReLU

INPUTS = {  # pixels as the network sees them
    "unit": "features as given: pixels / 255 in [0, 1]",
    "centered": "2x - 1 in [-1, 1] before input dropout, as torchvision's Normalize((0.5,), (0.5,))"}


def parse_arch(spec, n_in=None, n_out=None):
    """``"784-1200-1200-10"`` -> ``[784, 1200, 1200, 10]``.

    Raises :class:`UserError` for a malformed spec or, when given, a first or
    last width other than ``n_in`` / ``n_out`` (the data's).
    """
    parts = str(spec).split("-")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"architecture {spec!r} is malformed: expected widths joined by '-', "
                        "such as 784-1200-1200-10") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise UserError(f"architecture {spec!r} is malformed: expected at least two positive widths, "
                        "such as 784-800-800-10")
    if n_in is not None and sizes[0] != n_in:
        raise UserError(f"architecture {spec!r} starts with {sizes[0]}, but the data has {n_in} inputs")
    if n_out is not None and sizes[-1] != n_out:
        raise UserError(f"architecture {spec!r} ends with {sizes[-1]}, but the data has {n_out} classes")
    return sizes


class Network:
    """Dense layers with ReLU between them and optional dropout.

    Layout for ``784-1200-1200-10`` with dropout (0.2, 0.5)::

        Dropout(0.2) Dense(784,1200) ReLU Dropout(0.5) Dense(1200,1200) ReLU Dropout(0.5) Dense(1200,10)

    Dropout layers with rate 0 are left out; with ``inputs="centered"`` a :class:`Centre` layer
    comes first.  ``forward`` returns the logits.

    Args:
        sizes: widths, e.g. ``[784, 1200, 1200, 10]``.
        backend: a :class:`nnkd.backend.Backend`.
        seed: seeds the host generator that draws the initial weights.
        dropout_input, dropout_hidden: dropout rates in [0, 1).
        init_std: standard deviation of the initial weights (paper: 0.01).
        init: "normal" (N(0, init_std^2) weights, zero biases) or "uniform"
            (U(-1/sqrt(fan-in), 1/sqrt(fan-in)) weights and biases, PyTorch's default).
        inputs: "unit" (the features as given) or "centered" (a :class:`Centre` layer
            first maps [0, 1] pixels to [-1, 1], before input dropout).
        dropout_scaling: "train" (inverted dropout) or "test" (the paper's); see
            :class:`~nnkd.layers.Dropout`.
        dtype: float32 for training, float64 for gradient checks.
    """

    def __init__(self, sizes, backend, seed=0, dropout_input=0.0, dropout_hidden=0.0,
                 init_std=0.01, dtype=np.float32, init="normal", inputs="unit", dropout_scaling="train"):
        if inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
        self.sizes = list(sizes)
        self.backend = backend
        self.dtype = np.dtype(dtype)
        self.inputs = inputs
        self.dropout_scaling = dropout_scaling
        host_rng = np.random.default_rng(seed)
        self.layers = [Centre()] if inputs == "centered" else []
        self.dense = []
        self.dropouts = []
        # the dropout rate in front of each dense layer
        self.dropout_rates = [dropout_input] + [dropout_hidden] * (len(sizes) - 2)
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            rate = self.dropout_rates[i]
            if rate > 0:
                self.dropouts.append(Dropout(rate, dropout_scaling))
                self.layers.append(self.dropouts[-1])
            dense = Dense.init(n_in, n_out, backend, host_rng, std=init_std, dtype=dtype, scheme=init)
            self.dense.append(dense)
            self.layers.append(dense)
            if i < len(sizes) - 2:
                self.layers.append(ReLU())

    @classmethod
    def from_settings(cls, settings, backend, dtype=np.float32):
        """A freshly initialized network as ``settings`` describe it (any object with ``arch``,
        ``seed``, ``dropout_input``, ``dropout_hidden`` and ``init_std``, and optionally
        ``init``, ``inputs`` and ``dropout_scaling``, such as a :class:`~nnkd.config.TrainConfig`)."""
        return cls(parse_arch(settings.arch), backend, seed=settings.seed,
                   dropout_input=settings.dropout_input, dropout_hidden=settings.dropout_hidden,
                   init_std=settings.init_std, dtype=dtype, init=getattr(settings, "init", "normal"),
                   inputs=getattr(settings, "inputs", "unit"),
                   dropout_scaling=getattr(settings, "dropout_scaling", "train"))

    def set_workers(self, workers):
        """Run the layers' large operations by parts on ``workers`` (see
        :mod:`nnkd.parallel`; :data:`~nnkd.parallel.SERIAL` for whole operations)."""
        for layer in self.layers:
            layer.workers = workers

    def set_rng(self, rng):
        """The generator that dropout masks are drawn from (one per epoch in training)."""
        for d in self.dropouts:
            d.rng = rng

    def forward(self, x, train=False):
        """x: ``(B, sizes[0])`` -> logits ``(B, sizes[-1])``.

        In training the first layer may work in place on ``x`` (input dropout):
        pass a buffer you do not need afterwards.
        """
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, g):
        """Back-propagate ``g`` = dLoss/dlogits ``(B, sizes[-1])``, accumulating into the
        parameters' gradients.  ``g`` may be overwritten."""
        first = self.dense[0]
        for layer in reversed(self.layers):
            g = layer.backward(g, need_gx=layer is not first)
            if layer is first:
                break

    @property
    def params(self):
        """``[(name, Parameter)]`` in order: ``W0, b0, W1, b1, ...``."""
        out = []
        for i, d in enumerate(self.dense):
            out += [(f"W{i}", d.W), (f"b{i}", d.b)]
        return out

    def zero_grad(self):
        for _, p in self.params:
            p.zero_grad()

    def n_params(self):
        return sum(int(p.data.size) for _, p in self.params)

    def state(self):
        """Parameters as host NumPy arrays, by name (for checkpoints)."""
        return {name: self.backend.to_host(p.data) for name, p in self.params}

    def load_state(self, arrays):
        """Copy host arrays (by name, as from :meth:`state`) into the parameters."""
        for name, p in self.params:
            p.data[...] = self.backend.asarray(arrays[name])

    def plain_layers(self):
        """``[(W, b), ...]`` (host, float64) of the plain network ``relu(x @ W + b)`` chain that
        computes this one's evaluation logits from the features as given: a centring layer and
        the dropout scaling of ``dropout_scaling="test"`` folded into the weights."""
        layers = [(self.backend.to_host(d.W.data).astype(np.float64),
                   self.backend.to_host(d.b.data).astype(np.float64)) for d in self.dense]
        for i, rate in enumerate(self.dropout_rates):
            if rate > 0 and self.dropout_scaling == "test":  # (keep x) @ W == x @ (keep W)
                layers[i] = ((1.0 - rate) * layers[i][0], layers[i][1])
        if self.inputs == "centered":  # (2x - 1) @ W0 + b0 == x @ (2 W0) + (b0 - sum of W0's rows)
            W0, b0 = layers[0]
            layers[0] = (2 * W0, b0 - W0.sum(axis=0))
        return layers

    def predict_logits(self, X, batch_size=10000):
        """Logits for every row of ``X`` (on the backend), evaluation mode, in large batches."""
        self._check_rows(X)
        xp = self.backend.xp
        out = xp.empty((X.shape[0], self.sizes[-1]), dtype=self.dtype)
        for i in range(0, X.shape[0], batch_size):
            out[i:i + batch_size] = self.forward(X[i:i + batch_size], train=False)
        return out

    def _check_rows(self, X):
        """The rows to predict on: a 2-D float array of the network's backend, one column per input."""
        n = self.sizes[0]
        if not isinstance(X, self.backend.xp.ndarray):
            how = " (backend.asarray(X))" if self.backend.is_gpu else ""
            raise UserError(f"X is a {type(X).__name__}: give a {self.backend.name} array of shape (examples, "
                            f"{n}){how}")
        if X.ndim != 2 or X.shape[1] != n:
            raise UserError(f"X has shape {X.shape}: the model takes rows of {n} features, shape (examples, {n})")
        if X.dtype.kind != "f":
            how = "X / np.float32(255) for pixels" if X.dtype == np.uint8 else "X.astype(np.float32)"
            raise UserError(f"X is {X.dtype}: give float32 features ({how})")
        xp = self.backend.xp
        bad = xp.flatnonzero(~xp.isfinite(X).all(axis=1))
        if bad.size:
            raise UserError(f"X holds NaN or infinite values in {bad.size} row(s) (the first is row "
                            f"{int(bad[0])}): a model cannot classify them; fix or drop those rows")

    def predict(self, X, batch_size=10000):
        """The predicted class (int64) of every row of ``X`` (on the backend): the arg-max of its logits."""
        return self.predict_logits(X, batch_size).argmax(axis=1)
