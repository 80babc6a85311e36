"""The command line: ``python main.py {distill,train-teacher,train-student,sweep,plot,report,evaluate,
export,data,gradcheck}``.

Every user mistake ends as one line ``error: ...`` on stderr, a non-zero exit
status and no traceback; nothing is written before the arguments are checked.
"""

import argparse
import json
import math
import re
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from . import __version__
from .backend import NAMES as BACKENDS, get_backend
from .config import RunSpec, SettingError, SweepGrid
from .errors import Interrupted, UserError
from .presets import PRESETS, preset
from .runs import Log, RunFolder, is_empty, read_spec, write_spec
from .train import StopFlag

ROOT = Path(__file__).resolve().parent.parent
PRETRAINED_TEACHER = ROOT / "pretrained" / "teacher" / "checkpoint.npz"

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
    ("--dropout-input", "dropout_input", float, "dropout rate of the input, in [0, 1)"),
    ("--dropout-hidden", "dropout_hidden", float, "dropout rate of each hidden layer, in [0, 1)"),
    ("--jitter", "jitter", int, "max random shift of the input images in pixels (0 = off)"),
    ("--max-norm", "max_norm", float, "max-norm bound (0 = off; paper: 15 on the squared length)"),
    ("--max-norm-on", "max_norm_squared", _word({"squared": True, "norm": False}),
     "what --max-norm bounds: squared (length^2, the paper) or norm"),
    ("--max-norm-bias", "max_norm_bias", _word({"yes": True, "no": False}),
     "whether the bias counts in a unit's length: yes or no"),
    ("--max-norm-layers", "max_norm_layers", str, "hidden (paper), all or none"),
    ("--init-std", "init_std", float, "std of the initial weights (paper: 0.01)"),
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
    """argparse, but a bad flag value is a one-line error with exit status 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def _add_common(p, default_out):
    p.add_argument("--dry-run", action="store_true",
                   help="check every setting against the data, print the run's settings and stop "
                   "(writes nothing)")
    p.add_argument("--backend", default="numpy", help="numpy (default, CPU) or cupy (NVIDIA GPU)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--preset", default="fast", help=f"one of {', '.join(PRESETS)} (default fast)")
    p.add_argument("--out", default=None, help=f"run folder (default runs/{default_out}-<time>)")
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    p.add_argument("--validation", type=int, default=0,
                   help="hold out the last N training images for a validation error (default 0)")
    p.add_argument("--train-limit", type=int, default=None,
                   help="use only the first N training images (default: all; smoke preset: 5000)")


def _add_overrides(p, table, prefix=""):
    for flag, name, typ, help_ in table:
        p.add_argument(flag.replace("--", "--" + prefix), dest=prefix.replace("-", "_") + name,
                       type=typ, default=None, help=help_)


def build_parser():
    parser = Parser(prog=Path(sys.argv[0]).name or "main.py", description="nnkd: knowledge distillation on NumPy/CuPy "
                    "(Hinton, Vinyals & Dean 2015, MNIST)")
    parser.add_argument("--version", action="version", version=f"nnkd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("distill", help="the main job: teacher, baseline and distilled student, table")
    _add_common(p, "distill")
    p.add_argument("--teacher", default=None, help="teacher checkpoint.npz to distill from")
    p.add_argument("--retrain-teacher", action="store_true",
                   help="train the teacher from scratch instead of using the shipped one")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline student")
    p.add_argument("--omit-digit", default=None, metavar="D[,D...]",
                   help="leave these classes out of the students' transfer set (paper: 3); the bias "
                   "correction is then chosen on --validation images (default 10000)")
    p.add_argument("--only-digits", default=None, metavar="D,D[,...]",
                   help="keep only these classes in the students' transfer set (paper: 7,8)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a stopped run")
    _add_overrides(p, OVERRIDES + DISTILL_OVERRIDES)
    p.add_argument("--teacher-epochs", type=int, default=None, help="teacher epochs (when training one)")
    p.add_argument("--teacher-lr", type=float, default=None, help="teacher lr0 (when training one)")

    for name, role in (("train-teacher", "teacher"), ("train-student", "student")):
        p = sub.add_parser(name, help=f"train the {role} alone ({'dropout, jitter, max-norm' if role == 'teacher' else 'no regularization'})")
        _add_common(p, name)
        p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a stopped run")
        _add_overrides(p, OVERRIDES)

    p = sub.add_parser("sweep", help="distilled students over temperatures x widths x seeds, one teacher")
    p.add_argument("--temperatures", default="1,2,4,8,20", help="comma-separated (default 1,2,4,8,20)")
    p.add_argument("--widths", default="800,300,30", help="hidden units per layer (default 800,300,30)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    p.add_argument("--jobs", type=int, default=1, help="cells trained in parallel processes (default 1)")
    p.add_argument("--teacher", default=None, help="teacher checkpoint.npz (default: the shipped one)")
    p.add_argument("--backend", default="numpy", help="numpy (default, CPU) or cupy (NVIDIA GPU)")
    p.add_argument("--dry-run", action="store_true", help="check the settings, print them and stop")
    p.add_argument("--preset", default="fast", help="student settings of this preset (default fast)")
    p.add_argument("--out", default=None, help="sweep folder; the same command again continues it")
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    p.add_argument("--validation", type=int, default=0, help="hold out the last N training images")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    _add_overrides(p, [o for o in OVERRIDES + DISTILL_OVERRIDES if o[1] not in ("arch", "temperature")])

    p = sub.add_parser("plot", help="PNG figures of a distill run or a sweep (needs matplotlib)")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="a run folder (distill, train-teacher, train-student) or a sweep folder; "
                   "several run folders: their learning curves in one figure (give --out)")
    p.add_argument("--out", default=None, help="the PNG to write when comparing several runs")

    p = sub.add_parser("report", help="one table of several distill runs (e.g. seeds), mean and std")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished distill run folders")

    p = sub.add_parser("evaluate", help="test errors, per-class errors and confusion matrix")
    p.add_argument("checkpoint", help="a checkpoint.npz written by nnkd")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--dataset", default="mnist")

    p = sub.add_parser("export", help="write a checkpoint's weights alone (no optimizer state), to share")
    p.add_argument("checkpoint", help="a checkpoint.npz written by nnkd")
    p.add_argument("dest", help="where to write the weights-only checkpoint (.npz; its metadata goes "
                   "beside it as .json)")
    p.add_argument("--force", action="store_true", help="replace an existing destination")

    p = sub.add_parser("data", help="fetch, verify and describe a dataset")
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")

    p = sub.add_parser("gradcheck", help="finite-difference gradient checks in float64")
    p.add_argument("--backend", default="numpy")
    return parser


def flag_of(name, command):
    """The flag that sets the field ``name`` (``student.lr``) in ``command``, or None."""
    role, _, field = name.rpartition(".")
    own = {"train-teacher": "teacher"}.get(command, "student")
    if role == "teacher" and command == "distill" and field in ("epochs", "lr"):
        return f"--teacher-{field}"
    if field == "seed" and role:
        return "--seed"
    if role in ("", own):
        for flag, f, _, _ in OVERRIDES + DISTILL_OVERRIDES:
            if f == field:
                return flag
    if role == "sweep":
        return f"--{field}"
    if command == "sweep" and name == "student.arch":
        return "--widths"
    return {"validation": "--validation", "train_limit": "--train-limit", "dataset": "--dataset",
            "absent_classes": "--omit-digit/--only-digits"}.get(name)


def _in_flags(message, command):
    """Replace the engine's `field` names in a message by the flags that set them."""
    return re.sub(r"`([a-z_.]+)`", lambda m: flag_of(m.group(1), command) or m.group(1), message)


