"""Teachers: to a distilled student, a source of logits for the transfer set's images.

One small interface, :class:`Teacher`, covers every kind:

- :class:`NetworkTeacher`: an nnkd checkpoint, or a shipped model's name;
- :class:`OnnxTeacher`: an ONNX model run by onnxruntime (:mod:`nnkd.onnx_model`);
- :class:`LogitsFile`: logits computed elsewhere, a ``.npy`` file (see docs/any-teacher.md);
- :class:`Ensemble`: several of these, whose soft targets are the mean of the members'
  distributions at T (``arithmetic``, the paper's) or the mean of their logits (``geometric``).

A teacher gives its logits for every shift of the transfer set's images
(:meth:`Teacher.logits`, a :class:`~nnkd.transfer.TeacherLogits`), its own test errors where it
can (:meth:`Teacher.rows`), and its identity (:meth:`Teacher.identity`: its kind, its file and
that file's SHA-256), which ``run.json`` records and ``--resume`` checks: a teacher's file
that has changed since the run began is refused, and one that is gone is not needed when the
run's ``teacher_logits.npy`` holds its logits.  :func:`open_teacher` builds the teacher a
:class:`~nnkd.config.RunSpec` names, checked against the data before any work.
"""

import hashlib
import json
from pathlib import Path

import numpy as np

from . import transfer
from .data import to_float32
from .errors import UserError
from .files import read_json
from .install import find_model

ONNX_SUFFIX = ".onnx"
LOGITS_SUFFIX = ".npy"
MEANS = ("arithmetic", "geometric")
CACHE = "teacher_logits.npy"   # a run's (or a sweep's) teacher logits
BATCH = 10000                  # test images a call
LOGITS_ADVICE = "give the logits of the training images as a .npy file (see docs/any-teacher.md)"


def is_onnx(path):
    """Whether a ``--teacher`` path names an ONNX model."""
    return bool(path) and Path(path).suffix.lower() == ONNX_SUFFIX


def is_logits_file(path):
    """Whether a ``--teacher`` path names a file of logits (``.npy``)."""
    return bool(path) and Path(path).suffix.lower() == LOGITS_SUFFIX


def file_sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Teacher:
    """What every teacher offers.  ``source``: the file it was built from; ``backend``: where
    its logits go; ``sha256``: the file's SHA-256."""

    kind = "teacher"
    config = None          # the training settings, where known (results.json)

    def __init__(self, source, backend, sha256):
        self.source, self.backend, self.sha256 = Path(source), backend, sha256

    @property
    def name(self):
        """A short name: the file's, or its folder's for a ``checkpoint.npz``."""
        s = self.source
        return s.parent.name if s.name == "checkpoint.npz" and s.parent.name else s.name

    @property
    def arch(self):
        return self.name

    def identity(self):
        """What ``run.json`` records and ``--resume`` checks."""
        return {"kind": self.kind, "source": str(self.source), "teacher_sha256": self.sha256}

    def members(self):
        return [self]

    def predict(self, X):
        """Logits ``(n, C)`` on the backend for backend rows ``X``, or None where the teacher
        cannot give them (a logits file)."""
        return None

    def logits(self, data, max_shift, log=print, stop=None):
        """:class:`~nnkd.transfer.TeacherLogits` of ``data["x_train"]`` on the backend, for every
        shift up to ``max_shift`` px; ``stop`` is checked between calls."""
        raise NotImplementedError

    def test_errors(self, data):
        z = self.predict(data["x_test"])
        if z is None:
            return None
        return int(self.backend.xp.count_nonzero(z.argmax(axis=1) != data["y_test"]))

    def row(self, data):
        """This teacher's row of the results table."""
        return {"test_errors": self.test_errors(data), "params": None, "epochs": None, "seconds": None,
                "source": str(self.source), "kind": self.kind, "sha256": self.sha256, "arch": self.arch,
                "label": f"teacher {self.name}"}

    def rows(self, data):
        """``{role: row}`` of the results table (one teacher: ``teacher``)."""
        return {"teacher": self.row(data)}

    def describe(self):
        return str(self.source)


