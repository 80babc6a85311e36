"""The command line's flags: argparse tables, and the flag that sets each run-spec field.

Messages from the engine name settings by field (```student.lr```); :func:`in_flags`
turns them into the flags that set them (``--lr``) for the command at hand.
"""

import argparse
import re
import sys
from pathlib import Path

from typing import NamedTuple

from ..version import __version__
from ..config import TrainConfig, flag_role
from ..settings import GROUP_TITLES, declared, flag_name, help_text
from ..install import DEFAULT_TEACHER, extra_hint, shipped_models
from ..presets import PRESETS

def _given(text):
    """An argparse type for a path or a list: the empty string is refused, not taken for the
    flag's absence (``--resume "$RUN"`` with RUN unset must not start a new run)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty value: give one (an unset shell variable expands "
                                         "to nothing)")
    return text


def _word(meanings):
    """An argparse type for a flag that takes one of a few words."""
    def convert(text):
        if text not in meanings:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(meanings)}, got {text!r}")
        return meanings[text]
    return convert


class ModelFlag(NamedTuple):
    """A flag that sets a :class:`~nnkd.config.TrainConfig` field, from its declaration."""

    flag: str
    field: str
    type: object
    help: str
    owner: str
    metavar: str | None


_TYPES = {"number": float, "whole": int, "pixels": int, "choice": str, "text": str}


def _model_flags(owners):
    """The flags of the TrainConfig fields that ``owners`` own, in the order declared."""
    out = []
    for name, s in declared(TrainConfig):
        flag = flag_name(name, s)
        if flag and s.owner in owners:
            typ = _word(s.rule.words) if s.rule.kind == "flag" else _TYPES[s.rule.kind]
            words = s.rule.words or s.rule.choices
            metavar = "{" + ",".join(words) + "}" if words else "N" if s.rule.kind in ("whole", "pixels") else None
            out.append(ModelFlag(flag, name, typ, help_text(s), s.owner, metavar))
    return out


# Flags that set a TrainConfig field: of every model, and of a student learning from a teacher.
OVERRIDES = _model_flags(("model", "optimizer"))
DISTILL_OVERRIDES = _model_flags(("student",))
# The fields --resume may change (to lengthen a run).
RESUMABLE = [name for name, s in declared(TrainConfig) if s.resumable]


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag value is a short usage hint and a one-line error, exit status 2
    (not the command's whole usage, which lists every flag)."""

    def error(self, message):
        self.exit(2, f"usage: {self.prog} ... ({self.prog} --help lists the flags)\nerror: {message}\n")


def _add_common(p, command, out_help=None, preset_help=None):
    """The flags every training command takes (a sweep has --seeds of its own, not --seed)."""
    folder = "sweep" if command == "sweep" else "run"
    p.add_argument("--quiet", action="store_true",
                   help=f"print only errors and the final table; the {folder}'s log.txt has every line")
    p.add_argument("--dry-run", action="store_true",
                   help="check every setting against the data, print the settings and stop (writes nothing)")
    p.add_argument("--backend", default="numpy", help="numpy (default, CPU) or cupy (NVIDIA GPU)")
    if command != "sweep":
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--preset", default="fast", help=preset_help or f"one of {', '.join(PRESETS)} (default fast)")
    record = "sweep.json" if command == "sweep" else "run.json"
    p.add_argument("--config", default=None, type=_given, metavar=record.upper().replace(".", "_"),
                   help=f"run again with the settings a {folder} recorded in its {record} (or its folder); "
                   "flags given beside it change those settings, and the log's header names them")
    p.add_argument("--out", default=None, type=_given, help=out_help or f"run folder (default runs/{command}-<time>)")
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    p.add_argument("--validation", type=int, default=0,
                   help="hold out the last N training images for a validation error (default 0)")
    p.add_argument("--train-limit", type=int, default=None,
                   help="use only the first N training images (default: all; smoke preset: 5000)")


def _add_overrides(p, table, prefix="", model=""):
    """One flag per entry of ``table``, in a group per owner; ``prefix`` (``teacher-``) and
    ``model`` (``students``) say which model the flags set where a command trains several."""
    groups = {}
    for f in table:
        if f.owner not in groups:
            title = f"{model}: {GROUP_TITLES[f.owner]}" if model else GROUP_TITLES[f.owner]
            groups[f.owner] = p.add_argument_group(title)
        groups[f.owner].add_argument(f.flag.replace("--", "--" + prefix), dest=prefix.replace("-", "_") + f.field,
                                     type=f.type, default=None, help=f.help, metavar=f.metavar)