def spec_from_args(args):
    """The :class:`RunSpec` a command's flags ask for: the preset, then the flags (unchecked)."""
    cfgs, limit = preset(args.preset)
    table = OVERRIDES + (DISTILL_OVERRIDES if args.command in ("distill", "sweep") else [])
    role = {"train-teacher": "teacher"}.get(args.command, "student")
    changes = {name: getattr(args, name) for _, name, _, _ in table if getattr(args, name, None) is not None}
    cfgs[role] = replace(cfgs[role], seed=getattr(args, "seed", 0), **changes)
    absent = []
    if args.command == "distill":
        t = {"seed": args.seed}
        if args.teacher_epochs is not None:
            t["epochs"] = args.teacher_epochs
        if args.teacher_lr is not None:
            t["lr"] = args.teacher_lr
        cfgs["teacher"] = replace(cfgs["teacher"], **t)
        absent = _absent_classes(args)
    source = _teacher_source(args)
    if source and args.command == "distill" and (args.teacher_epochs is not None or args.teacher_lr is not None):
        raise UserError("--teacher-epochs and --teacher-lr set up a teacher to train: add --retrain-teacher, "
                        f"or leave them out to distill from {source}")
    grid = None
    if args.command == "sweep":
        grid = SweepGrid(temperatures=_numbers("--temperatures", args.temperatures, float),
                         widths=_numbers("--widths", args.widths, int),
                         seeds=_numbers("--seeds", args.seeds, int), jobs=args.jobs)
    dataset = args.dataset
    if dataset.startswith("npz:"):  # a user's file: kept absolute, so --resume works from anywhere
        dataset = "npz:" + str(Path(dataset[4:]).expanduser().resolve())
    return RunSpec(command=args.command, dataset=dataset, preset=args.preset, teacher=cfgs["teacher"],
                   student=cfgs["student"], validation=args.validation or (10000 if absent else 0),
                   train_limit=args.train_limit if args.train_limit is not None else limit,
                   teacher_checkpoint=source, baseline=not getattr(args, "no_baseline", False),
                   absent_classes=absent, sweep=grid)


