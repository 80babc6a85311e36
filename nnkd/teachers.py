"""Teachers from outside nnkd: an ONNX model run by onnxruntime, or logits computed elsewhere.

``distill --teacher model.onnx`` (a file whose name ends in ``.onnx``) and ``distill
--teacher-logits FILE.npy`` give the distilled student the same :class:`~nnkd.transfer.TeacherLogits`
an nnkd teacher gives it: the logits of every training image, for every shift of a
jittered transfer set, cached in the run's ``teacher_logits.npy``.

The ONNX model's input is what nnkd's networks take: one float32 tensor ``[N, n_features]``,
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

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from . import transfer
from .data import to_float32
from .errors import UserError
from .files import atomic_write, read_array
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


class OnnxTeacher:
    """An ONNX model as a teacher, checked against the data's ``n_features`` and ``n_classes``.

    It offers what :func:`nnkd.transfer.compute` and :func:`nnkd.train.count_errors` use of
    a network: ``sizes``, ``backend``, ``predict_logits`` and ``forward`` (backend arrays
    in and out).  ``outputs``: ``"logits"`` or ``"probabilities"`` (what the model's output is).
    """

    def __init__(self, path, backend, n_features, n_classes, outputs="logits"):
        ort = _import_ort()
        self.path, self.backend, self.outputs = Path(path), backend, outputs
        self.sizes, self.dtype = [n_features, n_classes], np.float32
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
        self.rows_per_call = self.batch  # nnkd.transfer.compute checks for a stop between batches

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
        n, C = x.shape[0], self.sizes[1]
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

    def forward(self, X, train=False):
        return self.predict_logits(X)

    def n_params(self):
        """The number of values in the model's initializers (None without the onnx package)."""
        try:
            import onnx
            model = onnx.load(str(self.path), load_external_data=False)
        except Exception:
            return None
        return int(sum(np.prod(t.dims, dtype=np.int64) for t in model.graph.initializer))

    def row(self, data):
        """The teacher's row of the results table."""
        from .train import count_errors
        return {"test_errors": count_errors(self, data["x_test"], data["y_test"]), "params": self.n_params(),
                "epochs": None, "seconds": None, "source": str(self.path), "kind": "onnx",
                "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest(), "outputs": self.outputs,
                "label": f"teacher {self.path.name} (ONNX, onnxruntime)"}

    def describe(self):
        x, z = self.runtime.get_inputs()[0], self.runtime.get_outputs()[0]
        return (f"{self.path} (ONNX: {x.name} {_shape_text(x.shape)} -> {z.name} {_shape_text(z.shape)}, "
                f"{self.outputs}, onnxruntime {self.runtime.get_providers()[0]})")

    def transfer_logits(self, data, path, max_shift, log, stop):
        return transfer.compute(self, data, path, max_shift, log, stop)


class LogitsFile:
    """Teacher logits computed elsewhere, read from ``path`` (``.npy``): ``logits`` are host
    :class:`~nnkd.transfer.TeacherLogits`, or None when the run folder's cache is read instead."""

    def __init__(self, path, logits, backend):
        self.path, self.logits, self.backend = Path(path), logits, backend

    def row(self, data):
        return {"test_errors": None, "params": None, "epochs": None, "seconds": None,
                "source": str(self.path), "kind": "logits", "label": f"teacher logits from {self.path.name}"}

    def describe(self):
        return f"logits computed elsewhere, {self.path}"

    def transfer_logits(self, data, path, max_shift, log, stop):
        """The logits on the backend, copied into the run's cache ``path`` (read from it when it exists)."""
        n, C = data["x_train"].shape[0], data["n_classes"]
        if Path(path).exists() or self.logits is None:
            log(f"teacher logits: cached in {path}")
            return transfer.read(path, self.backend, n, C, max_shift)
        z = self.logits
        z.check_against(n, C)
        atomic_write(path, lambda f: np.save(f, z.on_disk()))
        log(f"teacher logits: {z.logits.shape[0]} x {n} images from {self.path} -> {path}")
        return transfer.TeacherLogits(self.backend.asarray(z.logits), z.max_shift)


def read_logits(path, n_images, n_classes, max_shift):
    """Host :class:`~nnkd.transfer.TeacherLogits` of ``.npy`` file ``path``, or one line saying
    how they do not fit ``n_images`` training images of ``n_classes`` classes, jittered by up to
    ``max_shift`` px."""
    advice = "give the logits of the training images as a .npy file (see docs/any-teacher.md)"
    want = transfer.file_shape(n_images, n_classes, max_shift)

    def check(shape, dtype):  # from the header, before any data is read; again on the array
        n_shifts = (2 * max_shift + 1) ** 2
        if dtype.kind != "f":
            raise UserError(f"{path} holds {dtype} values: teacher logits are floats")
        if len(shape) not in (2, 3):
            raise UserError(f"{path} holds an array of shape {list(shape)}: teacher logits are {list(want)}")
        got_shifts = shape[0] if len(shape) == 3 else 1
        if got_shifts != n_shifts:
            need = "one" if n_shifts == 1 else f"{n_shifts}, in the order of nnkd.batches.shifts({max_shift})"
            raise UserError(f"{path} holds logits for {got_shifts} shift(s) of each image (shape {list(shape)}), "
                            f"but `student.transfer_jitter` {max_shift} needs {need}: shape {list(want)}")
        if shape[-2] != n_images:
            raise UserError(f"{path} holds logits for {shape[-2]} images, but the transfer set has {n_images} "
                            "training images (after `train_limit` and `validation`)")
        if shape[-1] != n_classes:
            raise UserError(f"{path} holds logits for {shape[-1]} classes, but the data has {n_classes}")

    # not .npy, damaged, of the wrong shape (from its header), NaN or infinite
    a = read_array(path, "teacher logits", advice=advice, check_header=check)
    check(a.shape, a.dtype)
    z = a.astype(np.float32)
    if not np.isfinite(z).all():
        raise UserError(f"{path} holds values beyond float32's range: teacher logits are float32")
    return transfer.TeacherLogits(z, max_shift)


def open_teacher(spec, ds, backend, cache=None):
    """The teacher of ``spec`` when it is an ONNX model or a logits file, checked against the
    data ``ds`` before any work: ``(OnnxTeacher or LogitsFile, None)``.  ``cache``: the run's
    ``teacher_logits.npy`` when resuming (a logits file is then not read again)."""
    n_train = spec.n_train(ds.train_features.shape[0])
    if spec.teacher_logits:
        if cache is not None and Path(cache).exists():
            return LogitsFile(spec.teacher_logits, None, backend), None
        z = read_logits(spec.teacher_logits, n_train, ds.n_classes, spec.student.transfer_jitter)
        return LogitsFile(spec.teacher_logits, z, backend), None
    teacher = OnnxTeacher(spec.teacher_checkpoint, backend, ds.n_features, ds.n_classes, spec.teacher_outputs)
    teacher.probe(to_float32(ds.train_features[:min(PROBE, n_train)]))
    return teacher, None
