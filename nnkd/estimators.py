"""scikit-learn estimators (the ``sklearn`` extra): :class:`NNKDClassifier`, a network trained
on hard labels, and :class:`DistilledClassifier`, a network trained on a teacher's soft targets
at a temperature.  Both train in memory (no run folder unless ``run_dir`` names one) with
:func:`nnkd.train.train`, and hold in ``GridSearchCV``, ``cross_val_score`` and ``Pipeline``.

Features are used as given (pixels / 255 for MNIST); a ``Pipeline`` may scale other data first.
"""

import numbers
from dataclasses import asdict

import numpy as np

from .errors import UserError
from .install import extra_hint

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:
    raise ImportError("nnkd's scikit-learn estimators need scikit-learn 1.6 or later, which is not "
                      f"installed: {extra_hint('sklearn')}") from None


class NNKDClassifier(ClassifierMixin, BaseEstimator):
    """A network trained on hard labels by nnkd (momentum SGD, dropout, max-norm as in the paper).

    Args:
        hidden_layer_sizes: the widths of the hidden layers, e.g. ``(800, 800)``.
        epochs, batch_size, lr (lr0), lr_schedule (``cosine``, ``exp``, ``constant``),
        momentum, dropout_input, dropout_hidden, max_norm (0: off), inputs (``unit`` or
        ``centered``): as :class:`nnkd.TrainConfig` (``batch_size`` is cut to the number of
        training rows).
        random_state: the seed (a whole number): the same seed and data give the same weights.
        backend: ``"numpy"`` or ``"cupy"``.
        run_dir: None (default) trains in memory; a folder keeps the checkpoint and metrics
            there (a later fit with the same settings continues from it).

    After ``fit``: ``classes_``, ``n_features_in_``, ``network_`` (an nnkd network) and
    ``summary_``.  ``predict_logits(X)`` gives the logits, ``predict_proba(X)`` their softmax.
    """

    def __init__(self, hidden_layer_sizes=(100,), epochs=20, batch_size=100, lr=0.1, lr_schedule="cosine",
                 momentum=0.9, dropout_input=0.0, dropout_hidden=0.0, max_norm=0.0, inputs="unit",
                 random_state=0, backend="numpy", run_dir=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.dropout_input = dropout_input
        self.dropout_hidden = dropout_hidden
        self.max_norm = max_norm
        self.inputs = inputs
        self.random_state = random_state
        self.backend = backend
        self.run_dir = run_dir

    def _config(self, n_features, n_classes, n_rows, **distillation):
        from .config import TrainConfig
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, numbers.Integral) else list(hidden)
        seed = self.random_state
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise ValueError(f"random_state must be a whole number (nnkd's seed), got {seed!r}")
        epochs = self.epochs
        return TrainConfig(
            arch="-".join(str(n) for n in [n_features, *hidden, n_classes]), epochs=epochs,
            batch_size=min(self.batch_size, n_rows) if isinstance(self.batch_size, numbers.Integral) else self.batch_size,
            lr=self.lr, lr_schedule=self.lr_schedule, momentum_start=self.momentum, momentum_end=self.momentum,
            dropout_input=self.dropout_input, dropout_hidden=self.dropout_hidden, max_norm=self.max_norm,
            inputs=self.inputs, seed=int(seed), eval_every=epochs, checkpoint_every=epochs, **distillation)

    def _labels(self, y):
        """``(classes_, labels 0..C-1)`` of ``y`` (hard labels)."""
        check_classification_targets(y)
        classes, encoded = np.unique(y, return_inverse=True)
        return classes, encoded.astype(np.int64)

    def _fit(self, X, y, teacher_logits=None, classes=None, **distillation):
        from .backend import get_backend
        from .train import train
        if classes is None:
            classes, y = self._labels(y)
        backend = get_backend(self.backend)
        cfg = self._config(X.shape[1], len(classes), X.shape[0], **distillation)
        x = backend.asarray(np.ascontiguousarray(X, np.float32))
        labels = backend.asarray(y)
        data = {"x_train": x, "y_train": labels, "x_test": x[:1], "y_test": labels[:1], "image_shape": None}
        try:
            net, summary = train(cfg, backend, data, self.run_dir, teacher_logits=teacher_logits)
        except UserError as exc:  # a setting out of range: scikit-learn's kind of error
            raise ValueError(str(exc)) from None
        self.classes_, self.network_, self.summary_ = classes, net, summary
        self._network_config = asdict(cfg)
        return self

    def fit(self, X, y):
        """Train on rows ``X`` (n, features) and labels ``y``; returns the estimator."""
        X, y = validate_data(self, X, y, dtype=(np.float32, np.float64))
        return self._fit(X, y)

    def predict_logits(self, X):
        """The logits ``(n, classes)`` (float32) of rows ``X``, columns in the order of ``classes_``."""
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=(np.float32, np.float64))
        net = self.network_
        return np.asarray(net.backend.to_host(net.predict_logits(net.backend.asarray(X.astype(np.float32)))))

    def predict_proba(self, X):
        """``softmax(logits)`` of rows ``X``: ``(n, classes)``, each row summing to 1."""
        z = self.predict_logits(X).astype(np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X):
        """The class of each row of ``X``: the arg-max of its logits, as a label of ``classes_``."""
        index = self.predict_logits(X).argmax(axis=1)
        return self.classes_[index]

    def __getstate__(self):
        """A fitted estimator pickles as its settings, config and weights (a network holds its
        backend's module, which does not pickle)."""
        state = dict(super().__getstate__())
        net = state.pop("network_", None)
        if net is not None:
            state["_network"] = (net.backend.name, net.sizes, self._network_config, net.state())
        return state

    def __setstate__(self, state):
        from .backend import get_backend
        from .config import TrainConfig
        from .network import Network
        saved = state.pop("_network", None)
        super().__setstate__(state)
        if saved is not None:
            backend, _, cfg, arrays = saved
            self.network_ = Network.from_settings(TrainConfig(**cfg), get_backend(backend))
            self.network_.load_state(arrays)