def _new_run_dir(args):
    out = Path(args.out) if args.out else ROOT / "runs" / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not is_empty(out):
        raise UserError(f"{out} already holds files: continue that run with --resume {out}, "
                        "or choose another --out")
    return out


def _install_stop():
    stop = StopFlag()

    def handler(signum, frame):
        stop.signal = signal.Signals(signum).name

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _verify_shipped_teacher():
    """The shipped teacher must match its recorded SHA-256 (a damaged clone or LFS pointer)."""
    import hashlib
    expected = (PRETRAINED_TEACHER.parent / "SHA256SUMS").read_text().split()[0]
    got = hashlib.sha256(PRETRAINED_TEACHER.read_bytes()).hexdigest()
    if got != expected:
        raise UserError(f"the shipped teacher {PRETRAINED_TEACHER} fails its SHA-256 check: restore it "
                        "with `git checkout pretrained/`, or train one with --retrain-teacher")


def _digits(flag, text):
    try:
        digits = sorted({int(d) for d in text.split(",")})
    except ValueError:
        digits = None
    if not digits or not all(0 <= d <= 9 for d in digits):
        raise UserError(f"{flag} {text!r}: give digits 0-9 separated by commas, e.g. 3 or 7,8")
    return digits


def _absent_classes(args):
    """The classes that --omit-digit / --only-digits leave out of the transfer set."""
    if args.omit_digit and args.only_digits:
        raise UserError("--omit-digit and --only-digits exclude each other: give one")
    if args.omit_digit:
        absent = _digits("--omit-digit", args.omit_digit)
    elif args.only_digits:
        kept = _digits("--only-digits", args.only_digits)
        absent = [d for d in range(10) if d not in kept]
    else:
        return []
    if len(absent) == 10:
        raise UserError("--omit-digit leaves no class in the transfer set")
    return absent


def _teacher_source(args):
    """--teacher CKPT, else the shipped teacher (MNIST only), else None: train one."""
    if args.command not in ("distill", "sweep") or getattr(args, "retrain_teacher", False):
        return None
    if args.teacher:
        return args.teacher
    if args.dataset == "mnist" and PRETRAINED_TEACHER.exists():
        _verify_shipped_teacher()
        return str(PRETRAINED_TEACHER)
    return None


