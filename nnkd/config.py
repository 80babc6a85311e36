"""The settings of a run, typed and validated once.

:class:`TrainConfig` says how one model is trained; :class:`RunSpec` says what a
command does: which models, on which data, from which teacher.  A spec is
built once, from a preset and the command line or from a run folder's
``run.json``, and :meth:`RunSpec.validate` checks every value before anything
is written.  The pipeline, the sweep and ``--resume`` read nothing else.

A bad value raises :class:`~nnkd.checks.SettingError`, whose message names the
field in backticks (```student.lr` must be positive``); the checks of single
values are in :mod:`nnkd.checks`.
"""

import re
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from . import memory
from .batches import n_shifts
from .checks import MAX_EPOCHS, SettingError, check_memory, choice, flag, number, whole
from .errors import UserError
from .layers import DROPOUT_SCALINGS, INITS
from .network import INPUTS, parse_arch
from .optim import MOMENTUM_FORMS, OPTIMIZERS, MaxNorm
from .schedules import SCHEDULES
from .settings import PIXELS, TEXT, declared, one_of, setting, true_or_false
from .settings import check as check_setting, number as number_rule, whole as whole_rule

COMMANDS = ("distill", "train-teacher", "train-student", "sweep")
ROLES = ("teacher", "student")
# The temperature's range: z / T and T^2 stay finite and informative in float32.
TEMPERATURE_RANGE = (1e-3, 1e4)
MAX_SEED = 2**63 - 1
HIGH_DROPOUT = 0.9   # above this a warning: almost every unit is dropped


def flag_role(command):
    """The model whose settings a command's model flags (``--lr``, ``--arch``...) set:
    the teacher for ``train-teacher``, the student otherwise."""
    return "teacher" if command == "train-teacher" else "student"


def _named(registry):
    """``{name: its help}`` of a registry of classes (the schedules, the optimizers)."""
    return {name: cls.help for name, cls in registry.items()}


DROPOUT = number_rule(0.0, 1.0, hi_open=True, hint=" (a dropout rate is the fraction of units dropped, e.g. 0.5)")
FEW_UNITS = " drops almost every unit; training will be close to chance"
WEIGHT = number_rule(0.0, 1e6, in_float32=True)


