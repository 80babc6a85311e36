"""Temperature x student width x seed sweep of the distilled student (Hinton et al. 2015, section 3).

A sweep folder::

    sweep.json           the sweep's settings (running the same command again continues it;
                         more seeds, widths or temperatures extend it)
    teacher_logits.npy   the teacher's logits on the transfer set, computed once for all cells
    w300-T4-s0/          one cell: a stage folder (see train.py) plus summary.json when done
    results.json, results.md   mean and spread of the test errors per (width, temperature)

Each cell resumes from its own checkpoint, so a stopped sweep loses at most one epoch
per cell in progress.  ``jobs`` > 1 trains cells in parallel worker processes, each with
its share of the CPU's BLAS threads.
"""

import json
import multiprocessing
import os
import signal
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from . import losses
from .errors import Interrupted, UserError
from .files import read_array, read_json, write_text
from .runs import Log

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cell_name(width, temperature, seed):
    return f"w{width}-T{temperature:g}-s{seed}"


def cell_config(student, width, temperature, seed):
    """The preset's student settings with this cell's width, temperature and seed."""
    n_in, n_out = student.arch.split("-")[0], student.arch.split("-")[-1]
    return replace(student, arch=f"{n_in}-{width}-{width}-{n_out}", temperature=float(temperature),
                   seed=seed)


_WORKER = {}


def _init_worker(dataset, backend_name, validation, train_limit, logits_path):
    """Load the data and the teacher's logits once per worker process."""
    from .backend import get_backend
    from .data import load
    from .pipeline import device_data
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    backend = get_backend(backend_name)
    ds = load(dataset, log=lambda line: None)
    _WORKER.update(backend=backend, checksum=ds.checksum,
                   data=device_data(ds, backend, validation, train_limit=train_limit),
                   logits=backend.asarray(read_array(logits_path, "teacher logits", dtype=np.float32)))


def _run_cell(job):
    """Train one cell (resuming it if it was started); returns its summary."""
    from .train import TrainConfig, train
    cfg, cell_dir = TrainConfig.from_dict(job["config"]), Path(job["dir"])
    w = _WORKER
    soft = losses.softmax(w["logits"], cfg.temperature).astype(np.float32)
    cell_dir.mkdir(parents=True, exist_ok=True)
    log = Log(cell_dir / "log.txt", echo=False)
    _, summary = train(cfg, w["backend"], w["data"], cell_dir, soft_targets=soft, log=log,
                       data_checksum=w["checksum"], name="student")
    summary.update(width=job["width"], temperature=cfg.temperature, seed=cfg.seed, arch=cfg.arch)
    _write_json(cell_dir / "summary.json", summary)
    return summary


def _write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1))


def run_sweep(spec, backend, ds, teacher, out_dir, log=print):
    """Train every cell of a ``sweep`` :class:`~nnkd.config.RunSpec` not yet done; returns
    ``(results, table)``.  ``teacher``: the loaded teacher network."""
    from .pipeline import device_data, teacher_logits
    out_dir = Path(out_dir)
    student, grid = spec.student, spec.sweep
    settings = {"widths": grid.widths, "temperatures": grid.temperatures, "student": student}
    data = device_data(ds, backend, spec.validation, train_limit=spec.train_limit)
    logits_path = out_dir / "teacher_logits.npy"
    z = teacher_logits(teacher, data, logits_path, student.transfer_jitter, log)

    jobs = []
    for width in grid.widths:
        for t in grid.temperatures:
            for seed in grid.seeds:
                d = out_dir / cell_name(width, t, seed)
                if not (d / "summary.json").exists():
                    jobs.append({"width": width, "dir": str(d),
                                 "config": asdict(cell_config(student, width, t, seed))})
    total = len(grid.widths) * len(grid.temperatures) * len(grid.seeds)
    log(f"sweep: {total} cells, {total - len(jobs)} already done, {len(jobs)} to train with "
        f"{grid.jobs} process(es); each cell logs to its own folder")
    init = (spec.dataset, backend.name, spec.validation, spec.train_limit, str(logits_path))
    t0 = time.perf_counter()

    def report(i, s):
        log(f"  [{i}/{len(jobs)}] {cell_name(s['width'], s['temperature'], s['seed'])}: "
            f"{s['test_errors']} test errors ({s['seconds'] / 60:.1f} min; "
            f"{(time.perf_counter() - t0) / 60:.1f} min since start)")

    if grid.jobs <= 1:  # in this process, with the data and logits already here
        _WORKER.update(backend=backend, checksum=ds.checksum, data=data, logits=z)
        try:
            for i, job in enumerate(jobs, 1):
                report(i, _run_cell(job))
        except KeyboardInterrupt:
            raise Interrupted("sweep stopped; finished cells and every cell's last checkpoint are "
                              "kept") from None
    else:
        del data, z  # each worker loads its own
        threads = str(max(1, (os.cpu_count() or 1) // grid.jobs))
        saved = {v: os.environ.get(v) for v in THREAD_VARS}
        for v in THREAD_VARS:  # read by the workers' fresh interpreters (spawn), not by this one
            os.environ.setdefault(v, threads)
        pool = multiprocessing.get_context("spawn").Pool(grid.jobs, _init_worker, init)
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
        try:
            for i, s in enumerate(pool.imap_unordered(_run_cell, jobs), 1):
                report(i, s)
            pool.close()
        except KeyboardInterrupt:
            pool.terminate()
            raise Interrupted("sweep stopped; finished cells and every cell's last checkpoint are "
                              "kept") from None
        except BaseException:  # a cell failed (e.g. diverged): stop the others, report it
            pool.terminate()
            raise
        finally:
            pool.join()
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
    lines = ["| student width | " + " | ".join(f"T={t:g}" for t in settings["temperatures"]) + " |",
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
