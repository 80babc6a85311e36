"""The command line's flags: argparse tables, and the flag that sets each run-spec field.

Messages from the engine name settings by field (```student.lr```); :func:`in_flags`
turns them into the flags that set them (``--lr``) for the command at hand.
"""

import argparse
import re
import sys
from pathlib import Path

from ..version import __version__
from ..config import flag_role
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


# Command-line flags that override a TrainConfig field: (flag, field, type, help).
OVERRIDES = [
    ("--arch", "arch", str, "layer widths, e.g. 784-800-800-10"),
    ("--epochs", "epochs", int, "training epochs"),
    ("--batch-size", "batch_size", int, "examples per step"),
    ("--lr", "lr", float, "initial learning rate lr0"),
    ("--lr-schedule", "lr_schedule", str, "exp (lr0 * f^epoch), cosine or constant"),
    ("--lr-decay", "lr_decay", float, "f of the exp schedule (paper: 0.998)"),
    ("--momentum-start", "momentum_start", float, "momentum at epoch 0"),
    ("--momentum-end", "momentum_end", float, "momentum after the ramp"),
    ("--momentum-epochs", "momentum_epochs", int, "length of the linear momentum ramp"),
    ("--momentum-form", "momentum_form", str, "paper: dw = p dw - (1-p) lr g; classic: v = p v - lr g"),
    ("--optimizer", "optimizer", str, "sgd (momentum SGD, default) or adam (the momentum is beta1)"),
    ("--beta2", "beta2", float, "adam: decay of the squared-gradient average (default 0.999)"),
    ("--dropout-input", "dropout_input", float, "dropout rate of the input, in [0, 1)"),
    ("--dropout-hidden", "dropout_hidden", float, "dropout rate of each hidden layer, in [0, 1)"),
    ("--dropout-scaling", "dropout_scaling", str, "train (inverted dropout: kept units scaled by 1/keep "
     "in training; default) or test (the paper's: kept units as they are in training, each dropout "
     "layer's outgoing weights times keep at evaluation, max-norm on the training-time weights)"),
    ("--jitter", "jitter", int, "max random shift of the input images in pixels (0 = off)"),
    ("--max-norm", "max_norm", float, "max-norm bound (0 = off; paper: 15 on the squared length)"),
    ("--max-norm-on", "max_norm_squared", _word({"squared": True, "norm": False}),
     "what --max-norm bounds: squared (length^2, the paper) or norm"),
    ("--max-norm-bias", "max_norm_bias", _word({"yes": True, "no": False}),
     "whether the bias counts in a unit's length: yes or no"),
    ("--max-norm-layers", "max_norm_layers", str, "hidden (paper), all or none"),
    ("--init-std", "init_std", float, "std of the initial weights (paper: 0.01)"),
    ("--init", "init", str, "normal (N(0, init-std^2) weights, zero biases; default) or uniform "
     "(weights and biases from U(-1/sqrt(fan-in), 1/sqrt(fan-in)), PyTorch's default)"),
    ("--inputs", "inputs", str, "unit (features as given: pixels / 255 in [0, 1]; default) or centered "
     "(2x - 1 in [-1, 1] before input dropout, as torchvision's Normalize((0.5,), (0.5,)))"),
    ("--checkpoint-every", "checkpoint_every", int, "epochs between checkpoints"),
    ("--eval-every", "eval_every", int, "epochs between test-set evaluations in the log"),
]
DISTILL_OVERRIDES = [
    ("--temperature", "temperature", float, "distillation temperature T (default 20)"),
    ("--soft-weight", "soft_weight", float, "weight of T^2 * soft cross-entropy"),
    ("--hard-weight", "hard_weight", float, "weight of the hard-label cross-entropy"),
    ("--transfer-jitter", "transfer_jitter", int,
     "distilled student: shift the transfer set's images by up to N px (teacher logits for every shift)"),
]


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
    """One flag per field of ``table``; ``prefix`` (``teacher-``) and ``model`` (``students``)
    say which model the flags set where a command trains several."""
    for flag, name, typ, help_ in table:
        p.add_argument(flag.replace("--", "--" + prefix), dest=prefix.replace("-", "_") + name,
                       type=typ, default=None, help=f"{model}: {help_}" if model else help_)


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

    for name, role in (("train-teacher", "teacher"), ("train-student", "student")):
        p = sub.add_parser(name, help=f"train the {role} alone ({'dropout, jitter, max-norm' if role == 'teacher' else 'no regularization'})")
        _add_common(p, name)
        p.add_argument("--resume", default=None, type=_given, metavar="RUN_DIR", help="continue a stopped run")
        _add_overrides(p, OVERRIDES)

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
    _add_overrides(p, [o for o in OVERRIDES + DISTILL_OVERRIDES if o[1] not in ("arch", "temperature")])

    p = sub.add_parser("plot", help="PNG figures of a distill run or a sweep (needs matplotlib)")
    p.add_argument("run_dirs", nargs="+", type=_given, metavar="RUN_DIR",
                   help="a run folder (distill, train-teacher, train-student) or a sweep folder; "
                   "several run folders: their learning curves in one figure (give --out)")
    p.add_argument("--out", default=None, type=_given, help="the PNG to write when comparing several runs")
    p.add_argument("--force", action="store_true", help="replace an existing --out")

    p = sub.add_parser("report", help="one table of several distill runs (e.g. seeds), mean and std")
    p.add_argument("run_dirs", nargs="+", type=_given, metavar="RUN_DIR", help="finished distill run folders")

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
    return parser


def flag_of(name, command):
    """The flag that sets the field ``name`` (``student.lr``) in ``command``, or None."""
    role, _, field = name.rpartition(".")
    own = flag_role(command)
    if role == "teacher" and command == "distill" and field != "seed":
        flag = next((f for f, name, _, _ in OVERRIDES if name == field), None)
        return flag and flag.replace("--", "--teacher-")
    if field == "seed" and role:
        return "--seed"
    if command == "sweep" and name == "student.arch":
        return "--widths"
    if role in ("", own):
        for flag, f, _, _ in OVERRIDES + DISTILL_OVERRIDES:
            if f == field:
                return flag
    if role == "sweep":
        return f"--{field}"
    return {"validation": "--validation", "train_limit": "--train-limit", "dataset": "--dataset",
            "backend": "--backend", "softmax_temperature": "--softmax-temperature", "out": "--out", "force": "--force",
            "teacher_checkpoint": "--teacher", "teacher_logits": "--teacher-logits",
            "teacher_outputs": "--teacher-outputs", "ensemble": "--ensemble",
            "absent_classes": "--omit-digit/--only-digits"}.get(name)


def in_flags(message, command):
    """Replace the engine's `field` names in a message by the flags that set them."""
    return re.sub(r"`([a-z_.][a-z0-9_.]*)`", lambda m: flag_of(m.group(1), command) or m.group(1), message)