class NetworkTeacher(Teacher):
    """An nnkd network: ``(net, meta)`` of :func:`nnkd.checkpoint.load_model` of ``source``."""

    kind = "checkpoint"

    def __init__(self, net, meta, source, sha256=None):
        super().__init__(source, net.backend, sha256 or file_sha256(source))
        self.net, self.meta, self.config = net, meta, meta["config"]

    @classmethod
    def open(cls, source, backend, ds):
        """The checkpoint (or shipped model's name) ``source``, refused unless it was trained on
        the data ``ds`` (a :class:`~nnkd.data.Dataset`) and takes its inputs and classes."""
        from .checkpoint import load_model
        path = find_model(source, "teacher")
        net, meta = load_model(path, backend, data_checksum=ds.checksum, dataset=ds.name)
        if (net.sizes[0], net.sizes[-1]) != (ds.n_features, ds.n_classes):
            raise UserError(f"the teacher {path} is {'-'.join(map(str, net.sizes))}, but "
                            f"{ds.name} has {ds.n_features} inputs and {ds.n_classes} classes")
        return cls(net, meta, path)

    @property
    def arch(self):
        return "-".join(map(str, self.net.sizes))

    def predict(self, X):
        return self.net.predict_logits(X)

    def logits(self, data, max_shift, log=print, stop=None):
        return transfer.run(self.net.predict_logits, data, self.net.sizes[-1], self.backend, max_shift,
                            log, stop)

    def row(self, data):
        return dict(super().row(data), params=self.net.n_params(), epochs=self.meta["epoch"],
                    seconds=self.meta.get("seconds", 0.0), label=f"teacher {self.arch} (pretrained)")

    def describe(self):
        epochs = self.meta["epoch"]
        return f"{self.source} ({self.arch}, {epochs} epoch{'s' * (epochs != 1)})"


class OnnxTeacher(Teacher):
    """An ONNX model (:class:`nnkd.onnx_model.OnnxModel`) that has passed its probe."""

    kind = "onnx"

    def __init__(self, model, sha256=None):
        super().__init__(model.path, model.backend, sha256 or file_sha256(model.path))
        self.model = model

    @classmethod
    def open(cls, path, backend, ds, n_train, outputs="logits"):
        """The ONNX model ``path``, its signature checked against the data ``ds`` and its
        output against its first :data:`~nnkd.onnx_model.PROBE` training images."""
        from .onnx_model import PROBE, OnnxModel
        model = OnnxModel(path, backend, ds.n_features, ds.n_classes, outputs)
        model.probe(to_float32(ds.train_features[:min(PROBE, n_train)]))
        return cls(model)

    def identity(self):
        return dict(super().identity(), outputs=self.model.outputs)

    def predict(self, X):
        return self.model.predict_logits(X)

    def logits(self, data, max_shift, log=print, stop=None):  # a stop is seen within one batch
        return transfer.run(self.model.predict_logits, data, self.model.n_classes, self.backend, max_shift,
                            log, stop, chunk=self.model.batch)

    def row(self, data):
        return dict(super().row(data), params=self.model.n_params(), outputs=self.model.outputs,
                    label=f"teacher {self.name} (ONNX, onnxruntime)")

    def describe(self):
        return self.model.describe()


class LogitsFile(Teacher):
    """Teacher logits computed elsewhere, in ``source`` (``.npy``): ``host`` are its
    :class:`~nnkd.transfer.TeacherLogits` on the host, or None where the run's cache holds them."""

    kind = "logits"

    def __init__(self, source, backend, host, sha256=None):
        super().__init__(source, backend, sha256 or file_sha256(source))
        self.host = host

    def logits(self, data, max_shift, log=print, stop=None):
        z = self.host if self.host is not None else transfer.read(self.source, None, data["x_train"].shape[0], data["n_classes"],
                                       max_shift, advice=LOGITS_ADVICE)
        log(f"teacher logits: from {self.source}")
        return transfer.TeacherLogits(self.backend.asarray(z.logits), z.max_shift)

    def row(self, data):
        return dict(super().row(data), label=f"teacher logits from {self.name}")

    def describe(self):
        return f"logits computed elsewhere, {self.source}"


