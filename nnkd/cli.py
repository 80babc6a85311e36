"""The command line: ``python main.py {distill,train-teacher,train-student,sweep,plot,report,evaluate,
export,data,gradcheck}``.

Every user mistake ends as one line ``error: ...`` on stderr, a non-zero exit
status and no traceback; nothing is written before the arguments are checked.
"""

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from . import __version__
from .backend import NAMES as BACKENDS
from .errors import Interrupted, UserError
from .presets import PRESETS, preset
from .train import StopFlag, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
TRAIN_SIZE = 60000  # MNIST and Fashion-MNIST
PRETRAINED_TEACHER = ROOT / "pretrained" / "teacher" / "checkpoint.npz"

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
    ("--max-norm-on", "max_norm_squared", lambda s: {"squared": True, "norm": False}[s],
     "what --max-norm bounds: squared (length^2, the paper) or norm"),
    ("--max-norm-bias", "max_norm_bias", lambda s: {"yes": True, "no": False}[s],
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
    parser = Parser(prog="main.py", description="nnkd: knowledge distillation on NumPy/CuPy "
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
    p.add_argument("--preset", default="fast", help="student settings of this preset (default fast)")
    p.add_argument("--out", default=None, help="sweep folder; the same command again continues it")
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    p.add_argument("--validation", type=int, default=0, help="hold out the last N training images")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    _add_overrides(p, [o for o in OVERRIDES + DISTILL_OVERRIDES if o[1] not in ("arch", "temperature")])

    p = sub.add_parser("plot", help="PNG figures of a distill run or a sweep (needs matplotlib)")
    p.add_argument("run_dir", help="a run folder (distill, train-teacher, train-student) or a sweep folder")

    p = sub.add_parser("report", help="one table of several distill runs (e.g. seeds), mean and std")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished distill run folders")

    p = sub.add_parser("evaluate", help="test errors, per-class errors and confusion matrix")
    p.add_argument("checkpoint", help="a checkpoint.npz written by nnkd")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--dataset", default="mnist")

    p = sub.add_parser("export", help="write a checkpoint's weights alone (no optimizer state), to share")
    p.add_argument("checkpoint", help="a checkpoint.npz written by nnkd")
    p.add_argument("dest", help="where to write the weights-only checkpoint (.npz)")

    p = sub.add_parser("data", help="fetch, verify and describe a dataset")
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")

    p = sub.add_parser("gradcheck", help="finite-difference gradient checks in float64")
    p.add_argument("--backend", default="numpy")
    return parser


def _configs(args):
    """The TrainConfigs a training command asked for: preset, then flags."""
    cfgs, limit = preset(args.preset)
    table = OVERRIDES + (DISTILL_OVERRIDES if args.command in ("distill", "sweep") else [])
    role = {"train-teacher": "teacher"}.get(args.command, "student")
    changes = {name: getattr(args, name) for _, name, _, _ in table if getattr(args, name, None) is not None}
    cfgs[role] = replace(cfgs[role], seed=getattr(args, "seed", 0), **changes)
    if args.command == "distill":
        t = {"seed": args.seed}
        if args.teacher_epochs is not None:
            t["epochs"] = args.teacher_epochs
        if args.teacher_lr is not None:
            t["lr"] = args.teacher_lr
        cfgs["teacher"] = replace(cfgs["teacher"], **t)
    return cfgs, args.train_limit if args.train_limit is not None else limit


def _new_run_dir(args):
    out = Path(args.out) if args.out else ROOT / "runs" / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} already holds files: continue that run with --resume {out}, "
                        "or choose another --out")
    return out


class Log:
    """Print a line (unless ``echo`` is false) and append it to the run's log.txt."""

    def __init__(self, path=None, echo=True):
        self.path, self.echo = path, echo

    def __call__(self, line):
        if self.echo:
            print(line, flush=True)
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")


def _open_folder(args, out, settings_file, settings):
    """Check the backend, write the settings into the run folder, open its log, load the data."""
    from .backend import get_backend
    from .data import load
    backend = get_backend(args.backend)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / settings_file).write_text(json.dumps(settings, indent=1))
    except OSError as exc:
        raise UserError(f"cannot write the run folder {out} ({exc.strerror or exc}): choose another "
                        "--out") from None
    log = Log(out / "log.txt")
    log(f"nnkd {__version__}  {args.command}  preset {settings['preset']}  {backend.describe()}  "
        f"run folder {out}")
    return backend, log, load(settings["dataset"], log=log)


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