class DistilledClassifier(NNKDClassifier):
    """A network trained on a teacher's soft targets at ``temperature`` (Hinton et al. 2015).

    Args:
        teacher: what gives the soft targets, on the rows given to ``fit``:
            a shipped model's name (``"public-teacher"``) or a checkpoint's path; an ONNX
            model's path (``.onnx``, outputs logits); a fitted estimator (an nnkd one gives its
            logits, any other classifier the log of its ``predict_proba``); an array of logits
            ``(n, classes)`` for exactly the rows given to ``fit`` (not for cross-validation,
            which fits on parts of them); or None (default): a :class:`NNKDClassifier` of the
            same settings, trained on the hard labels first.
        temperature: T, the softmax temperature of the teacher's and the student's outputs.
        soft_weight, hard_weight: the weights of ``T^2`` times the soft cross-entropy and of
            the hard-label cross-entropy.
        The other arguments are :class:`NNKDClassifier`'s.

    With a teacher that is not an estimator, labels are class numbers 0 to C - 1 of its
    C outputs; with an estimator teacher, its ``classes_``.
    """

    def __init__(self, teacher=None, temperature=20.0, soft_weight=1.0, hard_weight=0.0,
                 hidden_layer_sizes=(100,), epochs=20, batch_size=100, lr=0.1, lr_schedule="cosine",
                 momentum=0.9, dropout_input=0.0, dropout_hidden=0.0, max_norm=0.0, inputs="unit",
                 random_state=0, backend="numpy", run_dir=None):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, epochs=epochs, batch_size=batch_size, lr=lr,
                         lr_schedule=lr_schedule, momentum=momentum, dropout_input=dropout_input,
                         dropout_hidden=dropout_hidden, max_norm=max_norm, inputs=inputs,
                         random_state=random_state, backend=backend, run_dir=run_dir)
        self.teacher = teacher
        self.temperature = temperature
        self.soft_weight = soft_weight
        self.hard_weight = hard_weight

    def fit(self, X, y):
        """Train on the teacher's logits for rows ``X`` (and labels ``y`` where ``hard_weight`` > 0)."""
        X, y = validate_data(self, X, y, dtype=(np.float32, np.float64))
        check_classification_targets(y)
        logits, classes = self._teacher_logits(X, y)
        if classes is None:  # the teacher's outputs are the classes 0 .. C-1
            classes = np.arange(logits.shape[1])
        known = np.isin(y, classes)
        if not known.all():
            raise ValueError(f"label {y[~known][0]!r} is not one of the teacher's classes "
                             f"({classes[0]!r} to {classes[-1]!r})")
        labels = np.searchsorted(classes, y).astype(np.int64)
        return self._fit(X, labels, teacher_logits=logits, classes=classes, temperature=self.temperature,
                         soft_weight=self.soft_weight, hard_weight=self.hard_weight)

    def _teacher_logits(self, X, y):
        """``(logits (n, C) float32, classes or None)`` of the teacher on rows ``X``."""
        teacher = self.teacher
        if teacher is None:
            params = NNKDClassifier().get_params()
            teacher = NNKDClassifier(**{k: v for k, v in self.get_params().items() if k in params})
        if isinstance(teacher, BaseEstimator):
            try:
                check_is_fitted(teacher)
            except NotFittedError:  # e.g. cloned by GridSearchCV: trained on the rows given here
                teacher = clone(teacher).fit(X, y)
            self.teacher_ = teacher
            if hasattr(teacher, "predict_logits"):
                z = teacher.predict_logits(X)
            else:
                z = np.log(np.clip(teacher.predict_proba(X), 1e-30, None))
            return np.asarray(z, np.float32), np.asarray(teacher.classes_)
        if isinstance(teacher, (str, bytes)) or hasattr(teacher, "__fspath__"):
            return self._file_logits(str(teacher), X, y), None
        z = np.asarray(teacher, np.float32)
        if z.ndim != 2 or z.shape[0] != X.shape[0]:
            raise ValueError(f"teacher logits of shape {z.shape}: give (n, classes) for the {X.shape[0]} rows "
                             "given to fit, or a teacher model (a shipped name, a file, a fitted estimator)")
        return z, None

    def _file_logits(self, teacher, X, y):
        from .backend import get_backend
        from .checkpoint import load_model
        from .install import find_model
        from .onnx_model import OnnxModel
        from .teachers import is_onnx
        backend = get_backend(self.backend)
        x = backend.asarray(np.ascontiguousarray(X, np.float32))
        try:
            if is_onnx(teacher):  # its signature is checked against X's width
                net = OnnxModel(teacher, backend, X.shape[1], int(np.max(y)) + 1 if np.issubdtype(
                    np.asarray(y).dtype, np.integer) else 0)
            else:
                net, _ = load_model(find_model(teacher, "teacher"), backend)
            if not is_onnx(teacher) and net.sizes[0] != X.shape[1]:
                raise UserError(f"the teacher {teacher} takes {net.sizes[0]} features, X has {X.shape[1]}")
            return np.asarray(backend.to_host(net.predict_logits(x)), np.float32)
        except UserError as exc:
            raise ValueError(str(exc)) from None
