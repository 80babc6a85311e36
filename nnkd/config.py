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
from .checks import MAX_EPOCHS, SettingError, check_memory, choice, flag, float32, number, whole
from .errors import UserError
from .layers import DROPOUT_SCALINGS, INITS
from .network import INPUTS, parse_arch
from .optim import MOMENTUM_FORMS, OPTIMIZERS, SCHEDULES, MaxNorm

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


@dataclass
class TrainConfig:
    """Everything that defines how one model is trained (saved as config.json)."""

    arch: str = "784-800-800-10"
    dropout_input: float = 0.0
    dropout_hidden: float = 0.0
    dropout_scaling: str = "train"   # train: inverted dropout (kept units / keep); test: the paper's
    #                                  (kept units as they are, next layer's weights * keep at test)
    jitter: int = 0                  # max shift in pixels of hard-label training (0 = off)
    epochs: int = 60
    batch_size: int = 100
    lr: float = 0.1                  # lr0
    lr_schedule: str = "cosine"      # exp | cosine | constant
    lr_decay: float = 0.998          # f in lr0 * f**epoch (exp)
    momentum_start: float = 0.9
    momentum_end: float = 0.9
    momentum_epochs: int = 0         # linear ramp length
    momentum_form: str = "classic"   # SGD; paper: dw = p dw - (1-p) lr g ; classic: v = p v - lr g
    optimizer: str = "sgd"           # a name in nnkd.optim.OPTIMIZERS: sgd | adam (momentum = beta1)
    beta2: float = 0.999             # adam
    max_norm: float = 0.0            # 0 = off
    max_norm_squared: bool = True    # bound on the squared length (paper) or on the norm
    max_norm_bias: bool = False
    max_norm_layers: str = "hidden"
    init_std: float = 0.01
    init: str = "normal"             # normal: N(0, init_std^2), biases 0; uniform: U(+-1/sqrt(fan-in))
    inputs: str = "unit"             # unit: features as given; centered: 2x - 1 first (pixels to [-1, 1])
    seed: int = 0
    temperature: float = 20.0        # the fields below are used when training on soft targets
    soft_weight: float = 1.0
    hard_weight: float = 0.0
    transfer_jitter: int = 0         # max shift of the transfer set's images (0 = as they are);
    #                                  on soft targets it replaces `jitter`, whose shifts would
    #                                  not match the images the teacher's logits belong to
    checkpoint_every: int = 1        # epochs
    eval_every: int = 1              # epochs between test-set evaluations (and always the last)

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
        model learns from a teacher's logits, so its loss weights may not both be 0."""
        def name(f):
            return prefix + f
        if not isinstance(self.arch, str):
            raise SettingError(name("arch"), f"must be widths joined by '-', got {self.arch!r}")
        sizes = self.sizes(n_in, n_out)
        for f in ("dropout_input", "dropout_hidden"):
            number(name(f), getattr(self, f), 0.0, 1.0, hi_open=True,
                    hint=" (a dropout rate is the fraction of units dropped, e.g. 0.5)")
            if getattr(self, f) > HIGH_DROPOUT and warn:
                warn(f"warning: {name(f)} {getattr(self, f)} drops almost every unit; training will "
                     "be close to chance")
        choice(name("dropout_scaling"), self.dropout_scaling, DROPOUT_SCALINGS)
        for f in ("epochs", "batch_size", "checkpoint_every", "eval_every"):
            whole(name(f), getattr(self, f), 1, MAX_EPOCHS if f != "batch_size" else 10**9)
        if n_train is not None and self.batch_size > n_train:
            raise SettingError(name("batch_size"), f"{self.batch_size} is larger than the {n_train} "
                               "training examples: use a smaller batch")
        number(name("lr"), self.lr, 0.0, lo_open=True)
        float32(name("lr"), self.lr)
        choice(name("lr_schedule"), self.lr_schedule, SCHEDULES)
        number(name("lr_decay"), self.lr_decay, 0.0, 1.0, lo_open=True,
                hint=" (the exp schedule multiplies the learning rate by it every epoch)")
        for f in ("momentum_start", "momentum_end"):
            number(name(f), getattr(self, f), 0.0, 1.0, hi_open=True)
        whole(name("momentum_epochs"), self.momentum_epochs, 0, MAX_EPOCHS)
        choice(name("momentum_form"), self.momentum_form, MOMENTUM_FORMS)
        choice(name("optimizer"), self.optimizer, tuple(OPTIMIZERS))
        number(name("beta2"), self.beta2, 0.0, 1.0, hi_open=True)
        for f, owner in (("momentum_form", "sgd"), ("beta2", "adam")):  # read by one optimizer only
            if warn and self.optimizer != owner and getattr(self, f) != getattr(TrainConfig, f):
                warn(f"warning: {name(f)} {getattr(self, f)!r} is read by optimizer {owner} only; "
                     f"{name('optimizer')} {self.optimizer} ignores it")
        number(name("max_norm"), self.max_norm, 0.0)
        float32(name("max_norm"), self.max_norm)
        flag(name("max_norm_squared"), self.max_norm_squared)
        flag(name("max_norm_bias"), self.max_norm_bias)
        choice(name("max_norm_layers"), self.max_norm_layers, MaxNorm.LAYERS)
        number(name("init_std"), self.init_std, 0.0, 10.0, lo_open=True,
                hint=" (all-equal initial weights never break the symmetry between units)")
        float32(name("init_std"), self.init_std)
        choice(name("init"), self.init, INITS)
        choice(name("inputs"), self.inputs, INPUTS)
        whole(name("seed"), self.seed, 0, MAX_SEED)
        number(name("temperature"), self.temperature, *TEMPERATURE_RANGE,
                hint=" (softmax(z / T) and the T^2 weight must stay finite in float32)")
        for f in ("soft_weight", "hard_weight"):
            number(name(f), getattr(self, f), 0.0, 1e6)
            float32(name(f), getattr(self, f))
        if distilled and self.soft_weight == self.hard_weight == 0:
            raise SettingError(name("soft_weight"), f"and `{name('hard_weight')}` are both 0: the distilled "
                               f"student would learn nothing; give `{name('soft_weight')}` above 0")
        for f in ("jitter", "transfer_jitter"):
            if not image_side and getattr(self, f) != 0:
                raise SettingError(name(f), "must be 0: jitter shifts images, and this dataset has no "
                                   "image shape (give image_shape in the .npz)")
            whole(name(f), getattr(self, f), 0, max((image_side or 1) - 1, 0),
                   what="whole number of pixels below the image size")
        # Parameters, their gradients, velocities and scratch, plus activations of a batch.
        check_memory(name("arch"), memory.training_bytes(sizes, self.batch_size),
                     f"training {self.arch} at batch {self.batch_size}")
        return sizes


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
                raise SettingError("validation", f"{self.validation} would leave no training images out of "
                                   f"{min(self.train_limit or n_available, n_available)}")
        if self.sweep is not None:
            self.sweep.validate()
        n_transfer = n_train
        if self.absent_classes and train_labels is not None and n_train is not None:
            labels = np.asarray(train_labels[:self.train_limit])[:n_train]
            n_transfer = int((~np.isin(labels, self.absent_classes)).sum())
            if n_transfer == 0:
                raise SettingError("absent_classes", f"leave no image in the transfer set: the {n_train} "
                                   "training images are all of those classes")
        for role in self.roles:
            cfg = getattr(self, role)
            n_seen = n_transfer if role == "student" else n_train
            if not isinstance(cfg, TrainConfig):
                raise SettingError(role, "is not a set of training settings")
            widths = self.sweep.widths if role == "student" and self.sweep is not None else [None]
            for width in widths:  # a sweep's student: each of its widths
                cell = replace(cfg, arch=f"{n_in}-{width}-{width}-{n_classes}") if width else cfg
                cell.validate(n_seen, n_in, n_classes, image_side, prefix=role + ".", warn=warn,
                              distilled=role == "student" and self.command in ("distill", "sweep"))
        if self.command in ("distill", "sweep") and n_available is not None:
            shifts = n_shifts(self.student.transfer_jitter)
            check_memory("student.transfer_jitter", memory.logits_bytes(shifts, n_train, n_classes),
                         f"the teacher's logits on {shifts} shifts of {n_train} images")
        return self

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