def _check_dataset(name):
    from .data import SPECS
    if name not in SPECS:
        raise UserError(f"unknown dataset {name!r}: expected one of {', '.join(SPECS)}")


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


def _teacher_checkpoint(args):
    """--teacher CKPT, else the shipped teacher (MNIST only), else None: train one.
    A bad path or a teacher trained on other data is refused before anything is written."""
    from .checkpoint import load as load_ckpt
    from .data import checksum
    if args.retrain_teacher:
        return None
    if args.teacher:
        _, meta = load_ckpt(args.teacher)
        if meta.get("data_checksum") not in (None, checksum(args.dataset)):
            raise UserError(f"--teacher {args.teacher} was trained on other data than {args.dataset}: "
                            "give a teacher trained on it, or --retrain-teacher")
        return args.teacher
    if args.dataset == "mnist" and PRETRAINED_TEACHER.exists():
        _verify_shipped_teacher()
        return str(PRETRAINED_TEACHER)
    return None


def cmd_train(args):
    if args.resume:
        out = Path(args.resume)
        if not (out / "run.json").is_file():
            raise UserError(f"--resume {out}: no run.json there; give a run folder written by nnkd")
        saved = json.loads((out / "run.json").read_text())
        if saved["command"] != args.command:
            raise UserError(f"--resume {out}: that run was made by `{saved['command']}`, not `{args.command}`")
        cfgs = {k: TrainConfig.from_dict(v) for k, v in saved["configs"].items()}
        run = saved
    else:
        cfgs, limit = _configs(args)
        if limit is not None and limit < 1:
            raise UserError(f"--train-limit must be a positive number of images, got {limit}")
        if args.validation < 0:
            raise UserError(f"--validation must not be negative, got {args.validation}")
        _check_dataset(args.dataset)
        absent = _absent_classes(args) if args.command == "distill" else []
        validation = args.validation or (10000 if absent else 0)
        n_train = min(limit or TRAIN_SIZE, TRAIN_SIZE) - validation
        if n_train < 1:
            raise UserError(f"--validation {validation} leaves no training images")
        for cfg in cfgs.values():
            cfg.validate(n_train=n_train)
        teacher_ckpt = _teacher_checkpoint(args) if args.command == "distill" else None
        run = {"command": args.command, "dataset": args.dataset, "validation": validation,
               "configs": {k: asdict(v) for k, v in cfgs.items()}, "teacher_checkpoint": teacher_ckpt,
               "baseline": not getattr(args, "no_baseline", False), "preset": args.preset,
               "train_limit": limit, "absent_classes": absent,
               "nnkd_version": __version__}
        out = _new_run_dir(args)
    backend, log, ds = _open_folder(args, out, "run.json", run)
    stop = _install_stop()
    try:
        _train_commands(args, run, cfgs, backend, ds, out, log, stop)
    except Interrupted as exc:
        raise Interrupted(f"{exc}; continue with: python main.py {args.command} --resume {out}") from None
    return 0


def _train_commands(args, run, cfgs, backend, ds, out, log, stop):
    from .pipeline import device_data, run_distill
    from .train import train

    t0 = time.perf_counter()
    if args.command == "distill":
        settings = dict(cfgs, teacher_checkpoint=run["teacher_checkpoint"], baseline=run["baseline"],
                        validation=run["validation"], train_limit=run["train_limit"],
                        absent_classes=run.get("absent_classes", []))
        results, table = run_distill(settings, backend, ds, out, log=log, stop=stop)
        log("")
        log(table)
        log(f"\nwall time {(time.perf_counter() - t0) / 60:.1f} min; results in {out / 'results.md'}")
    else:
        role = "teacher" if args.command == "train-teacher" else "student"
        data = device_data(ds, backend, run["validation"], train_limit=run["train_limit"])
        _, summary = train(cfgs[role], backend, data, out / role, log=log, stop=stop,
                           data_checksum=ds.checksum)
        log(f"{role}: {summary['test_errors']} test errors in {summary['seconds'] / 60:.1f} min; "
            f"checkpoint {out / role / 'checkpoint.npz'}")