@dataclass
class TrainConfig:
    """Everything that defines how one model is trained (saved as config.json).  Each field is
    declared once, with its owner, help, rule and flag (:mod:`nnkd.settings`)."""

    arch: str = setting("784-800-800-10", "model", "layer widths, e.g. 784-800-800-10", TEXT)
    dropout_input: float = setting(0.0, "model", "dropout rate of the input, in [0, 1)", DROPOUT,
                                   warn_above=HIGH_DROPOUT, warning=FEW_UNITS)
    dropout_hidden: float = setting(0.0, "model", "dropout rate of each hidden layer, in [0, 1)", DROPOUT,
                                    warn_above=HIGH_DROPOUT, warning=FEW_UNITS)
    dropout_scaling: str = setting("train", "model", "where dropout's keep probability is applied",
                                   one_of(DROPOUT_SCALINGS))
    jitter: int = setting(0, "model", "max random shift of the input images in pixels (0 = off)", PIXELS)
    epochs: int = setting(60, "model", "training epochs", whole_rule(1, MAX_EPOCHS), resumable=True)
    batch_size: int = setting(100, "model", "examples per step", whole_rule(1, 10**9))
    lr: float = setting(0.1, "optimizer", "initial learning rate lr0", number_rule(0.0, lo_open=True, in_float32=True))
    lr_schedule: str = setting("cosine", "optimizer", "the learning-rate schedule", one_of(_named(SCHEDULES)))
    warmup_epochs: int = setting(0, "optimizer", "epochs of linear warm-up on the schedule: its rate "
                                 "times (epoch + 1) / (N + 1) for the first N epochs (0 = off)", whole_rule(0, MAX_EPOCHS))
    lr_decay: float = setting(0.998, "optimizer", "f of the exp schedule (paper: 0.998)", number_rule(
        0.0, 1.0, lo_open=True, hint=" (the exp schedule multiplies the learning rate by it every epoch)"))
    momentum_start: float = setting(0.9, "optimizer", "momentum at epoch 0", number_rule(0.0, 1.0, hi_open=True))
    momentum_end: float = setting(0.9, "optimizer", "momentum after the ramp", number_rule(0.0, 1.0, hi_open=True))
    momentum_epochs: int = setting(0, "optimizer", "length of the linear momentum ramp", whole_rule(0, MAX_EPOCHS))
    momentum_form: str = setting("classic", "optimizer", "SGD's update", one_of(MOMENTUM_FORMS))
    optimizer: str = setting("sgd", "optimizer", "the optimizer", one_of(_named(OPTIMIZERS)))
    beta2: float = setting(0.999, "optimizer", "adam: decay of the squared-gradient average (default 0.999)",
                           number_rule(0.0, 1.0, hi_open=True))
    max_norm: float = setting(0.0, "optimizer", "max-norm bound (0 = off; paper: 15 on the squared length)",
                              number_rule(0.0, in_float32=True))
    max_norm_squared: bool = setting(True, "optimizer", "what --max-norm bounds", true_or_false(
        {"squared": True, "norm": False}), flag="--max-norm-on")
    max_norm_bias: bool = setting(False, "optimizer", "whether the bias counts in a unit's length",
                                  true_or_false({"yes": True, "no": False}))
    max_norm_layers: str = setting("hidden", "optimizer", "the layers max-norm bounds", one_of(MaxNorm.LAYERS))
    init_std: float = setting(0.01, "model", "std of the initial weights (paper: 0.01)", number_rule(
        0.0, 10.0, lo_open=True, in_float32=True,
        hint=" (all-equal initial weights never break the symmetry between units)"))
    init: str = setting("normal", "model", "the initial weights", one_of(INITS))
    inputs: str = setting("unit", "model", "the features the network sees", one_of(INPUTS))
    label_smoothing: float = setting(0.0, "model", "label smoothing eps of the hard-label loss: targets "
                                     "(1 - eps) onehot + eps / classes (0 = off)", number_rule(0.0, 1.0, hi_open=True))
    seed: int = setting(0, "model", "random seed", whole_rule(0, MAX_SEED), flag="")
    temperature: float = setting(20.0, "student", "distillation temperature T (default 20)", number_rule(
        *TEMPERATURE_RANGE, hint=" (softmax(z / T) and the T^2 weight must stay finite in float32)"))
    soft_weight: float = setting(1.0, "student", "weight of T^2 * soft cross-entropy", WEIGHT)
    hard_weight: float = setting(0.0, "student", "weight of the hard-label cross-entropy", WEIGHT)
    # On soft targets transfer_jitter replaces `jitter`, whose shifts would not match the images
    # the teacher's logits belong to.
    transfer_jitter: int = setting(0, "student", "distilled student: shift the transfer set's images by up "
                                   "to N px (teacher logits for every shift)", PIXELS)
    checkpoint_every: int = setting(1, "model", "epochs between checkpoints", whole_rule(1, MAX_EPOCHS))
    eval_every: int = setting(1, "model", "epochs between test-set evaluations in the log", whole_rule(1, MAX_EPOCHS))

    def __post_init__(self):
        # NumPy scalars (np.float32(0.1), np.int64(3)) become the Python numbers JSON takes.
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.generic):
                setattr(self, f.name, v.item())

    @classmethod
    def from_dict(cls, d, where="configuration"):
        """A config from a dict (config.json, run.json, checkpoint metadata); unknown keys are
        ignored, missing ones take their defaults.  Values are checked by :meth:`validate`."""
        if not isinstance(d, dict):
            raise UserError(f"{where} is not a set of settings (got {type(d).__name__}); the file "
                            "is damaged or not written by nnkd")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def sizes(self, n_in=None, n_out=None):
        return parse_arch(self.arch, n_in, n_out)

    def validate(self, n_train=None, n_in=784, n_out=10, image_side=28, prefix="", warn=None,
                 distilled=False):
        """Raise :class:`SettingError` (field names prefixed by ``prefix``) for any value that
        cannot train; call ``warn(line)`` for one that will train badly.  ``distilled``: the
        model learns from a teacher's logits, so its loss weights may not both be 0.  Reads
        nothing but the values and the data's sizes (the machine's memory:
        :meth:`check_memory`).  Returns the layer widths."""
        if not isinstance(self.arch, str):
            raise SettingError(prefix + "arch", f"must be widths joined by '-', got {self.arch!r}")
        sizes = self.sizes(n_in, n_out)
        for name, s in declared(TrainConfig):
            value = getattr(self, name)
            check_setting(prefix + name, value, s, image_side)
            if warn and s.warn_above is not None and value > s.warn_above:
                warn(f"warning: {prefix}{name} {value}{s.warning}")
        if n_train is not None and self.batch_size > n_train:
            raise SettingError(prefix + "batch_size", f"{self.batch_size} is larger than the {n_train} "
                               "training examples: use a smaller batch")
        if distilled and self.soft_weight == self.hard_weight == 0:
            raise SettingError(prefix + "soft_weight", f"and `{prefix}hard_weight` are both 0: the distilled "
                               f"student would learn nothing; give `{prefix}soft_weight` above 0")
        if warn:
            self._warn_unread(prefix, warn)
        return sizes

    def _warn_unread(self, prefix, warn):
        """A setting changed from its default that only another optimizer reads."""
        read = set(OPTIMIZERS[self.optimizer].SETTINGS)
        for owner, cls in OPTIMIZERS.items():
            for f in cls.SETTINGS:
                if f not in read and getattr(self, f) != getattr(TrainConfig, f):
                    warn(f"warning: {prefix}{f} {getattr(self, f)!r} is read by optimizer {owner} only; "
                         f"{prefix}optimizer {self.optimizer} ignores it")

    def check_memory(self, prefix=""):
        """Refuse settings that need clearly more memory than this machine has: parameters,
        their gradients, velocities and scratch, plus the activations of a batch."""
        check_memory(prefix + "arch", memory.training_bytes(self.sizes(), self.batch_size),
                     f"training {self.arch} at batch {self.batch_size}")