def _prepare(spec, args, log):
    """Load the data and the teacher, and validate the spec against them; writes nothing
    but the dataset cache.  Returns (backend, dataset, teacher or None)."""
    from .checkpoint import load_model
    from .data import load
    backend = get_backend(args.backend)
    ds = load(spec.dataset, log=log)
    shape = ds.image_shape
    if not getattr(args, "resume", None):
        _fit_arch(spec, args, ds.n_features, ds.n_classes)
    try:
        spec.validate(n_available=ds.train_images.shape[0], n_in=ds.n_features, n_classes=ds.n_classes,
                      image_side=min(shape) if shape else None, warn=log)
    except SettingError as exc:
        if args.command in ("sweep",) or not args.resume:
            raise
        raise UserError(f"{args.resume}/run.json holds a setting that cannot be used: {exc.field} "
                        f"{exc.problem}") from None
    teacher = None
    if spec.teacher_checkpoint:
        teacher = load_model(spec.teacher_checkpoint, backend, data_checksum=ds.checksum,
                             dataset=spec.dataset)
        sizes = teacher[0].sizes
        if (sizes[0], sizes[-1]) != (ds.n_features, ds.n_classes):
            raise UserError(f"the teacher {spec.teacher_checkpoint} is {'-'.join(map(str, sizes))}, but "
                            f"{spec.dataset} has {ds.n_features} inputs and {ds.n_classes} classes")
    return backend, ds, teacher


def _print_spec(spec):
    print("settings are valid; nothing was written (--dry-run):")
    print(json.dumps(spec.to_dict(), indent=1))
    return 0


def _fit_arch(spec, args, n_in, n_classes):
    """A preset's architectures take the data's input and class counts (784 and 10 for MNIST);
    an --arch the user gave is kept as given and checked against the data."""
    for role in ("teacher", "student"):
        cfg = getattr(spec, role)
        given = getattr(args, "arch", None) is not None and role == {"train-teacher": "teacher"}.get(
            args.command, "student")
        parts = cfg.arch.split("-")
        if not given and len(parts) >= 2:
            setattr(spec, role, replace(cfg, arch="-".join([str(n_in)] + parts[1:-1] + [str(n_classes)])))


def _header(args, spec, out, backend_name):
    return f"nnkd {__version__}  {args.command}  preset {spec.preset}  {backend_name}  run folder {out}"


def cmd_train(args):
    """distill, train-teacher, train-student: new or resumed."""
    from .pipeline import run_distill, train_alone
    if args.resume:
        out = Path(args.resume)
        if not (out / "run.json").is_file():
            raise UserError(f"--resume {out}: no run.json there; give a run folder written by nnkd")
        spec = read_spec(out / "run.json")
        if spec.command != args.command:
            raise UserError(f"--resume {out}: that run was made by `{spec.command}`, not `{args.command}`")
    else:
        spec = spec_from_args(args)
        out = _new_run_dir(args)
    log = Log()
    backend, ds, teacher = _prepare(spec, args, log)
    if args.dry_run:
        return _print_spec(spec)
    log(_header(args, spec, out, backend.describe()))
    stop = _install_stop()
    t0 = time.perf_counter()
    with RunFolder(out, log):
        if not args.resume:
            write_spec(out / "run.json", spec, nnkd_version=__version__)
        try:
            if spec.command == "distill":
                _, table = run_distill(spec, backend, ds, out, log=log, stop=stop, teacher=teacher)
                log("")
                log(table)
                log(f"\nwall time {(time.perf_counter() - t0) / 60:.1f} min; results in {out / 'results.md'}")
            else:
                train_alone(spec, backend, ds, out, log=log, stop=stop)
        except Interrupted as exc:
            raise Interrupted(f"{exc}; continue with: python main.py {args.command} --resume {out}") from None
    return 0


