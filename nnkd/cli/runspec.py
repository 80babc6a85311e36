"""From flags to a :class:`~nnkd.config.RunSpec`: the preset, then the flags the user gave; the
teacher to distill from; the settings a resumed run may change.  Values are checked later, with
the data, by :meth:`RunSpec.validate`."""

from dataclasses import replace
from pathlib import Path

from ..config import RunSpec, SweepGrid, flag_role
from ..data.npz import expand_path, npz_path
from ..errors import UserError
from ..install import command_name, find_model, is_model_name, pretrained
from ..presets import default_teacher, preset
from ..tables import count
from ..schedules import make_schedule
from .parser import DISTILL_OVERRIDES, OVERRIDES, RESUMABLE, build_parser


def spec_from_args(args):
    """The :class:`RunSpec` a command's flags ask for: the preset, then the flags (unchecked)."""
    cfgs, limit = preset(args.preset)
    table = OVERRIDES + (DISTILL_OVERRIDES if args.command in ("distill", "sweep") else [])
    role = flag_role(args.command)
    changes = {f.field: getattr(args, f.field) for f in table if getattr(args, f.field, None) is not None}
    cfgs[role] = replace(cfgs[role], seed=getattr(args, "seed", 0), **changes)
    absent = []
    teacher_flags = {}
    if args.command == "distill":
        teacher_flags = {f.field: getattr(args, "teacher_" + f.field) for f in OVERRIDES
                         if getattr(args, "teacher_" + f.field) is not None}
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
                   ensemble=getattr(args, "ensemble", None) or "arithmetic",
                   baseline=not getattr(args, "no_baseline", False),
                   absent_classes=absent, sweep=grid)


def _absent_classes(args):
    """The classes that --omit-digit / --only-digits leave out of the transfer set."""
    if args.omit_digit and args.only_digits:
        raise UserError("--omit-digit and --only-digits exclude each other: give one")
    if args.omit_digit:
        return sorted(set(_numbers("--omit-digit", args.omit_digit, int)))
    if args.only_digits:  # fitted to the data's classes by fit_absent_classes
        kept = _numbers("--only-digits", args.only_digits, int)
        return [d for d in range(10) if d not in kept]
    return []


def fit_absent_classes(spec, args, n_classes):
    """--only-digits keeps the classes given: the others of the data's ``n_classes`` are absent."""
    if getattr(args, "only_digits", None):
        kept = _numbers("--only-digits", args.only_digits, int)
        if min(kept) < 0 or max(kept) >= n_classes:
            raise UserError(f"--only-digits {args.only_digits}: {spec.dataset} has classes 0 to {n_classes - 1}")
        spec.absent_classes = [c for c in range(n_classes) if c not in kept]


def _teacher_source(args):
    """--teacher CKPT (or MODEL.onnx, or LOGITS.npy; several: a list, an ensemble), else the shipped
    teacher (MNIST only, without --teacher-logits), else None: train one."""
    if args.command not in ("distill", "sweep") or getattr(args, "retrain_teacher", False):
        return None
    if args.teacher:  # kept absolute in run.json, so --resume works from any folder
        sources = [_one_teacher(t) for t in args.teacher]
        if len(sources) > 1 and getattr(args, "teacher_logits", None):
            sources.append(str(Path(args.teacher_logits).expanduser().absolute()))
            args.teacher_logits = None  # a member of the ensemble
        if len(set(sources)) < len(sources):
            raise UserError("--teacher names one teacher twice: give each member of an ensemble once")
        return sources[0] if len(sources) == 1 else sources
    if args.dataset != "mnist" or getattr(args, "teacher_logits", None):
        return None
    shipped = pretrained(default_teacher(args.preset))  # SHA-256 checked
    return str(shipped) if shipped else None


def _one_teacher(text):
    if is_model_name(text):  # a bare name: a shipped teacher's, SHA-256 checked
        return str(find_model(text, "--teacher"))
    return str(expand_path(text, "--teacher").absolute())


