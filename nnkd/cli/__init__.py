"""The command line: ``python main.py {distill,train-teacher,train-student,sweep,plot,report,evaluate,
export,data,gradcheck}``.

Every user mistake ends as one line ``error: ...`` on stderr, a non-zero exit
status and no traceback; nothing is written before the arguments are checked.
"""

import json
import math
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..version import __version__
from ..backend import NAMES as BACKENDS, get_backend
from ..config import RunSpec, SettingError, SweepGrid, flag_role
from ..errors import Interrupted, UserError
from ..parallel import blas_kernels, kernel_note
from ..presets import preset
from ..runs import Log, RunFolder, is_empty, read_spec, write_spec
from ..train import StopFlag
from .parser import DISTILL_OVERRIDES, OVERRIDES, build_parser, in_flags

ROOT = Path(__file__).resolve().parent.parent.parent
PRETRAINED_TEACHER = ROOT / "pretrained" / "teacher" / "checkpoint.npz"


def spec_from_args(args):
    """The :class:`RunSpec` a command's flags ask for: the preset, then the flags (unchecked)."""
    cfgs, limit = preset(args.preset)
    table = OVERRIDES + (DISTILL_OVERRIDES if args.command in ("distill", "sweep") else [])
    role = flag_role(args.command)
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
    logits_file = getattr(args, "teacher_logits", None)  # two teachers: RunSpec.validate refuses them
    if logits_file and args.retrain_teacher:
        raise UserError("--retrain-teacher trains a teacher, --teacher-logits brings its logits: give one")
    if (source or logits_file) and args.command == "distill" and (args.teacher_epochs is not None or args.teacher_lr is not None):
        raise UserError("--teacher-epochs and --teacher-lr set up a teacher to train: add --retrain-teacher, "
                        f"or leave them out to distill from {source or logits_file}")
    grid = None
    if args.command == "sweep":
        grid = SweepGrid(temperatures=_numbers("--temperatures", args.temperatures, float),
                         widths=_numbers("--widths", args.widths, int),
                         seeds=_numbers("--seeds", args.seeds, int), jobs=args.jobs,
                         scheduler=args.scheduler)
    dataset = args.dataset
    if dataset.startswith("npz:"):  # a user's file: kept absolute, so --resume works from anywhere
        dataset = "npz:" + str(Path(dataset[4:]).expanduser().resolve())
    return RunSpec(command=args.command, dataset=dataset, preset=args.preset, teacher=cfgs["teacher"],
                   student=cfgs["student"], validation=args.validation or (10000 if absent else 0),
                   train_limit=args.train_limit if args.train_limit is not None else limit,
                   teacher_checkpoint=source, teacher_logits=logits_file and str(Path(logits_file).expanduser().absolute()),
                   teacher_outputs=getattr(args, "teacher_outputs", None) or "logits",
                   baseline=not getattr(args, "no_baseline", False),
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
    """--teacher CKPT (or MODEL.onnx), else the shipped teacher (MNIST only, without --teacher-logits),
    else None: train one."""
    if args.command not in ("distill", "sweep") or getattr(args, "retrain_teacher", False):
        return None
    if args.teacher:  # kept absolute in run.json, so --resume works from any folder
        return str(Path(args.teacher).expanduser().absolute())
    if args.dataset == "mnist" and PRETRAINED_TEACHER.exists() and not getattr(args, "teacher_logits", None):
        _verify_shipped_teacher()
        return str(PRETRAINED_TEACHER)
    return None


def _prepare(spec, args, log):
    """Load the data and the teacher, and validate the spec against them; writes nothing
    but the dataset cache.  Returns (backend, dataset, teacher or None)."""
    from ..checkpoint import load_model
    from ..data import load
    from ..teachers import is_onnx, open_teacher
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
    if spec.teacher_logits or is_onnx(spec.teacher_checkpoint):
        resume = getattr(args, "resume", None)  # a logits file is then in the run folder
        teacher = open_teacher(spec, ds, backend, cache=resume and Path(resume) / "teacher_logits.npy")
    elif spec.teacher_checkpoint:
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
        given = getattr(args, "arch", None) is not None and role == flag_role(args.command)
        parts = cfg.arch.split("-")
        if not given and len(parts) >= 2:
            setattr(spec, role, replace(cfg, arch="-".join([str(n_in)] + parts[1:-1] + [str(n_classes)])))


def _header(args, spec, out, backend):
    """The run's first log line(s): what runs where, and a note when the BLAS is held back."""
    where, note = backend.describe(), None
    kernels = None if backend.is_gpu else blas_kernels()
    if kernels:
        where += f" (OpenBLAS {kernels} kernels)"
        note = kernel_note()
    return f"nnkd {__version__}  {args.command}  preset {spec.preset}  {where}  run folder {out}" + \
        (f"\n{note}" if note else "")


def cmd_train(args):
    """distill, train-teacher, train-student: new or resumed."""
    from ..pipeline import run_distill, train_alone
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
    log(_header(args, spec, out, backend))
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
    from contextlib import nullcontext
    from ..cluster import SweepCluster, require_dask, wanted
    from ..sweep import run_sweep
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
    if wanted(spec.sweep):
        require_dask()
    log = Log()
    backend, ds, teacher = _prepare(spec, args, log)
    if args.dry_run:
        return _print_spec(spec)
    log(_header(args, spec, out, backend))
    t0 = time.perf_counter()
    # The cluster first: an unreachable scheduler is refused before anything is written.
    cluster = SweepCluster(spec.sweep.scheduler, spec.sweep.jobs, log) if wanted(spec.sweep) else nullcontext()
    with cluster as cluster, RunFolder(out, log):
        write_spec(out / "sweep.json", spec, nnkd_version=__version__)
        log(f"teacher: {spec.teacher_checkpoint}")
        try:
            _, table = run_sweep(spec, backend, ds, teacher[0], out, log=log, cluster=cluster)
        except Interrupted as exc:
            raise Interrupted(f"{exc}; continue with the same command") from None
    log("")
    log(table)
    log(f"\nwall time {(time.perf_counter() - t0) / 60:.1f} min; results in {out / 'results.md'}")
    return 0


def cmd_plot(args):
    from ..plots import plot
    if len(args.run_dirs) > 1 and not args.out:
        raise UserError("plotting several runs together writes one figure: give --out FIGURE.png")
    if args.out and not args.out.endswith(".png"):
        raise UserError(f"--out {args.out}: give a file name ending in .png")
    plot(args.run_dirs[0], others=args.run_dirs[1:], out=args.out)
    return 0


def cmd_report(args):
    from ..tables import runs_table
    print(runs_table(args.run_dirs))
    return 0


def cmd_evaluate(args):
    from ..checkpoint import load_model
    from ..data import load
    from ..data import device_data
    from ..evaluation import evaluate

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
    dest = Path(args.dest)
    T = args.softmax_temperature
    if args.format == "onnx":
        from ..onnx_export import export_onnx
        if T is not None and not (math.isfinite(T) and T > 0):
            raise UserError(f"--softmax-temperature {T:g} must be a finite number > 0, e.g. 1 or 20")
        r = export_onnx(args.checkpoint, dest, softmax_temperature=T, force=args.force)
        what = "logits" if T is None else f"softmax(logits / {T:g})"
        print(f"{dest}: ONNX opset {r['opset']}, {'-'.join(map(str, r['sizes']))}, {r['bytes']:,} bytes, "
              f"sha256 {r['sha256']}")
        print(f"input 'input' float32 [N, {r['sizes'][0]}] -> output '{r['output']}' float32 "
              f"[N, {r['sizes'][-1]}] = {what}")
        return 0
    if T is not None:
        raise UserError("--softmax-temperature applies to --format onnx only: the .npz export holds the "
                        "weights, not an output layer")
    from ..checkpoint import export_weights
    export_weights(args.checkpoint, dest, force=args.force, exported_from=Path(args.checkpoint).name)
    print(f"{dest}: sha256 {hashlib.sha256(dest.read_bytes()).hexdigest()}")
    return 0


def cmd_data(args):
    from ..data import describe, load
    t0 = time.perf_counter()
    ds = load(args.dataset)
    for line in describe(ds):
        print(line)
    print(f"time      {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_gradcheck(args):
    from ..gradcheck import standard_checks
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
        print(f"error: {in_flags(str(exc), args.command)}", file=sys.stderr, flush=True)
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
