"""The command line: ``nnkd`` (``python main.py`` in a checkout) ``{distill,train-teacher,train-student,sweep,plot,report,evaluate,
export,data,gradcheck}``.

Every user mistake ends as one line ``error: ...`` on stderr, a non-zero exit
status and no traceback; nothing is written before the arguments are checked.
"""

import errno
import json
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..version import __version__
from ..backend import NAMES as BACKENDS, get_backend
from ..config import RunSpec, SettingError, SweepGrid, flag_role
from ..data.npz import expand_path, npz_path
from ..errors import Interrupted, UserError
from ..install import command_name, pretrained, shipped_models
from ..parallel import blas_kernels, kernel_note
from ..presets import default_teacher, preset, stand_in_note
from ..tables import count
from ..runs import Log, RunFolder, SafeOutput, check_same_teacher, is_empty, read_spec, write_spec
from ..train import StopFlag
from .parser import DISTILL_OVERRIDES, OVERRIDES, build_parser, in_flags
from .tools import cmd_data, cmd_evaluate, cmd_export, cmd_gradcheck, cmd_plot, cmd_report

RUNS = Path("runs")  # new runs go under the current folder


def spec_from_args(args):
    """The :class:`RunSpec` a command's flags ask for: the preset, then the flags (unchecked)."""
    cfgs, limit = preset(args.preset)
    table = OVERRIDES + (DISTILL_OVERRIDES if args.command in ("distill", "sweep") else [])
    role = flag_role(args.command)
    changes = {name: getattr(args, name) for _, name, _, _ in table if getattr(args, name, None) is not None}
    cfgs[role] = replace(cfgs[role], seed=getattr(args, "seed", 0), **changes)
    absent = []
    teacher_flags = {}
    if args.command == "distill":
        teacher_flags = {name: getattr(args, "teacher_" + name) for _, name, _, _ in OVERRIDES
                         if getattr(args, "teacher_" + name) is not None}
        cfgs["teacher"] = replace(cfgs["teacher"], seed=args.seed, **teacher_flags)
        absent = _absent_classes(args)
    source = _teacher_source(args)
    logits_file = getattr(args, "teacher_logits", None)  # two teachers: RunSpec.validate refuses them
    if logits_file and args.retrain_teacher:
        raise UserError("--retrain-teacher trains a teacher, --teacher-logits brings its logits: give one")
    if (source or logits_file) and teacher_flags:
        given = ", ".join("--teacher-" + name.replace("_", "-") for name in teacher_flags)
        raise UserError(f"{given} set up a teacher to train: add --retrain-teacher, or leave them out to "
                        f"distill from {source or logits_file}")
    grid = None
    if args.command == "sweep":
        grid = SweepGrid(temperatures=_numbers("--temperatures", args.temperatures, float),
                         widths=_numbers("--widths", args.widths, int),
                         seeds=_numbers("--seeds", args.seeds, int), jobs=args.jobs,
                         scheduler=args.scheduler)
    dataset = args.dataset
    if dataset.startswith("npz:"):  # a user's file: kept absolute, so --resume works from anywhere
        dataset = "npz:" + str(npz_path(dataset, resolve=True))
    return RunSpec(command=args.command, dataset=dataset, preset=args.preset, teacher=cfgs["teacher"],
                   student=cfgs["student"], validation=args.validation or (10000 if absent else 0),
                   train_limit=args.train_limit if args.train_limit is not None else limit,
                   teacher_checkpoint=source, teacher_logits=logits_file and str(Path(logits_file).expanduser().absolute()),
                   teacher_outputs=getattr(args, "teacher_outputs", None) or "logits",
                   baseline=not getattr(args, "no_baseline", False),
                   absent_classes=absent, sweep=grid)


def _new_run_dir(args):
    out = Path(args.out) if args.out else RUNS / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
    _require_empty(out)
    return out


def _require_empty(out):
    if not is_empty(out):
        raise UserError(f"{out} already holds files: continue that run with --resume {out}, "
                        "or choose another --out")


def _install_stop():
    stop = StopFlag()

    def handler(signum, frame):
        stop.signal = signal.Signals(signum).name

    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):  # no SIGHUP on Windows
        if signum is not None:
            signal.signal(signum, handler)
    return stop