class Cached(Teacher):
    """A member of a resumed run whose file is gone: its identity as ``run.json`` recorded it;
    the run's ``teacher_logits.npy`` holds what it gave."""

    def __init__(self, record, backend):
        super().__init__(record["source"], backend, record.get("teacher_sha256"))
        self.record, self.kind = record, record.get("kind", "teacher")

    def identity(self):
        return dict(self.record)

    def logits(self, data, max_shift, log=print, stop=None):
        raise UserError(f"this run's teacher {self.source} is gone: put it back, or start a new run")

    def row(self, data):
        return dict(super().row(data), label=f"teacher {self.name} (gone; its logits were cached)")

    def describe(self):
        return f"{self.source} (gone; the run's cached logits stand for it)"


def mean_logits(parts, mean, temperature):
    """The ensemble's logits from its members' logits ``parts`` (an iterable of float arrays of
    one shape ``(..., C)``, NumPy or CuPy), computed in float64 and returned float32.

    ``arithmetic``: ``T * log(mean_i softmax(z_i / T))``, a log-sum-exp over the members of their
    max-subtracted log-softmax, so that softmax at T of the result is the mean of the members'
    distributions at T (to float32's rounding); the temperature is thus part of it.
    ``geometric``: ``mean_i z_i``, whose softmax at T is the normalized geometric mean of the
    members' distributions at T, whatever T.
    """
    from .backend import array_module
    from .losses import log_softmax
    acc, n = None, 0
    for z in parts:
        xp = array_module(z)
        z = z.astype(np.float64)
        if mean == "arithmetic":
            z = log_softmax(z, temperature)
            acc = z if acc is None else xp.logaddexp(acc, z, out=acc)
        else:
            acc = z if acc is None else xp.add(acc, z, out=acc)
        n += 1
    if mean == "arithmetic":
        return (temperature * (acc - np.log(n))).astype(np.float32)
    return (acc / n).astype(np.float32)


class Ensemble(Teacher):
    """Several teachers as one: ``mean`` (``arithmetic`` or ``geometric``, :func:`mean_logits`)
    of the ``parts`` at ``temperature`` (the distilled student's)."""

    kind = "ensemble"

    def __init__(self, parts, mean="arithmetic", temperature=1.0):
        if mean not in MEANS:
            raise UserError(f"ensemble mean {mean!r}: expected one of {', '.join(MEANS)}")
        if len(parts) < 2:
            raise UserError("an ensemble needs two teachers or more")
        self.parts, self.mean, self.temperature = list(parts), mean, float(temperature)
        super().__init__("ensemble", parts[0].backend, None)
        self.sha256 = hashlib.sha256(json.dumps(self._recipe(), sort_keys=True).encode()).hexdigest()

    def _recipe(self):
        recipe = {"mean": self.mean, "members": [p.identity() for p in self.parts]}
        if self.mean == "arithmetic":
            recipe["temperature"] = self.temperature
        return recipe

    @property
    def name(self):
        at = f" of the distributions at T={self.temperature:g}" if self.mean == "arithmetic" else " of the logits"
        return f"ensemble of {len(self.parts)} teachers, {self.mean} mean{at}"

    @property
    def arch(self):
        return "ensemble"

    def identity(self):
        return dict(self._recipe(), kind=self.kind, teacher_sha256=self.sha256)

    def members(self):
        return list(self.parts)

    def predict(self, X):
        z = [p.predict(X) for p in self.parts]
        return None if any(a is None for a in z) else mean_logits(z, self.mean, self.temperature)

    def logits(self, data, max_shift, log=print, stop=None):
        parts = (p.logits(data, max_shift, log, stop).logits for p in self.parts)
        return transfer.TeacherLogits(mean_logits(parts, self.mean, self.temperature), max_shift)

    def rows(self, data):
        rows = {}
        for i, p in enumerate(self.parts, 1):
            rows[f"teacher {i}"] = dict(p.row(data), label=f"teacher {i}: {p.name}" +
                                        (f" ({p.arch})" if p.arch != p.name else ""))
        rows["teacher"] = dict(self.row(data), source=None, label=self.name)
        return rows

    def describe(self):
        return self.name + "".join(f"\n  {i}. {p.describe()}" for i, p in enumerate(self.parts, 1))


