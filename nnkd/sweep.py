"""Temperature x student width x seed sweep of the distilled student (Hinton et al. 2015, section 3).

A sweep folder::

    sweep.json           the sweep's settings (running the same command again continues it;
                         more seeds, widths or temperatures extend it), and the identity of
                         its teacher (its files' SHA-256: continuing needs the same)
    teacher_logits.npy   the teacher's logits on the transfer set, computed once for all cells
    w300-T4-s0/          one cell: a stage folder (see train.py) plus summary.json when done
    results.json, results.md   mean and spread of the test errors per (width, temperature)

Each cell resumes from its own checkpoint, so a stopped sweep loses at most one epoch
per cell in progress.  With ``jobs`` 1 the cells train one after the other in this process;
``jobs`` > 1 or a ``scheduler`` runs each cell as a task on a Dask cluster
(:mod:`nnkd.cluster`), whose workers read and write this folder: it must be on a filesystem
they all share.
"""

import json
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from . import transfer
from .errors import Interrupted, UserError
from .files import read_json, write_text
from .runlock import RunLock
from .runs import Log
from .tables import count


def temperature_text(t):
    """``4``, ``0.5``; a temperature that ``:g`` would round (2.0000001) is written in full, so
    that two temperatures never share a cell folder or a column."""
    text = format(t, "g")
    return text if float(text) == t else repr(float(t))


def cell_name(width, temperature, seed):
    return f"w{width}-T{temperature_text(temperature)}-s{seed}"


def cell_config(student, width, temperature, seed):
    """The preset's student settings with this cell's width, temperature and seed."""
    n_in, n_out = student.arch.split("-")[0], student.arch.split("-")[-1]
    return replace(student, arch=f"{n_in}-{width}-{width}-{n_out}", temperature=float(temperature),
                   seed=seed)


class CellData:
    """The data and the teacher's logits that the cells of one sweep train on, in one process.
    ``init`` names them: (dataset, backend name, validation, train limit, logits path, the
    transfer set's jitter, data checksum)."""

    def __init__(self, init, backend, data, logits):
        self.init, self.backend, self.data, self.logits = init, backend, data, logits
        self.checksum = init[-1]

    @classmethod
    def load(cls, init):
        """Load what ``init`` names (a Dask worker's first cell of the sweep)."""
        from .backend import get_backend
        from .data import device_data, load
        dataset, backend_name, validation, train_limit, logits_path, max_shift, checksum = init
        backend = get_backend(backend_name)
        ds = load(dataset, log=lambda line: None)
        if ds.checksum != checksum:
            raise UserError(f"this worker's copy of {dataset} differs from the sweep's (checksum "
                            f"{ds.checksum} against {checksum}): give every worker the same data")
        data = device_data(ds, backend, validation, train_limit=train_limit)
        logits = transfer.read(logits_path, backend, data["x_train"].shape[0], data["n_classes"], max_shift)
        return cls(init, backend, data, logits)

    def train_cell(self, job, stop=None, where=None):
        """Train one cell (resuming it if it was started); returns its summary.  ``stop``: a
        :class:`~nnkd.train.StopFlag`; ``where``: the worker, for the cell's log."""
        from .train import TrainConfig, train
        cfg, cell_dir = TrainConfig.from_dict(job["config"]), Path(job["dir"])
        with RunLock(cell_dir):  # one process per cell, whatever the scheduler does
            log = Log(cell_dir / "log.txt", echo=False)
            if where:
                log(f"cell {job['name']} on {where}")
            try:
                _, summary = train(cfg, self.backend, self.data, cell_dir, teacher_logits=self.logits, log=log,
                                   lock=False, stop=stop, data_checksum=self.checksum, name="student")
            except UserError as exc:  # e.g. stopped, or diverged: the cell's own log says so too
                log(f"error: {exc}")
                raise
            summary.update(width=job["width"], temperature=cfg.temperature, seed=cfg.seed, arch=cfg.arch)
            _write_json(cell_dir / "summary.json", summary)
        return summary


def _cell_on_dask_worker(job, stop=None, where=None):
    """One cell as a Dask task.  The worker keeps the :class:`CellData` of its sweep, loaded by
    its first cell, for the cells after it."""
    from distributed import get_worker
    worker = get_worker()
    cells = getattr(worker, "nnkd_sweep_cells", None)
    if cells is None or cells.init != job["init"]:
        worker.nnkd_sweep_cells = None  # the last sweep's arrays freed before loading
        cells = worker.nnkd_sweep_cells = CellData.load(job["init"])
    return cells.train_cell(job, stop, where)


def _write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1))


