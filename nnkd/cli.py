"""The command line: ``python main.py {distill,train-teacher,train-student,evaluate,data,gradcheck}``.

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
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a stopped run")
    _add_overrides(p, OVERRIDES + DISTILL_OVERRIDES)
    p.add_argument("--teacher-epochs", type=int, default=None, help="teacher epochs (when training one)")
    p.add_argument("--teacher-lr", type=float, default=None, help="teacher lr0 (when training one)")

    for name, role in (("train-teacher", "teacher"), ("train-student", "student")):
        p = sub.add_parser(name, help=f"train the {role} alone ({'dropout, jitter, max-norm' if role == 'teacher' else 'no regularization'})")
        _add_common(p, name)
        p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue a stopped run")
        _add_overrides(p, OVERRIDES)

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
    table = OVERRIDES + (DISTILL_OVERRIDES if args.command == "distill" else [])
    role = {"train-teacher": "teacher"}.get(args.command, "student")
    changes = {name: getattr(args, name) for _, name, _, _ in table if getattr(args, name) is not None}
    cfgs[role] = replace(cfgs[role], seed=args.seed, **changes)
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
    """Print a line and append it to the run's log.txt."""

    def __init__(self, path=None):
        self.path = path

    def __call__(self, line):
        print(line, flush=True)
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")


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


def cmd_train(args):
    from .backend import get_backend
    from .data import load

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
        n_train = min(limit or TRAIN_SIZE, TRAIN_SIZE) - args.validation
        if n_train < 1:
            raise UserError(f"--validation {args.validation} leaves no training images")
        for cfg in cfgs.values():
            cfg.validate(n_train=n_train)
        teacher_ckpt = None
        if args.command == "distill" and not args.retrain_teacher:
            # --teacher CKPT, else the shipped teacher, else train one.
            if args.teacher:
                teacher_ckpt = args.teacher
                from .checkpoint import load as load_ckpt
                load_ckpt(args.teacher)  # refuse a bad path before anything is written
            elif PRETRAINED_TEACHER.exists():
                teacher_ckpt = str(PRETRAINED_TEACHER)
                _verify_shipped_teacher()
        run = {"command": args.command, "dataset": args.dataset, "validation": args.validation,
               "configs": {k: asdict(v) for k, v in cfgs.items()}, "teacher_checkpoint": teacher_ckpt,
               "baseline": not getattr(args, "no_baseline", False), "preset": args.preset,
               "train_limit": limit,
               "nnkd_version": __version__}
        out = _new_run_dir(args)
    backend = get_backend(args.backend)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps(run, indent=1))
    except OSError as exc:
        raise UserError(f"cannot write the run folder {out} ({exc.strerror or exc}): choose another "
                        "--out") from None
    log = Log(out / "log.txt")
    log(f"nnkd {__version__}  {args.command}  preset {run['preset']}  {backend.describe()}  run folder {out}")
    ds = load(run["dataset"], log=log)
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
                        validation=run["validation"], train_limit=run["train_limit"])
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


COMMANDS = {"distill": cmd_train, "train-teacher": cmd_train, "train-student": cmd_train,
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