def fit_arch(spec, args, n_in, n_classes):
    """A preset's architectures take the data's input and class counts (784 and 10 for MNIST);
    an --arch the user gave is kept as given and checked against the data."""
    for role in ("teacher", "student"):
        cfg = getattr(spec, role)
        given = getattr(args, "arch", None) is not None and role == flag_role(args.command)
        parts = cfg.arch.split("-")
        if not given and len(parts) >= 2:
            setattr(spec, role, replace(cfg, arch="-".join([str(n_in)] + parts[1:-1] + [str(n_classes)])))


MNIST_IMAGES = (28, 28)  # what the presets' jitter was tuned on


def fit_to_data(spec, args, image_shape):
    """A preset's jitter shifts 28x28 MNIST digits by up to 2 pixels; on images of another size
    (or data that is not images) it is off unless a flag asks for it.  Returns the run header's
    one line for a dataset other than MNIST (the preset was tuned on MNIST), else None."""
    if spec.dataset == "mnist":
        return None
    changed = []
    if tuple(image_shape or ()) != MNIST_IMAGES:
        own = flag_role(args.command)
        for role in spec.roles:
            cfg = getattr(spec, role)
            prefix = "" if role == own else "teacher_"
            kept = {f: 0 for f in ("jitter", "transfer_jitter")
                    if getattr(cfg, f) and getattr(args, prefix + f, None) is None}
            if kept:
                changed += [f"--{prefix.replace('_', '-')}{f.replace('_', '-')} {getattr(cfg, f)}" for f in kept]
                setattr(spec, role, replace(cfg, **kept))
    size = "x".join(map(str, image_shape)) + " images" if image_shape else "data that is not images"
    jitter = (f"; its jitter ({', '.join(changed)}) is off for {size} unless a flag asks for it"
              if changed else "")
    return (f"note: preset {spec.preset} was tuned on MNIST; on {spec.dataset} its widths, learning rates and "
            f"epochs are a starting point{jitter}")


# What --resume accepts beside the run folder: where it runs, and the settings declared resumable
# (flag dest -> model; None: the model the command's flags set).
RESUME_KEEPS = {"command", "resume", "dry_run", "backend"}
RESUME_CHANGES = {**{name: None for name in RESUMABLE}, **{"teacher_" + name: "teacher" for name in RESUMABLE}}


def lengthen_on_resume(spec, args):
    """``--resume`` continues a run with the settings of its run.json.  The settings declared
    resumable (``--epochs``, and ``--teacher-epochs``) may lengthen it where the schedule
    allows; any other flag is refused in one line, never ignored.  Returns whether the spec
    changed."""
    flags = given_flags(args)
    given = [flag for dest, flag in flags.items() if dest not in RESUME_KEEPS and dest not in RESUME_CHANGES]
    if given:
        allowed = [f"--{dest.replace('_', '-')}" for dest, role in RESUME_CHANGES.items()
                   if role is None or args.command == "distill"]
        raise UserError(f"--resume continues {args.resume} with the settings of its run.json: leave out "
                        f"{', '.join(given)} (only {' and '.join(allowed)} may change, to lengthen the run), "
                        "or start a new run with --out")
    changed = False
    for dest, role in RESUME_CHANGES.items():
        n = getattr(args, dest, None)
        role = role or flag_role(args.command)
        cfg = getattr(spec, role)
        if n is None or n == cfg.epochs or role not in spec.roles:
            continue
        if n < cfg.epochs:
            raise UserError(f"{flags[dest]} {n}: the run's {role} is set to {count(cfg.epochs, 'epoch')}; --resume "
                            "may lengthen a run, not shorten it")
        if make_schedule(cfg).depends_on_length:
            raise UserError(f"{flags[dest]} {n}: the {role}'s {cfg.lr_schedule} schedule is laid out over the run's "
                            f"{count(cfg.epochs, 'epoch')}, so a run of another length is a new run: start one with --out")
        setattr(spec, role, replace(cfg, epochs=n))
        changed = True
    return changed


def given_flags(args):
    """``{dest: flag}`` of the flags given on the command line, in the order of ``args``: those
    in ``args.argv`` (set by :func:`nnkd.cli.main`; a flag given at its default value counts),
    else those whose value differs from the command's default."""
    import argparse
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[args.command]
    flags = {a.dest: a.option_strings[0] for a in sub._actions if a.option_strings}
    argv = getattr(args, "argv", None)
    if argv is None:
        defaults = vars(parser.parse_args([args.command]))
        given = {k for k, v in vars(args).items() if v != defaults.get(k)}
    else:
        for action in sub._actions:
            if action.option_strings:
                action.default = argparse.SUPPRESS  # a flag not given leaves no attribute
        given = set(vars(parser.parse_args(argv)))
    return {k: flags.get(k, k) for k in vars(args) if k in given and k not in ("command", "argv")}