def _shipped():
    """The shipped teachers, for --teacher's help."""
    return f"{', '.join(shipped_models())}; default {DEFAULT_TEACHER}, or the preset's own where nnkd ships it"


def _add_teacher_outputs(p):
    p.add_argument("--teacher-outputs", default=None, choices=("logits", "probabilities"),
                   help="what an ONNX teacher outputs (default logits); probabilities: their log is "
                   "softened at the temperature")
    p.add_argument("--ensemble", default=None, choices=("arithmetic", "geometric"),
                   help="with several --teacher: the soft targets are the mean of the teachers' "
                   "distributions at T (arithmetic, the default) or the mean of their logits (geometric)")


def build_parser():
    parser = Parser(prog=Path(sys.argv[0]).name or "main.py", description="nnkd: knowledge distillation on NumPy/CuPy "
                    "(Hinton, Vinyals & Dean 2015, MNIST)")
    parser.add_argument("--version", action="version", version=f"nnkd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in (_add_distill, _add_train_alone, _add_sweep, _add_results, _add_tools):
        add(sub)
    return parser


def _add_distill(sub):
    p = sub.add_parser("distill", help="the main job: teacher, baseline and distilled student, table")
    _add_common(p, "distill")
    p.add_argument("--teacher", default=None, action="append", type=_given,
                   help="teacher to distill from: a checkpoint.npz, an ONNX model (.onnx, input float32 "
                   f"[N, features] = pixels / 255; {extra_hint('onnx')}), a logits file (.npy, as "
                   f"--teacher-logits), or the name of a shipped one ({_shipped()}); given more than once, "
                   "an ensemble of them (see --ensemble)")
    _add_teacher_outputs(p)
    p.add_argument("--teacher-logits", default=None, type=_given, metavar="FILE.npy",
                   help="distill from logits computed elsewhere: (N, classes) for the N training images, "
                   "(shifts, N, classes) with --transfer-jitter (see docs/any-teacher.md)")
    p.add_argument("--retrain-teacher", action="store_true",
                   help="train the teacher from scratch instead of using the shipped one")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline student")
    p.add_argument("--omit-digit", default=None, type=_given, metavar="D[,D...]",
                   help="leave these classes out of the students' transfer set (paper: 3); the bias "
                   "correction is then chosen on --validation images (default 10000)")
    p.add_argument("--only-digits", default=None, type=_given, metavar="D,D[,...]",
                   help="keep only these classes in the students' transfer set (paper: 7,8)")
    p.add_argument("--resume", default=None, type=_given, metavar="RUN_DIR", help="continue a stopped run")
    _add_overrides(p, OVERRIDES + DISTILL_OVERRIDES, model="students")
    _add_overrides(p, OVERRIDES, prefix="teacher-", model="teacher (with --retrain-teacher)")


def _add_train_alone(sub):
    for name, role in (("train-teacher", "teacher"), ("train-student", "student")):
        p = sub.add_parser(name, help=f"train the {role} alone ({'dropout, jitter, max-norm' if role == 'teacher' else 'no regularization'})")
        _add_common(p, name)
        p.add_argument("--resume", default=None, type=_given, metavar="RUN_DIR", help="continue a stopped run")
        _add_overrides(p, OVERRIDES)


def _add_sweep(sub):
    p = sub.add_parser("sweep", help="distilled students over temperatures x widths x seeds, one teacher")
    p.add_argument("--temperatures", default="1,2,4,8,20", help="comma-separated (default 1,2,4,8,20)")
    p.add_argument("--widths", default="800,300,30", help="hidden units per layer (default 800,300,30)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    p.add_argument("--jobs", type=int, default=1,
                   help="cells trained at once (default 1: one after the other in this process); N > 1 "
                   "starts a local Dask cluster of N single-threaded worker processes (needs the dask extra)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run each cell as a task on the Dask cluster of this scheduler (started with "
                   "`dask scheduler`, workers with `dask worker tcp://HOST:PORT`); the sweep folder "
                   "(--out) must be on a filesystem every worker shares, at the same path")
    p.add_argument("--teacher", default=None, action="append", type=_given,
                   help="teacher checkpoint.npz, ONNX model .onnx, logits file .npy, or the name of a shipped "
                   f"one ({_shipped()}); given more than once, an ensemble of them")
    _add_teacher_outputs(p)
    _add_common(p, "sweep", preset_help="student settings of this preset (default fast)",
                out_help="sweep folder; the same command again continues it (with --scheduler: on a "
                "filesystem every Dask worker shares)")
    _add_overrides(p, [o for o in OVERRIDES + DISTILL_OVERRIDES if o.field not in ("arch", "temperature")])


def _add_results(sub):
    p = sub.add_parser("plot", help="PNG figures of a distill run or a sweep (needs matplotlib)")
    p.add_argument("run_dirs", nargs="+", type=_given, metavar="RUN_DIR",
                   help="a run folder (distill, train-teacher, train-student) or a sweep folder; "
                   "several run folders: their learning curves in one figure (give --out)")
    p.add_argument("--out", default=None, type=_given, help="the PNG to write when comparing several runs")
    p.add_argument("--force", action="store_true", help="replace an existing --out")

    p = sub.add_parser("report", help="one table of several distill runs (e.g. seeds), mean and std")
    p.add_argument("run_dirs", nargs="+", type=_given, metavar="RUN_DIR", help="finished distill run folders")


def _add_tools(sub):
    p = sub.add_parser("evaluate", help="test errors, per-class errors and confusion matrix")
    p.add_argument("checkpoint", type=_given, help="a checkpoint.npz written by nnkd, or a shipped model's name")
    p.add_argument("--backend", default="numpy", help="numpy (default, CPU) or cupy (NVIDIA GPU)")
    p.add_argument("--dataset", default=None, help="the test set: mnist, fashion-mnist or npz:PATH (default: "
                   "the dataset in the run.json of the checkpoint's run folder, else mnist)")

    p = sub.add_parser("export", help="write a checkpoint's weights alone (no optimizer state), to share; "
                       "or the network as an ONNX model (--format onnx)")
    p.add_argument("checkpoint", type=_given, help="a checkpoint.npz written by nnkd, or a shipped model's name")
    p.add_argument("dest", type=_given, help="where to write: a weights-only checkpoint (.npz; its metadata goes "
                   "beside it as .json), or with --format onnx an ONNX model (.onnx)")
    p.add_argument("--format", choices=("npz", "onnx"), default="npz",
                   help="npz (default): the weights as an nnkd checkpoint; onnx: an ONNX model (opset 17, "
                   "input 'input' float32 [N, n_features], output 'logits'); needs the onnx extra")
    p.add_argument("--softmax-temperature", type=float, default=None, metavar="T",
                   help="--format onnx only: end the model with softmax(logits / T), output 'probabilities'")
    p.add_argument("--force", action="store_true", help="replace an existing destination")

    sub.add_parser("teachers", help="the shipped models: name, test errors, settings, size, SHA-256")

    p = sub.add_parser("data", help="fetch, verify and describe a dataset; show or clear the cache")
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    p.add_argument("--cache", action="store_true", help="show the cache folder and the datasets in it")
    p.add_argument("--clear-cache", action="store_true",
                   help="remove the cached datasets' files (fetched again when next used)")

    p = sub.add_parser("gradcheck", help="finite-difference gradient checks in float64")
    p.add_argument("--backend", default="numpy", help="numpy (default, CPU) or cupy (NVIDIA GPU)")


# The flags that set RunSpec fields (and the tools' arguments named in messages).
SPEC_FLAGS = {"validation": "--validation", "train_limit": "--train-limit", "dataset": "--dataset",
              "backend": "--backend", "softmax_temperature": "--softmax-temperature", "out": "--out",
              "force": "--force", "teacher_checkpoint": "--teacher", "teacher_logits": "--teacher-logits",
              "teacher_outputs": "--teacher-outputs", "ensemble": "--ensemble",
              "absent_classes": "--omit-digit/--only-digits"}


def flag_of(name, command):
    """The flag that sets the field ``name`` (``student.lr``) in ``command``, or None."""
    role, _, field = name.rpartition(".")
    if field == "seed" and role:
        return "--seed"
    if command == "sweep" and name == "student.arch":
        return "--widths"
    if role == "sweep":
        return f"--{field}"
    flags = {f.field: f.flag for f in OVERRIDES + DISTILL_OVERRIDES}
    if role == "teacher" and command == "distill":
        return field in {f.field for f in OVERRIDES} and flags[field].replace("--", "--teacher-") or None
    if role in ("", flag_role(command)) and field in flags:
        return flags[field]
    return SPEC_FLAGS.get(name)


def in_flags(message, command):
    """Replace the engine's `field` names in a message by the flags that set them."""
    return re.sub(r"`([a-z_.][a-z0-9_.]*)`", lambda m: flag_of(m.group(1), command) or m.group(1), message)