def _absent_classes(args):
    """The classes that --omit-digit / --only-digits leave out of the transfer set."""
    if args.omit_digit and args.only_digits:
        raise UserError("--omit-digit and --only-digits exclude each other: give one")
    if args.omit_digit:
        return sorted(set(_numbers("--omit-digit", args.omit_digit, int)))
    if args.only_digits:  # fitted to the data's classes by _fit_absent_classes
        kept = _numbers("--only-digits", args.only_digits, int)
        return [d for d in range(10) if d not in kept]
    return []


def _fit_absent_classes(spec, args, n_classes):
    """--only-digits keeps the classes given: the others of the data's ``n_classes`` are absent."""
    if getattr(args, "only_digits", None):
        kept = _numbers("--only-digits", args.only_digits, int)
        if min(kept) < 0 or max(kept) >= n_classes:
            raise UserError(f"--only-digits {args.only_digits}: {spec.dataset} has classes 0 to {n_classes - 1}")
        spec.absent_classes = [c for c in range(n_classes) if c not in kept]


def _teacher_source(args):
    """--teacher CKPT (or MODEL.onnx), else the shipped teacher (MNIST only, without --teacher-logits),
    else None: train one."""
    if args.command not in ("distill", "sweep") or getattr(args, "retrain_teacher", False):
        return None
    if args.teacher:  # kept absolute in run.json, so --resume works from any folder
        path = expand_path(args.teacher, "--teacher")
        if not path.exists() and not path.is_symlink() and path.name == args.teacher and "." not in args.teacher:
            if args.teacher not in shipped_models():  # a bare name: a shipped teacher's
                raise UserError(f"--teacher {args.teacher}: no such file, and nnkd ships no model of that name "
                                f"(it ships {', '.join(shipped_models()) or 'none'}); give a checkpoint.npz, "
                                "an ONNX model, or one of those names")
            return str(pretrained(args.teacher))  # SHA-256 checked
        return str(path.absolute())
    if args.dataset != "mnist" or getattr(args, "teacher_logits", None):
        return None
    shipped = pretrained(default_teacher(args.preset))  # SHA-256 checked
    return str(shipped) if shipped else None


def _prepare(spec, args, log):
    """Load the data and the teacher, and validate the spec against them; writes nothing
    but the dataset cache (--dry-run: nothing at all, and a named dataset that is not cached
    yet is checked by its published sizes).  Returns (backend, dataset, teacher or None)."""
    from ..checkpoint import load_model
    from ..data import NotCached, load, published
    from ..teachers import is_onnx, open_teacher
    backend = get_backend(args.backend)
    labels = None
    try:
        ds = load(spec.dataset, log=log, fetch=not args.dry_run)
        labels = ds.train_labels
    except NotCached as exc:
        log(f"{exc}; the settings are checked against its published sizes")
        ds = published(spec.dataset)
    shape = ds.image_shape
    if not getattr(args, "resume", None):
        _fit_arch(spec, args, ds.n_features, ds.n_classes)
        _fit_absent_classes(spec, args, ds.n_classes)
    try:
        spec.validate(n_available=ds.train_images.shape[0], n_in=ds.n_features, n_classes=ds.n_classes,
                      image_side=min(shape) if shape else None, warn=log, train_labels=labels)
    except SettingError as exc:
        if exc.field == "validation" and spec.absent_classes and not args.validation:
            usable = min(spec.train_limit or ds.train_images.shape[0], ds.train_images.shape[0])
            raise UserError(f"--omit-digit and --only-digits hold out the last {spec.validation} training "
                            "images by default (--validation), to choose the bias correction on: that "
                            f"leaves none of the {usable} here; give a smaller --validation, e.g. "
                            f"--validation {max(1, usable // 6)}") from None
        if args.command in ("sweep",) or not args.resume:
            raise
        raise UserError(f"{args.resume}/run.json holds a setting that cannot be used: {exc.field} "
                        f"{exc.problem}") from None
    teacher = None
    if spec.teacher_logits or is_onnx(spec.teacher_checkpoint):
        resume = getattr(args, "resume", None)  # a logits file is then in the run folder
        teacher = open_teacher(spec, ds, backend, cache=resume and Path(resume) / "teacher_logits.npy")
    elif spec.teacher_checkpoint:
        if getattr(args, "resume", None):  # refused before run.json is lengthened
            check_same_teacher(spec.teacher_checkpoint, args.resume, record=False)
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
    """The run's first log line(s): what runs where, and notes when the BLAS is held back or a
    preset's own teacher is missing."""
    kernels = None if backend.is_gpu else blas_kernels()
    where = backend.describe() + (f" (OpenBLAS {kernels} kernels)" if kernels else "")
    notes = [n for n in (kernels and kernel_note(), stand_in_note(spec.preset, spec.teacher_checkpoint)) if n]
    head = f"nnkd {__version__}  {args.command}  preset {spec.preset}  {where}  run folder {out}"
    return "\n".join([head] + notes)