@dataclass
class SweepGrid:
    """The cells of a sweep: every width x temperature x seed, ``jobs`` at a time (``jobs`` > 1:
    on a local Dask cluster of that many worker processes), or on the Dask cluster whose
    scheduler is at ``scheduler`` (``tcp://HOST:PORT``)."""

    temperatures: list = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0, 20.0])
    widths: list = field(default_factory=lambda: [800, 300, 30])
    seeds: list = field(default_factory=lambda: [0, 1, 2])
    jobs: int = 1
    scheduler: str | None = None

    def validate(self):
        for f, check in (("temperatures", lambda n, v: number(n, v, 0.0, lo_open=True)),
                         ("widths", lambda n, v: whole(n, v, 1, 10**9)),
                         ("seeds", lambda n, v: whole(n, v, 0, MAX_SEED))):
            values = getattr(self, f)
            if not isinstance(values, list) or not values:
                raise SettingError(f"sweep.{f}", f"must be a non-empty list, got {values!r}")
            for v in values:
                check(f"sweep.{f}", v)
            twice = next((v for i, v in enumerate(values) if v in values[:i]), None)
            if twice is not None:
                raise SettingError(f"sweep.{f}", f"gives {twice:g} twice: give each value once")
        whole("sweep.jobs", self.jobs, 1, 1024)
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str) or not re.fullmatch(
                    r"(tcp://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}", self.scheduler):
                raise SettingError("sweep.scheduler", "must be a Dask scheduler address such as "
                                   f"tcp://HOST:8786, got {self.scheduler!r}")
            if self.jobs != 1:
                raise SettingError("sweep.jobs", "sets the size of the local cluster: with "
                                   "`sweep.scheduler` the cluster's workers run the cells")


