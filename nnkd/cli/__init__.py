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
from pathlib import Path

from ..version import __version__
from ..backend import NAMES as BACKENDS
from ..checks import SettingError
from ..errors import Interrupted, UserError
from ..install import command_name
from ..parallel import blas_kernels, kernel_note, step_threads
from ..stepmode import describe as describe_step
from ..presets import stand_in_note
from ..commands import (check_sweep_folder, prepare, read_resumed, require_empty, sweep_in_folder,
                        train_in_folder)
from ..runs import Log, SafeOutput
from ..train import StopFlag, machine_step_mode
from .parser import build_parser, in_flags
from .runspec import (fit_absent_classes, fit_arch, fit_to_data, lengthen_on_resume, spec_from_args,
                      spec_from_record)
from .tools import cmd_data, cmd_evaluate, cmd_export, cmd_gradcheck, cmd_plot, cmd_report, cmd_teachers

RUNS = Path("runs")  # new runs go under the current folder


def _new_run_dir(args):
    out = Path(args.out) if args.out else RUNS / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
    require_empty(out)
    return out


def _install_stop():
    stop = StopFlag()

    def handler(signum, frame):
        stop.signal = signal.Signals(signum).name

    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):  # no SIGHUP on Windows
        if signum is not None:
            signal.signal(signum, handler)
    return stop


def _prepare(spec, args, log):
    """:func:`nnkd.commands.prepare` for these flags: a new run's preset fitted to the data; a
    setting that cannot be used said in the flags' terms.  Returns a :class:`~nnkd.commands.Prepared`."""
    resume = getattr(args, "resume", None)

    def fit(spec, ds):
        fit_arch(spec, args, ds.n_features, ds.n_classes)
        fit_absent_classes(spec, args, ds.n_classes)
        return fit_to_data(spec, args, ds.image_shape)
    try:
        pinned_by = resume  # a run or sweep continued: its recorded teachers pin the teacher files
        if args.command == "sweep" and args.out and (Path(args.out) / "sweep.json").is_file():
            pinned_by = args.out
        return prepare(spec, args.backend, log, fetch=not args.dry_run, resume=resume,
                       fit=None if resume else fit, pinned_by=pinned_by)
    except SettingError as exc:
        if exc.field == "validation" and spec.absent_classes and not args.validation:
            raise UserError(f"--omit-digit and --only-digits hold out the last {spec.validation} training "
                            f"images by default (--validation), to choose the bias correction on: "
                            f"{exc.problem}") from None
        if args.command == "sweep" or not resume:
            raise
        raise UserError(f"{resume}/run.json holds a setting that cannot be used: {exc.field} "
                        f"{exc.problem}") from None


def _new_spec(args):
    """The settings of a new run: from its flags, or from a recorded run (--config) and the flags
    that change it (kept in ``args.overridden`` for the header)."""
    if getattr(args, "config", None):
        if getattr(args, "resume", None):
            raise UserError("--resume continues a run with its own settings; --config starts a new run "
                            "with a recorded run's settings: give one")
        spec, args.overridden = spec_from_record(args)
        return spec
    return spec_from_args(args)


def _print_spec(spec):
    print("settings are valid; nothing was written (--dry-run):")
    print(json.dumps(spec.to_dict(), indent=1))


def _header(args, spec, out, backend, data_note=None):
    """The run's first log line(s): what runs where, and notes when the BLAS is held back, a
    preset's own teacher is missing, or the preset was tuned on other data (``data_note``)."""
    kernels = None if backend.is_gpu else blas_kernels()
    details = [f"OpenBLAS {kernels} kernels"] if kernels else []
    if not backend.is_gpu:  # the products' rounding depends on the threads and mode (nnkd.stepmode)
        n = step_threads(backend)
        details.append(describe_step(*machine_step_mode(backend, n), n))
    where = backend.describe() + (f" ({', '.join(details)})" if details else "")
    notes = [n for n in (kernels and kernel_note(), stand_in_note(spec.preset, spec.teacher_checkpoint),
                         data_note) if n]
    if getattr(args, "config", None):
        changed = getattr(args, "overridden", [])
        notes.append(f"settings from {args.config}" + (f", changed by {', '.join(changed)}" if changed else
                                                       ", none changed"))
    head = f"nnkd {__version__}  {args.command}  preset {spec.preset}  {where}  run folder {out}"
    return "\n".join([head] + notes)


