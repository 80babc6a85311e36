"""An ONNX model run by onnxruntime: the session, its signature checked against the data, and
its logits (:class:`OnnxModel`).  :class:`nnkd.teachers.OnnxTeacher` makes one a teacher.

The model's input is what nnkd's networks take: one float32 tensor ``[N, n_features]``,
the pixels divided by 255 and flattened row by row (``[N, 784]`` for MNIST); ``N`` may be
symbolic or fixed (a fixed batch size is run in batches of that size, the last one padded).
A network that wants images (``[N, 1, 28, 28]``) reshapes inside its graph.  Its first
output is ``[N, n_classes]``, float32 (or float64), logits, or probabilities when
``--teacher-outputs probabilities`` says so: their logarithm (``log(max(p, 1.2e-38))``) is
used, which is the logits up to a constant per row that every softmax ignores, so the
student's temperature applies as to logits.

Everything is checked before any work, and each problem is one :class:`UserError` line:
a file onnxruntime cannot open, an input or output of another width, a dynamic or odd
shape, probabilities without the flag (rows of non-negative values summing to 1 on the
first :data:`PROBE` training images), values that are not finite.  onnxruntime is the
optional ``onnx`` extra, imported only here.
"""

import os
import sys
from pathlib import Path

import numpy as np

from .errors import UserError
from .install import extra_hint

ONNX_SUFFIX = ".onnx"
OUTPUTS = ("logits", "probabilities")
PROBE = 256            # training images run through an ONNX model before any work
BATCH = 1000           # images per onnxruntime call (when the batch dimension is free)
P_FLOOR = np.finfo(np.float32).tiny   # log(p) of a probability that underflowed to 0: -87.3
SUM_TOLERANCE = 1e-3   # rows summing to 1 within this are probabilities
FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


def is_onnx(path):
    """Whether a ``--teacher`` path names an ONNX model (rather than an nnkd checkpoint)."""
    return bool(path) and Path(path).suffix.lower() == ONNX_SUFFIX