# What each flag sets in a RunSpec, beyond the TrainConfig fields of OVERRIDES: (attribute, ...).
SETS = {"dataset": ("dataset",), "validation": ("validation",), "train_limit": ("train_limit",),
        "teacher": ("teacher_checkpoint",), "retrain_teacher": ("teacher_checkpoint",),
        "teacher_logits": ("teacher_logits", "teacher_checkpoint"), "teacher_outputs": ("teacher_outputs",),
        "ensemble": ("ensemble",),
        "no_baseline": ("baseline",), "omit_digit": ("absent_classes", "validation"),
        "only_digits": ("absent_classes", "validation"), "temperatures": ("sweep.temperatures",),
        "widths": ("sweep.widths",), "seeds": ("sweep.seeds",), "jobs": ("sweep.jobs",),
        "scheduler": ("sweep.scheduler",)}
# Flags that only say how or where a command runs, never what it trains.
RUNS_ONLY = {"config", "dry_run", "backend", "quiet", "out"}


def spec_from_record(args):
    """``--config RUN/run.json``: the settings that run recorded, with the flags given beside it
    put in their place.  Returns ``(spec, overridden)``: ``overridden`` lists those flags, for
    the run's header."""
    from ..runs import read_spec
    path = Path(args.config)
    if path.is_dir():
        path = path / ("sweep.json" if args.command == "sweep" else "run.json")
    if not path.is_file():
        raise UserError(f"--config {args.config}: no such file; give the run.json of a run folder (or a "
                        "sweep's sweep.json)")
    recorded = read_spec(path)
    if recorded.command != args.command:
        raise UserError(f"--config {path}: that run was made by {recorded.command}, not {args.command}: "
                        f"run `{command_name()} {recorded.command} --config {path}`")
    given = {dest: flag for dest, flag in given_flags(args).items() if dest not in RUNS_ONLY}
    for dest in ("preset", "resume"):
        if dest in given:
            raise UserError(f"--config {path} gives every setting of the run: leave out {given[dest]} "
                            "(flags beside --config change single settings)")
    if not given:
        return recorded, []
    if args.command == "distill" and recorded.teacher_checkpoint is None and not recorded.teacher_logits \
            and "teacher" not in given and "teacher_logits" not in given:
        args.retrain_teacher = True  # the recorded run trained its teacher: flags may change it
    fresh = spec_from_args(args)
    role = flag_role(args.command)
    for dest in given:
        targets = SETS.get(dest)
        if targets is None and dest == "seed":
            targets = tuple(f"{r}.seed" for r in ("teacher", "student") if r == role or args.command == "distill")
        elif targets is None and dest.startswith("teacher_"):
            targets = (f"teacher.{dest[len('teacher_'):]}",)
        elif targets is None:
            targets = (f"{role}.{dest}",)
        for target in targets:
            owner, _, name = target.rpartition(".")
            if owner in ("teacher", "student"):
                setattr(recorded, owner, replace(getattr(recorded, owner), **{name: getattr(getattr(fresh, owner), name)}))
            elif owner == "sweep":
                setattr(recorded.sweep, name, getattr(fresh.sweep, name))
            else:
                setattr(recorded, name, getattr(fresh, name))
    return recorded, [f"{flag} {_shown(getattr(args, dest))}" for dest, flag in given.items()]


def _shown(value):
    return "" if value is True else str(value)


def _numbers(flag, text, typ):
    """A comma-separated list of numbers of type ``typ``; their ranges are checked with the
    rest of the settings (:meth:`RunSpec.validate`)."""
    try:
        return [typ(v) for v in text.split(",")]
    except ValueError:
        what = "whole numbers" if typ is int else "numbers"
        raise UserError(f"{flag} {text!r}: give {what} separated by commas, e.g. 1,2,4") from None