def _start(spec, args, out):
    """How every training command begins: load and check everything (writing nothing), then,
    unless --dry-run, the run's first log line.  Returns ``(log, backend, dataset, teacher)``,
    or None once --dry-run has printed the settings."""
    log = Log(echo=not args.quiet)
    backend, ds, teacher = _prepare(spec, args, log)
    if args.dry_run:
        _print_spec(spec)
        return None
    log(_header(args, spec, out, backend))
    return log, backend, ds, teacher


def _show_table(log, table, args, t0, out):
    """How a distill or a sweep ends: its table (printed even with --quiet), and the wall time."""
    log("")
    log(table)
    if args.quiet:
        print(table)
    log(f"\nwall time {(time.perf_counter() - t0) / 60:.1f} min; results in {out / 'results.md'}")


def cmd_train(args):
    """distill, train-teacher, train-student: new or resumed."""
    from ..pipeline import run_distill, train_alone
    if args.resume:
        out = Path(args.resume)
        if not (out / "run.json").is_file():
            if (out / "sweep.json").is_file():
                raise UserError(f"--resume {out}: a sweep folder; continue it with the same sweep command and --out {out}")
            raise UserError(f"--resume {out}: no run.json there; give a run folder written by nnkd")
        spec = read_spec(out / "run.json")
        if spec.command != args.command:
            raise UserError(f"--resume {out}: that run was made by `{spec.command}`, not `{args.command}`")
        lengthened = _lengthen_on_resume(spec, args)
    else:
        spec = spec_from_args(args)
        out = _new_run_dir(args)
    started = _start(spec, args, out)
    if started is None:
        return 0
    log, backend, ds, teacher = started
    stop = _install_stop()
    t0 = time.perf_counter()
    # Checked again holding the folder's lock: another command may have started in it meanwhile.
    with RunFolder(out, log, check=None if args.resume else lambda: _require_empty(out)):
        if not args.resume or lengthened:
            write_spec(out / "run.json", spec, nnkd_version=__version__)
        try:
            if spec.command == "distill":
                _, table = run_distill(spec, backend, ds, out, log=log, stop=stop, teacher=teacher)
                _show_table(log, table, args, t0, out)
            else:
                train_alone(spec, backend, ds, out, log=log, stop=stop)
        except Interrupted as exc:
            raise Interrupted(f"{exc}; continue with: {command_name()} {args.command} --resume {out}") from None
    return 0


# What --resume accepts beside the run folder: where it runs, and a longer run.
RESUME_KEEPS = {"command", "resume", "dry_run", "backend"}
RESUME_LENGTHENS = {"epochs": None, "teacher_epochs": "teacher"}  # flag dest -> model (None: the flags' own)