def env_threads(environ=os.environ, name="OMP_NUM_THREADS"):
    """The thread count that ``name`` sets for onnxruntime: a positive whole number, else 0
    (onnxruntime's default), with a one-line note on stderr when the value is something else
    (OpenMP's ``4,2``, a word)."""
    text = environ.get(name, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    if text:
        print(f"note: {name}={text!r} is not a positive whole number; onnxruntime uses its default "
              "number of threads", file=sys.stderr)
    return 0


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("distilling from an ONNX model needs onnxruntime, which is not installed: "
                        f"{extra_hint('onnx')}") from None
    return onnxruntime


def _shape_text(shape):
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _first_line(exc):
    text = str(exc).strip().splitlines()
    line = text[-1] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


class OnnxModel:
    """An ONNX model, checked against the data's ``n_features`` and ``n_classes``:
    :meth:`predict_logits` (backend arrays in and out), ``batch`` (the images of one
    onnxruntime call).  ``outputs``: ``"logits"`` or ``"probabilities"`` (what the model's
    output is)."""

    def __init__(self, path, backend, n_features, n_classes, outputs="logits"):
        ort = _import_ort()
        self.path, self.backend, self.outputs = Path(path), backend, outputs
        self.n_classes = n_classes
        if not self.path.is_file():
            raise UserError(f"the teacher {self.path} does not exist" +
                            (" (it is a folder)" if self.path.is_dir() else "") + ": give an ONNX model file")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # onnxruntime's warnings are not the user's business
        opts.intra_op_num_threads = env_threads()
        providers = ["CPUExecutionProvider"]
        if backend.is_gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.runtime = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types, all one kind here
            raise UserError(f"onnxruntime cannot open the teacher {self.path} ({_first_line(exc)}): give "
                            "an ONNX model file") from None
        self.batch, self.input, self.output = self._check_signature(n_features, n_classes)

    def _check_signature(self, n_features, n_classes):
        """``(batch size, input name, output name)``, or one line saying what does not fit."""
        where = f"the teacher {self.path.name}"
        inputs, outputs = self.runtime.get_inputs(), self.runtime.get_outputs()
        if len(inputs) != 1:
            raise UserError(f"{where} takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}): "
                            f"nnkd feeds one, float32 [N, {n_features}]")
        x, z = inputs[0], outputs[0]
        want = f"float32 [N, {n_features}] (the pixels / 255, flattened; a network that wants images " \
               "reshapes inside its graph)"
        if x.type != "tensor(float)":
            raise UserError(f"{where}: its input {x.name!r} is {x.type}, but nnkd feeds {want}")
        shape = [d if isinstance(d, int) and d > 0 else None for d in (x.shape or [])]
        if len(shape) != 2:
            raise UserError(f"{where}: its input {x.name!r} has shape {_shape_text(shape)}, but nnkd "
                            f"feeds {want}")
        if shape[1] is None:
            raise UserError(f"{where}: its input {x.name!r} has a dynamic feature dimension "
                            f"{_shape_text(shape)}: export it with a fixed width, [N, {n_features}]")
        if shape[1] != n_features:
            raise UserError(f"{where} takes {shape[1]} input features, but the data has {n_features}: "
                            f"nnkd feeds {want}")
        out = [d if isinstance(d, int) and d > 0 else None for d in (z.shape or [])]
        name = f"its output {z.name!r}" + (f" (the first of {len(outputs)})" if len(outputs) > 1 else "")
        if z.type not in FLOAT_TYPES:
            raise UserError(f"{where}: {name} is {z.type}, but a teacher outputs float logits "
                            f"[N, {n_classes}]")
        if len(out) != 2:
            raise UserError(f"{where}: {name} has shape {_shape_text(out)}, but a teacher outputs "
                            f"[N, {n_classes}] (one row of logits per image)")
        if out[1] is None:
            raise UserError(f"{where}: {name} has a dynamic class dimension {_shape_text(out)}: export "
                            f"it with a fixed width, [N, {n_classes}]")
        if out[1] != n_classes:
            raise UserError(f"{where} outputs {out[1]} classes, but the data has {n_classes}")
        return shape[0] or BATCH, x.name, z.name

    def _run(self, x):
        """The model's raw output on host float32 ``x`` ``(n, F)``, as float64 ``(n, C)``."""
        n, C = x.shape[0], self.n_classes
        out = np.empty((n, C), np.float64)
        fixed = self.runtime.get_inputs()[0].shape[0]
        for i in range(0, n, self.batch):
            xb = np.ascontiguousarray(x[i:i + self.batch])
            m = xb.shape[0]
            if isinstance(fixed, int) and m < fixed:  # a fixed batch size: pad the last batch
                xb = np.concatenate([xb, np.zeros((fixed - m, xb.shape[1]), np.float32)])
            try:
                z = self.runtime.run([self.output], {self.input: xb})[0]
            except Exception as exc:
                raise UserError(f"the teacher {self.path.name} fails on a batch of {xb.shape[0]} images "
                                f"({_first_line(exc)})") from None
            if z.shape != (xb.shape[0], C):
                raise UserError(f"the teacher {self.path.name} outputs shape {list(z.shape)} for "
                                f"{xb.shape[0]} images, not [{xb.shape[0]}, {C}]")
            out[i:i + m] = z[:m]
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        if bad:
            raise UserError(f"the teacher {self.path.name} outputs {bad} NaN or infinite values on {n} "
                            "images: it is damaged or diverged")
        return out

    def _to_logits(self, p):
        if self.outputs == "probabilities":
            return np.log(np.maximum(p, P_FLOOR))
        return p

    def probe(self, x):
        """Run the model on host float32 images ``x`` and refuse what its output says is
        wrong (NaN, probabilities without the flag, the flag without probabilities)."""
        p = self._run(x)
        sums = p.sum(axis=1)
        probabilities = bool((p >= 0).all() and (np.abs(sums - 1) <= SUM_TOLERANCE).all())
        if probabilities and self.outputs == "logits":
            raise UserError(f"the teacher {self.path.name} outputs probabilities (every row is >= 0 and "
                            "sums to 1), but distillation softens logits at its own temperature: say so "
                            "with `teacher_outputs` probabilities (their log is used), or export the logits")
        if not probabilities and self.outputs == "probabilities":
            raise UserError(f"`teacher_outputs` is probabilities, but the teacher {self.path.name}'s rows are "
                            f"not (values from {p.min():.3g}, row sums {sums.min():.4g} to {sums.max():.4g}): "
                            "leave it at logits")

    def predict_logits(self, X, batch_size=None):
        """Logits ``(n, C)`` float32 on the backend for backend images ``X`` ``(n, F)``."""
        z = self._to_logits(self._run(np.asarray(self.backend.to_host(X), np.float32)))
        return self.backend.asarray(z.astype(np.float32))

    def n_params(self):
        """The number of values in the model's initializers (None without the onnx package)."""
        try:
            import onnx
            model = onnx.load(str(self.path), load_external_data=False)
        except Exception:
            return None
        return int(sum(np.prod(t.dims, dtype=np.int64) for t in model.graph.initializer))

    def describe(self):
        x, z = self.runtime.get_inputs()[0], self.runtime.get_outputs()[0]
        return (f"{self.path} (ONNX: {x.name} {_shape_text(x.shape)} -> {z.name} {_shape_text(z.shape)}, "
                f"{self.outputs}, onnxruntime {self.runtime.get_providers()[0]})")
