"""What the training commands do once their settings are a :class:`~nnkd.config.RunSpec`:
load the data and the teacher and check the spec against them (:func:`prepare`), check the run
folder, then train in it (:func:`train_in_folder`, :func:`sweep_in_folder`).  The command
line (:mod:`nnkd.cli`) parses flags into a spec and calls these; nothing here knows a flag.
"""

from dataclasses import dataclass
from pathlib import Path

from .backend import get_backend
from .errors import UserError
from .runs import RunFolder, is_empty, read_spec, write_spec
from .version import __version__


@dataclass
class Prepared:
    """What a training command runs with: the backend, the dataset, the teacher (loaded, or
    None: trained by the run or not needed) and a note for the run's header (or None)."""

    backend: object
    dataset: object
    teacher: object = None
    note: str | None = None


def prepare(spec, backend_name, log, fetch=True, resume=None, fit=None, pinned_by=None):
    """Load the data and the teacher, and check ``spec`` against them (its values, then this
    machine's memory); writes nothing but the dataset cache.  ``fetch`` False (a dry run):
    nothing at all, and a named dataset that is not cached yet is checked by its published
    sizes.  ``resume``: the run folder being continued; ``pinned_by``: the folder whose
    recorded teachers pin the teacher files (default ``resume``).  ``fit(spec, dataset)``: fits a new
    run's settings to the data before they are checked, returning a note for the header or
    None.  Raises :class:`~nnkd.checks.SettingError` for a setting that cannot train."""
    from .data import NotCached, load, published
    backend = get_backend(backend_name)
    labels = None
    try:
        ds = load(spec.dataset, log=log, fetch=fetch)
        labels = ds.train_labels
    except NotCached as exc:
        log(f"{exc}; the settings are checked against its published sizes")
        ds = published(spec.dataset)
    note = fit(spec, ds) if fit else None
    shape, n_available = ds.image_shape, ds.train_features.shape[0]
    spec.validate(n_available=n_available, n_in=ds.n_features, n_classes=ds.n_classes,
                  image_side=min(shape) if shape else None, warn=log, train_labels=labels)
    spec.check_memory(n_available, ds.n_features, ds.n_classes)
    return Prepared(backend, ds, load_teacher(spec, ds, backend, pinned_by or resume, log), note)


def load_teacher(spec, ds, backend, pinned_by=None, log=print):
    """The :class:`~nnkd.teachers.Teacher` ``spec`` distills from (one, or an ensemble), checked
    against the data, or None (the run trains its teacher).  ``pinned_by``: the run or sweep
    folder being continued, whose recorded teacher identities the files must still match."""
    from .teachers import open_teacher
    if not spec.teacher_sources():
        return None
    return open_teacher(spec, ds, backend, folder=pinned_by, log=log)


def identity(teacher):
    """What a settings file records of the teacher given (nothing when one is trained)."""
    return {"teacher_identity": teacher.identity()} if teacher is not None else {}


def read_resumed(out, command):
    """The settings of the run in folder ``out`` that ``command`` continues."""
    if not (out / "run.json").is_file():
        if (out / "sweep.json").is_file():
            raise UserError(f"--resume {out}: a sweep folder; continue it with the same sweep command and --out {out}")
        raise UserError(f"--resume {out}: no run.json there; give a run folder written by nnkd")
    spec = read_spec(out / "run.json")
    if spec.command != command:
        raise UserError(f"--resume {out}: that run was made by `{spec.command}`, not `{command}`")
    return spec


def require_empty(out):
    """A new run's folder: absent or empty."""
    if not is_empty(out):
        raise UserError(f"{out} already holds files: continue that run with --resume {out}, "
                        "or choose another --out")


def train_in_folder(spec, out, prepared, log, stop, resume=False, lengthened=False):
    """Train what a ``distill``, ``train-teacher`` or ``train-student`` spec asks for in the run
    folder ``out`` (new, or the one being resumed); returns the results table, or None for a
    model trained alone."""
    from .pipeline import run_distill, train_alone
    backend, ds = prepared.backend, prepared.dataset
    # Checked again holding the folder's lock: another command may have started in it meanwhile.
    with RunFolder(out, log, check=None if resume else lambda: require_empty(out)):
        if not resume or lengthened:
            write_spec(out / "run.json", spec, nnkd_version=__version__, **identity(prepared.teacher))
        if spec.command == "distill":
            return run_distill(spec, backend, ds, out, log=log, stop=stop, teacher=prepared.teacher)[1]
        train_alone(spec, backend, ds, out, log=log, stop=stop)
    return None


def check_sweep_folder(out, spec):
    """A sweep folder is new (empty), or holds a sweep of the same settings: continued.  The
    settings compared are those fitted to the data, as ``sweep.json`` holds them."""
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


def sweep_in_folder(spec, out, prepared, log, stop):
    """Train the cells of a ``sweep`` spec not yet done in the sweep folder ``out``, on the
    Dask cluster it asks for (opened first: an unreachable scheduler is refused before
    anything is written); returns the table."""
    from contextlib import nullcontext
    from .cluster import SweepCluster, wanted
    from .sweep import run_sweep
    cluster = SweepCluster(spec.sweep.scheduler, spec.sweep.jobs, log) if wanted(spec.sweep) else nullcontext()
    with cluster as cluster, RunFolder(out, log, check=lambda: check_sweep_folder(out, spec)):
        write_spec(out / "sweep.json", spec, nnkd_version=__version__, **identity(prepared.teacher))
        log(f"teacher: {prepared.teacher.describe()}")
        _, table = run_sweep(spec, prepared.backend, prepared.dataset, prepared.teacher, out, log=log,
                             cluster=cluster, stop=stop)
    return table