def run_sweep(spec, backend, ds, teacher, out_dir, log=print, cluster=None, stop=None):
    """Train every cell of a ``sweep`` :class:`~nnkd.config.RunSpec` not yet done; returns
    ``(results, table)``.  ``teacher``: a :class:`nnkd.teachers.Teacher`.  ``cluster``: an open
    :class:`nnkd.cluster.SweepCluster` for the cells; by default one is opened when
    ``spec.sweep`` asks for Dask (``jobs`` > 1 or a ``scheduler``).  ``stop``: a
    :class:`~nnkd.train.StopFlag` that stops the teacher's logits and the cells trained in this
    process (SIGTERM, SIGHUP)."""
    from . import cluster as dask_cluster
    from .data import device_data
    out_dir = Path(out_dir)
    folder = out_dir.resolve()  # what the workers are given
    student, grid = spec.student, spec.sweep
    settings = {"widths": grid.widths, "temperatures": grid.temperatures, "student": student}
    data = device_data(ds, backend, spec.validation, train_limit=spec.train_limit)
    logits_path = out_dir / "teacher_logits.npy"
    n, C, jitter = data["x_train"].shape[0], data["n_classes"], student.transfer_jitter
    z = transfer.cached(logits_path, lambda: teacher.logits(data, jitter, log, stop), backend, n, C, jitter, log)
    init = (spec.dataset, backend.name, spec.validation, spec.train_limit,
            str(folder / logits_path.name), student.transfer_jitter, ds.checksum)

    jobs = []
    for width in grid.widths:
        for t in grid.temperatures:
            for seed in grid.seeds:
                name = cell_name(width, t, seed)
                if not (out_dir / name / "summary.json").exists():
                    jobs.append({"name": name, "width": width, "dir": str(folder / name), "init": init,
                                 "config": asdict(cell_config(student, width, t, seed))})
    total = len(grid.widths) * len(grid.temperatures) * len(grid.seeds)
    t0 = time.perf_counter()

    def start(where):
        log(f"sweep: {count(total, 'cell')}, {total - len(jobs)} already done, {len(jobs)} to train" +
            (f" {where}; each cell logs to its own folder" if jobs else ""))

    def report(i, s):
        log(f"  [{i}/{len(jobs)}] {cell_name(s['width'], s['temperature'], s['seed'])}: "
            f"{s['test_errors']} test errors ({s['seconds'] / 60:.1f} min; "
            f"{(time.perf_counter() - t0) / 60:.1f} min since start)")

    if cluster is None and not dask_cluster.wanted(grid) or not jobs:
        start("in this process")
        cells = CellData(init, backend, data, z)  # the data and logits already here
        try:
            for i, job in enumerate(jobs, 1):
                report(i, cells.train_cell(job, stop))
        except KeyboardInterrupt:
            raise Interrupted("sweep stopped; finished cells and every cell's last checkpoint are "
                              "kept") from None
    else:
        del data, z  # each worker loads its own
        done = iter(range(1, len(jobs) + 1))
        with nullcontext(cluster) if cluster else dask_cluster.SweepCluster(grid.scheduler, grid.jobs,
                                                                            log) as c:
            start("on " + c.describe())
            c.run(_cell_on_dask_worker, jobs, folder, lambda s: report(next(done), s))
    return summarize(out_dir, settings)


def summarize(out_dir, settings):
    """Mean and spread per (width, temperature) over the finished cells of the folder, whatever
    their seeds (a sweep extended with more seeds shows them all); writes results.*"""
    out_dir = Path(out_dir)
    cells = {}
    for width in settings["widths"]:
        for t in settings["temperatures"]:
            cells[width, t] = [_cell_errors(f)
                               for f in sorted(out_dir.glob(f"{cell_name(width, t, '*')}/summary.json"))]
    stats = {k: {"errors": v, "mean": float(np.mean(v)) if v else None,
                 "std": float(np.std(v, ddof=1)) if len(v) > 1 else None} for k, v in cells.items()}
    lines = ["| student width | " + " | ".join(f"T={temperature_text(t)}" for t in settings["temperatures"])
             + " |",
             "|---:|" + "---:|" * len(settings["temperatures"])]
    for width in settings["widths"]:
        row = []
        for t in settings["temperatures"]:
            s = stats[width, t]
            row.append("-" if s["mean"] is None else f"{s['mean']:.1f}" +
                       (f" ± {s['std']:.1f}" if s["std"] is not None else "") + f" (n={len(s['errors'])})")
        lines.append(f"| {width} | " + " | ".join(row) + " |")
    table = "\n".join(lines) + "\n\n" + "\n".join(paper_checks(stats, settings))
    results = {"cells": [{"width": w, "temperature": t, **s} for (w, t), s in stats.items()],
               "student_config": asdict(settings["student"])}
    _write_json(out_dir / "results.json", results)
    write_text(out_dir / "results.md", table + "\n")
    return results, table


def _cell_errors(path):
    errors = read_json(path, "a sweep cell's summary").get("test_errors")
    if not isinstance(errors, int):
        raise UserError(f"{path} holds no test errors (damaged?): delete it and run the sweep again "
                        "to retrain that cell")
    return errors


def paper_checks(stats, settings):
    """The paper's two statements about temperature, set against the sweep's means."""
    lines = []
    for width in settings["widths"]:
        means = {t: stats[width, t]["mean"] for t in settings["temperatures"]
                 if stats[width, t]["mean"] is not None}
        if not means:
            continue
        best = min(means, key=means.get)
        high = {t: m for t, m in means.items() if t >= 8}
        sds = [stats[width, t]["std"] for t in means if stats[width, t]["std"] is not None]
        sd = f"; typical seed std {np.median(sds):.1f}" if sds else ""
        spread = f"; T >= 8 spans {max(high.values()) - min(high.values()):.1f} errors" if len(high) > 1 else ""
        lines.append(f"- width {width}: lowest mean at T={best:g} ({means[best]:.1f}){spread}{sd}.")
    lines.append("- Paper: with 300 or more units per layer all T above 8 gave similar results; "
                 "with 30 units, T from 2.5 to 4 worked significantly better than higher or lower T.")
    return lines