def _lengthen_on_resume(spec, args):
    """``--resume`` continues a run with the settings of its run.json.  ``--epochs`` (and
    ``--teacher-epochs``) may lengthen it where the schedule allows; any other flag is
    refused in one line, never ignored.  Returns whether the spec changed."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[args.command]
    flags = {a.dest: a.option_strings[0] for a in sub._actions if a.option_strings}
    defaults = vars(parser.parse_args([args.command]))
    given = [flags.get(k, k) for k, v in vars(args).items()
             if k not in RESUME_KEEPS and k not in RESUME_LENGTHENS and v != defaults.get(k)]
    if given:
        raise UserError(f"--resume continues {args.resume} with the settings of its run.json: leave out "
                        f"{', '.join(given)} (only --epochs{' and --teacher-epochs' if args.command == 'distill' else ''} "
                        "may change, to lengthen the run), or start a new run with --out")
    changed = False
    for dest, role in RESUME_LENGTHENS.items():
        n = getattr(args, dest, None)
        role = role or flag_role(args.command)
        cfg = getattr(spec, role)
        if n is None or n == cfg.epochs or role not in spec.roles:
            continue
        if n < cfg.epochs:
            raise UserError(f"{flags[dest]} {n}: the run's {role} is set to {count(cfg.epochs, 'epoch')}; --resume "
                            "may lengthen a run, not shorten it")
        if cfg.lr_schedule == "cosine":
            raise UserError(f"{flags[dest]} {n}: the {role}'s cosine schedule is laid out over the run's "
                            f"{count(cfg.epochs, 'epoch')}, so a run of another length is a new run: start one with --out")
        setattr(spec, role, replace(cfg, epochs=n))
        changed = True
    return changed


def _numbers(flag, text, typ):
    """A comma-separated list of numbers of type ``typ``; their ranges are checked with the
    rest of the settings (:meth:`RunSpec.validate`)."""
    try:
        return [typ(v) for v in text.split(",")]
    except ValueError:
        what = "whole numbers" if typ is int else "numbers"
        raise UserError(f"{flag} {text!r}: give {what} separated by commas, e.g. 1,2,4") from None


def _check_sweep_folder(out, spec):
    """A sweep folder is new (empty), or holds a sweep of the same settings: continued."""
    if (out / "sweep.json").exists():
        # The grid may grow (more seeds, widths, temperatures); what trains a cell may not change.
        saved = read_spec(out / "sweep.json").to_dict()
        same = ("configs", "teacher_checkpoint", "dataset", "validation", "train_limit")
        mine = spec.to_dict()
        if any(saved.get(k) != mine[k] for k in same) or saved["configs"]["student"] != mine["configs"]["student"]:
            raise UserError(f"{out} holds a sweep with other settings: give the same settings to "
                            "continue or extend it, or choose another --out")
        check_same_teacher(spec.teacher_checkpoint, out, record=False)  # its logits are that teacher's
    elif not is_empty(out):
        raise UserError(f"{out} already holds files that are not a sweep: choose another --out")


def cmd_sweep(args):
    from contextlib import nullcontext
    from ..cluster import SweepCluster, require_dask, wanted
    from ..sweep import run_sweep
    spec = spec_from_args(args)
    if spec.teacher_checkpoint is None:
        raise UserError(f"a sweep distills from a trained teacher: give --teacher CHECKPOINT (train one "
                        f"with `{command_name()} train-teacher --dataset {args.dataset}`)")
    out = Path(args.out) if args.out else RUNS / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    _check_sweep_folder(out, spec)
    if wanted(spec.sweep):
        require_dask()
    started = _start(spec, args, out)
    if started is None:
        return 0
    log, backend, ds, teacher = started
    t0 = time.perf_counter()
    # The cluster first: an unreachable scheduler is refused before anything is written.
    cluster = SweepCluster(spec.sweep.scheduler, spec.sweep.jobs, log) if wanted(spec.sweep) else nullcontext()
    with cluster as cluster, RunFolder(out, log, check=lambda: _check_sweep_folder(out, spec)):
        write_spec(out / "sweep.json", spec, nnkd_version=__version__)
        log(f"teacher: {spec.teacher_checkpoint}")
        try:
            _, table = run_sweep(spec, backend, ds, teacher[0], out, log=log, cluster=cluster)
        except Interrupted as exc:
            raise Interrupted(f"{exc}; continue with the same command") from None
    _show_table(log, table, args, t0, out)
    return 0


COMMANDS = {"distill": cmd_train, "train-teacher": cmd_train, "train-student": cmd_train, "sweep": cmd_sweep,
            "plot": cmd_plot, "report": cmd_report, "evaluate": cmd_evaluate, "export": cmd_export,
            "data": cmd_data, "gradcheck": cmd_gradcheck}


def main(argv=None):
    args = build_parser().parse_args(argv)
    stdout = sys.stdout
    sys.stdout = out = SafeOutput(stdout) if stdout is not None else None
    try:
        rc = _run(args)
    finally:
        sys.stdout = stdout
    error = out.error if out is not None else None
    if error is not None and error.errno != errno.EPIPE:  # a closed pipe (`| head`) is no error
        print(f"error: cannot write to standard output ({error.strerror or error}): what was printed "
              "after that is lost (a run's log.txt keeps every line)", file=sys.stderr)
        return rc or 1
    return rc


def _run(args):
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
    except OSError as exc:  # a full disk or a folder that cannot be written, outside checkpoints
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot write{where} ({exc.strerror or exc}); checkpoints already written are "
              "intact: free space or choose another --out", file=sys.stderr)
        return 2