def _numbers(flag, text, typ):
    """A comma-separated list of positive numbers (seeds may be 0)."""
    lowest = 0 if flag == "--seeds" else 1e-12
    try:
        values = [typ(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < lowest or not all(math.isfinite(v) for v in values):
        raise UserError(f"{flag} {text!r}: give positive numbers separated by commas, e.g. 1,2,4")
    return values


def cmd_sweep(args):
    from .sweep import run_sweep
    spec = spec_from_args(args)
    if spec.teacher_checkpoint is None:
        raise UserError(f"a sweep distills from a trained teacher: give --teacher CHECKPOINT (train one "
                        f"with `python main.py train-teacher --dataset {args.dataset}`)")
    out = Path(args.out) if args.out else ROOT / "runs" / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "sweep.json").exists():
        # The grid may grow (more seeds, widths, temperatures); what trains a cell may not change.
        saved = read_spec(out / "sweep.json").to_dict()
        same = ("configs", "teacher_checkpoint", "dataset", "validation", "train_limit")
        mine = spec.to_dict()
        if any(saved.get(k) != mine[k] for k in same) or saved["configs"]["student"] != mine["configs"]["student"]:
            raise UserError(f"{out} holds a sweep with other settings: give the same settings to "
                            "continue or extend it, or choose another --out")
    elif not is_empty(out):
        raise UserError(f"{out} already holds files that are not a sweep: choose another --out")
    log = Log()
    backend, ds, teacher = _prepare(spec, args, log)
    if args.dry_run:
        return _print_spec(spec)
    log(_header(args, spec, out, backend.describe()))
    t0 = time.perf_counter()
    with RunFolder(out, log):
        write_spec(out / "sweep.json", spec, nnkd_version=__version__)
        log(f"teacher: {spec.teacher_checkpoint}")
        try:
            _, table = run_sweep(spec, backend, ds, teacher[0], out, log=log)
        except Interrupted as exc:
            raise Interrupted(f"{exc}; continue with the same command") from None
    log("")
    log(table)
    log(f"\nwall time {(time.perf_counter() - t0) / 60:.1f} min; results in {out / 'results.md'}")
    return 0


def cmd_plot(args):
    from .plots import plot
    if len(args.run_dirs) > 1 and not args.out:
        raise UserError("plotting several runs together writes one figure: give --out FIGURE.png")
    if args.out and not args.out.endswith(".png"):
        raise UserError(f"--out {args.out}: give a file name ending in .png")
    plot(args.run_dirs[0], others=args.run_dirs[1:], out=args.out)
    return 0


def cmd_report(args):
    from .pipeline import runs_table
    print(runs_table(args.run_dirs))
    return 0


def cmd_evaluate(args):
    from .checkpoint import load_model
    from .data import load
    from .pipeline import device_data, evaluate

    backend = get_backend(args.backend)
    net, meta = load_model(args.checkpoint, backend)
    ds = load(args.dataset)
    r = evaluate(net, device_data(ds, backend))
    print(f"{args.checkpoint}: {'-'.join(map(str, net.sizes))}, epoch {meta.get('epoch')}")
    print(f"test errors: {r['errors']} of {r['n']} ({100 * r['errors'] / r['n']:.2f}%)")
    print("errors per class: " + "  ".join(f"{c}:{e}" for c, e in enumerate(r["per_class_errors"])))
    print("confusion matrix (rows: true class, columns: predicted):")
    print("      " + "".join(f"{c:6d}" for c in range(len(r["confusion"]))))
    for c, row in enumerate(r["confusion"]):
        print(f"{c:6d}" + "".join(f"{v:6d}" for v in row))
    return 0


def cmd_export(args):
    import hashlib
    from .train import export_weights
    dest = Path(args.dest)
    export_weights(args.checkpoint, dest, force=args.force, exported_from=Path(args.checkpoint).name)
    print(f"{dest}: sha256 {hashlib.sha256(dest.read_bytes()).hexdigest()}")
    return 0


def cmd_data(args):
    from .data import describe, load
    t0 = time.perf_counter()
    ds = load(args.dataset)
    for line in describe(ds):
        print(line)
    print(f"time      {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_gradcheck(args):
    from .gradcheck import standard_checks
    backend = get_backend(args.backend)
    results = standard_checks(backend)
    print(f"gradient checks, float64, {backend.describe()}")
    print(f"{'component':42s} {'shape':>10s} {'max rel error':>14s}  result")
    for r in results:
        print(f"{r.name:42s} {'x'.join(map(str, r.shape)):>10s} {r.max_rel_error:14.2e}  "
              f"{'pass' if r.passed else 'FAIL'}")
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(r.details)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


COMMANDS = {"distill": cmd_train, "train-teacher": cmd_train, "train-student": cmd_train, "sweep": cmd_sweep,
            "plot": cmd_plot, "report": cmd_report, "evaluate": cmd_evaluate, "export": cmd_export,
            "data": cmd_data, "gradcheck": cmd_gradcheck}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "backend", "numpy") not in BACKENDS:
            raise UserError(f"unknown backend {args.backend!r}: expected one of {', '.join(BACKENDS)}")
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {_in_flags(str(exc), args.command)}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error worth a message
        return 1
    except OSError as exc:  # a full disk or a folder that cannot be written, outside checkpoints
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write{where} ({exc.strerror or exc}); checkpoints already written are "
              "intact: free space or choose another --out", file=sys.stderr)
        return 2