@dataclass
class RunSpec:
    """What a command does.

    Attributes:
        command: ``distill``, ``train-teacher``, ``train-student`` or ``sweep``.
        dataset: ``mnist``, ``fashion-mnist`` or ``npz:PATH``.
        teacher, student: the :class:`TrainConfig` of each model (the teacher's is used
            only when one is trained).
        validation: the last N training images held out (a validation error; the bias
            correction of the transfer-set experiments is chosen on them).
        train_limit: use only the first N training images (None: all).
        teacher_checkpoint: distill from this checkpoint, or ONNX model (``.onnx``), or logits
            file (``.npy``), or from an ensemble: a list of two or more of them (None: train a
            teacher, unless ``teacher_logits`` is given).
        teacher_logits: distill from the logits in this ``.npy`` file (computed elsewhere).
        teacher_outputs: what an ONNX teacher outputs: ``logits`` or ``probabilities``.
        ensemble: the soft targets of an ensemble: ``arithmetic``, the mean of the teachers'
            distributions at T, or ``geometric``, the mean of their logits.
        baseline: also train the plain student.
        absent_classes: classes left out of the students' transfer set.
        sweep: the grid of a ``sweep``.
    """

    command: str
    dataset: str = "mnist"
    preset: str = "fast"
    teacher: TrainConfig = field(default_factory=TrainConfig)
    student: TrainConfig = field(default_factory=TrainConfig)
    validation: int = 0
    train_limit: int | None = None
    teacher_checkpoint: str | list | None = None
    teacher_logits: str | None = None
    teacher_outputs: str = "logits"
    ensemble: str = "arithmetic"
    baseline: bool = True
    absent_classes: list = field(default_factory=list)
    sweep: SweepGrid | None = None

    @property
    def roles(self):
        """The models this command trains, in order."""
        if self.command != "distill":
            return (flag_role(self.command),)
        return ("student",) if self.teacher_checkpoint or self.teacher_logits else ("teacher", "student")

    def teacher_sources(self):
        """The files (or shipped names) of the teacher to distill from: one, several (an
        ensemble), or none (a teacher is trained)."""
        if isinstance(self.teacher_checkpoint, list):
            return list(self.teacher_checkpoint)
        return [s for s in (self.teacher_checkpoint, self.teacher_logits) if s]

    def n_train(self, n_available):
        """Training images left after the limit and the validation split."""
        return min(self.train_limit or n_available, n_available) - self.validation

    def validate(self, n_available=None, n_in=784, n_classes=10, image_side=28, warn=None,
                 train_labels=None):
        """Check every value; ``n_available`` etc. describe the dataset once it is known, and
        ``train_labels`` (all of them, before the limit and the validation split) its classes,
        so that the students' transfer set is checked before a teacher trains."""
        choice("command", self.command, COMMANDS)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise SettingError("dataset", f"must be a dataset name, got {self.dataset!r}")
        if self.train_limit is not None:
            whole("train_limit", self.train_limit, 1, 10**12, what="number of images")
        whole("validation", self.validation, 0, 10**12, what="number of images")
        flag("baseline", self.baseline)
        self._validate_teacher_source()
        if not isinstance(self.absent_classes, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c < n_classes
                for c in self.absent_classes):
            raise SettingError("absent_classes", f"must be classes 0 to {n_classes - 1}, got "
                               f"{self.absent_classes!r}")
        if len(set(self.absent_classes)) >= n_classes:
            raise SettingError("absent_classes", "leave no class in the transfer set")
        n_train = None
        if n_available is not None:
            n_train = self.n_train(n_available)
            if n_train < 1:
                usable = min(self.train_limit or n_available, n_available)
                raise SettingError("validation", f"{self.validation} would leave no training images out of "
                                   f"{usable}: give a smaller `validation`, e.g. {max(1, usable // 6)}")
        if self.sweep is not None:
            self.sweep.validate()
        n_transfer = n_train
        if self.absent_classes and train_labels is not None and n_train is not None:
            labels = np.asarray(train_labels[:self.train_limit])[:n_train]
            n_transfer = int((~np.isin(labels, self.absent_classes)).sum())
            if n_transfer == 0:
                raise SettingError("absent_classes", f"leave no image in the transfer set: the {n_train} "
                                   "training images are all of those classes")
        for role, cfg in self._models(n_in, n_classes):
            n_seen = n_transfer if role == "student" else n_train
            cfg.validate(n_seen, n_in, n_classes, image_side, prefix=role + ".", warn=warn,
                         distilled=role == "student" and self.command in ("distill", "sweep"))
        return self

    def _models(self, n_in, n_classes):
        """``(role, TrainConfig)`` of every model the command trains (a sweep's student: one
        per width)."""
        for role in self.roles:
            cfg = getattr(self, role)
            if not isinstance(cfg, TrainConfig):
                raise SettingError(role, "is not a set of training settings")
            widths = self.sweep.widths if role == "student" and self.sweep is not None else [None]
            for width in widths:
                yield role, replace(cfg, arch=f"{n_in}-{width}-{width}-{n_classes}") if width else cfg

    def check_memory(self, n_available, n_in=784, n_classes=10):
        """Refuse a run this machine clearly has too little memory for (checked where a run
        starts, after :meth:`validate`; a saved spec is valid whatever the machine)."""
        for role, cfg in self._models(n_in, n_classes):
            cfg.check_memory(prefix=role + ".")
        if self.command in ("distill", "sweep"):
            n_train = self.n_train(n_available)
            shifts = n_shifts(self.student.transfer_jitter)
            check_memory("student.transfer_jitter", memory.logits_bytes(shifts, n_train, n_classes),
                         f"the teacher's logits on {shifts} shifts of {n_train} images")

    def _validate_teacher_source(self):
        several = isinstance(self.teacher_checkpoint, list)
        if not (self.teacher_checkpoint is None or isinstance(self.teacher_checkpoint, str) or several and
                len(self.teacher_checkpoint) >= 2 and all(isinstance(s, str) and s for s in self.teacher_checkpoint)):
            raise SettingError("teacher_checkpoint", f"must be a path, or a list of two or more, got "
                               f"{self.teacher_checkpoint!r}")
        if self.teacher_logits is not None and not isinstance(self.teacher_logits, str):
            raise SettingError("teacher_logits", f"must be a path, got {self.teacher_logits!r}")
        if self.teacher_logits and self.teacher_checkpoint:
            raise SettingError("teacher_logits", "and `teacher_checkpoint` are two teachers: give one")
        choice("teacher_outputs", self.teacher_outputs, ("logits", "probabilities"))
        choice("ensemble", self.ensemble, ("arithmetic", "geometric"))
        if self.ensemble != "arithmetic" and not several:
            raise SettingError("ensemble", "applies to an ensemble (`teacher_checkpoint` a list of teachers)")
        if several and self.ensemble == "arithmetic" and self.sweep is not None and len(self.sweep.temperatures) > 1:
            raise SettingError("ensemble", "arithmetic gives soft targets that depend on T: sweep one temperature "
                               "with it, or use `ensemble` geometric")
        onnx = any(s.lower().endswith(".onnx") for s in self.teacher_sources())
        if self.teacher_outputs != "logits" and not onnx:
            raise SettingError("teacher_outputs", "applies to an ONNX teacher (`teacher_checkpoint` "
                               "ending in .onnx)")

    def to_dict(self):
        """The JSON form written as ``run.json``."""
        d = {"command": self.command, "dataset": self.dataset, "preset": self.preset,
             "validation": self.validation, "train_limit": self.train_limit,
             "configs": {role: asdict(getattr(self, role)) for role in ROLES},
             "teacher_checkpoint": self.teacher_checkpoint, "teacher_logits": self.teacher_logits,
             "teacher_outputs": self.teacher_outputs, "ensemble": self.ensemble, "baseline": self.baseline,
             "absent_classes": list(self.absent_classes)}
        if self.sweep is not None:
            d["sweep"] = asdict(self.sweep)
        return d

    @classmethod
    def from_dict(cls, d, where="run.json"):
        """Read :meth:`to_dict`'s form back; the result still needs :meth:`validate`."""
        if not isinstance(d, dict):
            raise UserError(f"{where} does not hold run settings (got {type(d).__name__}): it is "
                            "damaged or not written by nnkd")
        configs = d.get("configs")
        if not isinstance(configs, dict):
            raise UserError(f"{where} has no model settings ('configs'): it is damaged or not "
                            "written by nnkd")
        known = {f.name for f in fields(cls)} - {"teacher", "student", "sweep"}
        kw = {k: v for k, v in d.items() if k in known}
        for role in ROLES:
            kw[role] = TrainConfig.from_dict(configs.get(role, {}), f"{where}: {role} settings")
        sweep = d.get("sweep")
        if sweep is not None:
            if not isinstance(sweep, dict):
                raise UserError(f"{where}: the sweep settings are damaged")
            names = {f.name for f in fields(SweepGrid)}
            kw["sweep"] = SweepGrid(**{k: v for k, v in sweep.items() if k in names})
        if "command" not in kw:
            raise UserError(f"{where} does not say which command made it: it is damaged")
        return cls(**kw)