def _numbers(flag, text, typ):
    """A comma-separated list of positive numbers (seeds may be 0)."""
    lowest = 0 if flag == "--seeds" else 1e-12
    try:
        values = [typ(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < lowest:
        raise UserError(f"{flag} {text!r}: give positive numbers separated by commas, e.g. 1,2,4")
    return values


def cmd_sweep(args):
    from .checkpoint import load as load_ckpt
    from .sweep import cell_config, run_sweep
    from .train import load_weights

    _check_dataset(args.dataset)
    cfgs, limit = _configs(args)
    settings = {"temperatures": _numbers("--temperatures", args.temperatures, float),
                "widths": _numbers("--widths", args.widths, int),
                "seeds": _numbers("--seeds", args.seeds, int), "dataset": args.dataset,
                "validation": args.validation, "train_limit": limit}
    if args.jobs < 1:
        raise UserError(f"--jobs must be a positive whole number, got {args.jobs}")
    args.retrain_teacher = False
    teacher_ckpt = _teacher_checkpoint(args)
    if teacher_ckpt is None:
        raise UserError(f"a sweep distills from a trained teacher: give --teacher CHECKPOINT (train one "
                        f"with `python main.py train-teacher --dataset {args.dataset}`)")
    n_train = min(limit or TRAIN_SIZE, TRAIN_SIZE) - args.validation
    if args.validation < 0 or n_train < 1 or (limit is not None and limit < 1):
        raise UserError(f"--validation {args.validation} and --train-limit {limit} leave no training "
                        "images: give a non-negative --validation below the number of images")
    for width in settings["widths"]:
        cell_config(cfgs["student"], width, 1.0, 0).validate(n_train=n_train)
    record = dict(settings, student=asdict(cfgs["student"]), teacher_checkpoint=teacher_ckpt,
                  nnkd_version=__version__)
    out = Path(args.out) if args.out else ROOT / "runs" / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "sweep.json").exists():
        # The grid may grow (more seeds, widths, temperatures); what trains a cell may not change.
        saved = json.loads((out / "sweep.json").read_text())
        same = ("student", "teacher_checkpoint", "dataset", "validation", "train_limit")
        if any(saved.get(k) != record[k] for k in same):
            raise UserError(f"{out} holds a sweep with other settings: give the same settings to "
                            "continue or extend it, or choose another --out")
    elif out.exists() and any(out.iterdir()):
        raise UserError(f"{out} already holds files that are not a sweep: choose another --out")
    backend, log, ds = _open_folder(args, out, "sweep.json", dict(record, preset=args.preset))
    _, meta = load_ckpt(teacher_ckpt)
    teacher = TrainConfig.from_dict(meta["config"]).build(backend)
    load_weights(teacher, teacher_ckpt)
    log(f"teacher: {teacher_ckpt}")
    t0 = time.perf_counter()
    try:
        _, table = run_sweep(dict(settings, student=cfgs["student"], jobs=args.jobs), backend, ds,
                             teacher, out, log=log)
    except Interrupted as exc:
        raise Interrupted(f"{exc}; continue with the same command") from None
    log("")
    log(table)
    log(f"\nwall time {(time.perf_counter() - t0) / 60:.1f} min; results in {out / 'results.md'}")
    return 0


def cmd_plot(args):
    from .plots import plot
    plot(args.run_dir)
    return 0


def cmd_report(args):
    from .pipeline import runs_table
    print(runs_table(args.run_dirs))
    return 0


def cmd_evaluate(args):
    from .backend import get_backend
    from .checkpoint import load as load_ckpt
    from .data import load
    from .pipeline import device_data, evaluate
    from .train import load_weights

    _, meta = load_ckpt(args.checkpoint)
    if "config" not in meta:
        raise UserError(f"{args.checkpoint} holds no model configuration")
    backend = get_backend(args.backend)
    cfg = TrainConfig.from_dict(meta["config"])
    net = cfg.build(backend)
    load_weights(net, args.checkpoint)
    ds = load(args.dataset)
    r = evaluate(net, device_data(ds, backend))
    print(f"{args.checkpoint}: {cfg.arch}, epoch {meta.get('epoch')}")
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
    if dest.exists():
        raise UserError(f"{dest} exists; choose another destination")
    export_weights(args.checkpoint, dest, exported_from=str(args.checkpoint))
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
    from .backend import get_backend
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


COMMANDS = {"distill": cmd_train, "sweep": cmd_sweep, "plot": cmd_plot, "report": cmd_report, "train-teacher": cmd_train, "train-student": cmd_train,
            "evaluate": cmd_evaluate, "export": cmd_export, "data": cmd_data, "gradcheck": cmd_gradcheck}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "backend", "numpy") not in BACKENDS:
            raise UserError(f"unknown backend {args.backend!r}: expected one of {', '.join(BACKENDS)}")
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
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