def as_teacher(teacher, mean="arithmetic", temperature=1.0):
    """A :class:`Teacher` from a teacher, or from a list of them (an :class:`Ensemble`)."""
    if isinstance(teacher, (list, tuple)):
        parts = [as_teacher(t) for t in teacher]
        return parts[0] if len(parts) == 1 else Ensemble(parts, mean, temperature)
    if not isinstance(teacher, Teacher):
        raise UserError(f"a teacher is a nnkd.teachers.Teacher (e.g. from open_source), got {type(teacher).__name__}")
    return teacher


def recorded(folder):
    """``{source: identity}`` of the teachers that the settings file of run (or sweep) folder
    ``folder`` recorded (``teacher_identity``), or else the checkpoint whose SHA-256 and path a
    ``teacher.sha256`` file there holds."""
    folder = Path(folder)
    for name in ("run.json", "sweep.json"):
        if (folder / name).is_file():
            record = read_json(folder / name, "run settings").get("teacher_identity")
            if isinstance(record, dict):
                members = record.get("members", [record])
                return {m["source"]: m for m in members if isinstance(m, dict) and "source" in m}
    legacy = folder / "teacher.sha256"
    if legacy.is_file():
        digest, *source = legacy.read_text(errors="replace").split(maxsplit=1)
        return {source[0].strip(): {"kind": "checkpoint", "source": source[0].strip(),
                                    "teacher_sha256": digest}} if source else {}
    return {}


def open_source(source, backend, ds, n_train, max_shift=0, outputs="logits", load_logits=True, logits=None):
    """The teacher that file (or shipped name) ``source`` holds, checked against the data ``ds``
    (``n_train`` training images, a transfer set jittered by ``max_shift`` px): a file of logits
    (``logits`` true, or None and a ``.npy`` name; read unless ``load_logits`` is false: the run's
    cache holds them), an ONNX model (``outputs``: what it outputs), else an nnkd checkpoint."""
    if logits or logits is None and is_logits_file(source):
        host = transfer.read(source, None, n_train, ds.n_classes, max_shift, advice=LOGITS_ADVICE) \
            if load_logits else None
        return LogitsFile(source, backend, host)
    if is_onnx(source):
        return OnnxTeacher.open(source, backend, ds, n_train, outputs)
    return NetworkTeacher.open(source, backend, ds)


def _pinned(source, record, backend, cache, log):
    """The teacher of a resumed run's ``source`` as it was ``record``-ed, or None to open it
    again: one that has changed is refused; one that is gone stands on the run's ``cache``."""
    path = Path(source)
    if not path.exists():
        if not cache.is_file():
            raise UserError(f"this run's teacher {path} is gone and its logits are not cached in "
                            f"{cache.parent}: put it back to continue the run, or start a new run")
        log(f"note: this run's teacher {path} is gone; the run goes on from its logits in {cache}")
        return Cached(record, backend)
    digest, was = file_sha256(path), str(record.get("teacher_sha256"))
    if digest != was:
        raise UserError(f"the teacher {path} has changed since this run began (SHA-256 {digest[:16]}..., "
                        f"was {was[:16]}...): the run's teacher logits and students came from the old "
                        "one; put that file back, or start a new run")
    return None


def open_teacher(spec, ds, backend, folder=None, log=print):
    """The teacher of ``spec`` (a :class:`~nnkd.config.RunSpec` that names one or several),
    checked against the data ``ds`` before any work.  ``folder``: the run or sweep being
    continued, whose recorded teachers pin these (:func:`recorded`)."""
    pins = recorded(folder) if folder else {}
    cache = Path(folder or ".") / CACHE
    n_train = spec.n_train(ds.train_features.shape[0])
    parts = []
    for source in spec.teacher_sources():
        part = _pinned(source, pins[source], backend, cache, log) if source in pins else None
        parts.append(part or open_source(source, backend, ds, n_train, spec.student.transfer_jitter,
                                         spec.teacher_outputs, load_logits=not (folder and cache.is_file()),
                                         logits=source == spec.teacher_logits or None))
    temperature = spec.sweep.temperatures[0] if spec.sweep else spec.student.temperature
    return as_teacher(parts, spec.ensemble, temperature)