def _start(spec, args, out, check=None):
    """How every training command begins: load and check everything (writing nothing), then
    ``check()`` (the settings fitted to the data), then, unless --dry-run, the run's first log
    line.  Returns ``(log, prepared)`` (:class:`~nnkd.commands.Prepared`), or None once
    --dry-run has printed the settings."""
    log = Log(echo=not args.quiet)
    prepared = _prepare(spec, args, log)
    if check:
        check()
    if args.dry_run:
        if prepared.note:
            log(prepared.note)
        _print_spec(spec)
        return None
    log(_header(args, spec, out, prepared.backend, prepared.note))
    return log, prepared


def _show_table(log, table, args, t0, out):
    """How a distill or a sweep ends: its table (printed even with --quiet), and the wall time."""
    log("")
    log(table)
    if args.quiet:
        print(table)
    log(f"\nwall time {(time.perf_counter() - t0) / 60:.1f} min; results in {out / 'results.md'}")


def cmd_train(args):
    """distill, train-teacher, train-student: new or resumed."""
    lengthened = False
    if args.resume:
        out = Path(args.resume)
        spec = read_resumed(out, args.command)
        lengthened = lengthen_on_resume(spec, args)
    else:
        spec = _new_spec(args)
        out = _new_run_dir(args)
    started = _start(spec, args, out)
    if started is None:
        return 0
    log, prepared = started
    stop = _install_stop()
    t0 = time.perf_counter()
    try:
        table = train_in_folder(spec, out, prepared, log, stop, resume=bool(args.resume), lengthened=lengthened)
    except Interrupted as exc:
        raise Interrupted(f"{exc}; continue with: {command_name()} {args.command} --resume {out}") from None
    if table is not None:
        _show_table(log, table, args, t0, out)
    return 0


def cmd_sweep(args):
    from ..cluster import require_dask, wanted
    spec = _new_spec(args)
    if spec.teacher_checkpoint is None:
        raise UserError(f"a sweep distills from a trained teacher: give --teacher CHECKPOINT (train one "
                        f"with `{command_name()} train-teacher --dataset {args.dataset}`)")
    out = Path(args.out) if args.out else RUNS / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if not (out / "sweep.json").exists():
        check_sweep_folder(out, spec)  # a folder of other files: refused before the data is loaded
    if wanted(spec.sweep):
        require_dask()
    started = _start(spec, args, out, check=lambda: check_sweep_folder(out, spec))
    if started is None:
        return 0
    log, prepared = started
    stop = None if wanted(spec.sweep) else _install_stop()  # a Dask sweep stops on KeyboardInterrupt
    t0 = time.perf_counter()
    try:
        table = sweep_in_folder(spec, out, prepared, log, stop)
    except Interrupted as exc:
        raise Interrupted(f"{exc}; continue with the same command") from None
    _show_table(log, table, args, t0, out)
    return 0


COMMANDS = {"distill": cmd_train, "train-teacher": cmd_train, "train-student": cmd_train, "sweep": cmd_sweep,
            "plot": cmd_plot, "report": cmd_report, "evaluate": cmd_evaluate, "export": cmd_export,
            "teachers": cmd_teachers, "data": cmd_data, "gradcheck": cmd_gradcheck}


def _replace_unencodable():
    """Write to stdout and stderr in their own encoding, with any character it lacks (the ± of
    a table, a folder's name under PYTHONIOENCODING=ascii) replaced instead of raising."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError, OSError):  # not a text stream of io's
            pass


def main(argv=None):
    _replace_unencodable()
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # which flags were given (--config, --resume)
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
