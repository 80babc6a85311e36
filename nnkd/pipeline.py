"""The distillation pipeline: teacher -> teacher logits -> baseline and distilled students.

A run folder::

    run.json             the command's settings (what --resume reads back), and the identity of
                         the teacher given (its files' SHA-256, checked when the run resumes)
    teacher/             stage folder (see train.py), unless a teacher was given
    teacher_logits.npy   the teacher's logits on the transfer set (see transfer.py)
    student/             the baseline student, hard labels only
    distilled/           the student trained on the teacher's soft targets
    results.json, results.md   the final table
"""

import json
import time
from dataclasses import asdict
from pathlib import Path

from . import memory, teachers, transfer
from .data import device_data
from .evaluation import bias_correction
from .files import write_text
from .presets import STUDENT_ARCH, TEACHER_ARCH
from .tables import PAPER, PYTORCH_REIMPLEMENTATION, correction_table, count, results_table
from .train import train


def train_alone(spec, backend, ds, out_dir, log=print, stop=None):
    """``train-teacher`` / ``train-student``: one model on hard labels; returns its summary."""
    role = spec.roles[0]
    data = device_data(ds, backend, spec.validation, train_limit=spec.train_limit)
    _, summary = train(getattr(spec, role), backend, data, Path(out_dir) / role, log=log, stop=stop,
                       data_checksum=ds.checksum, name=role)
    log(f"{role}: {summary['test_errors']} test errors in {summary['seconds'] / 60:.1f} min; "
        f"checkpoint {Path(out_dir) / role / 'checkpoint.npz'}")
    return summary


def _train_teacher(spec, backend, data, out_dir, log, **common):
    """Train the teacher of ``spec``; returns ``(NetworkTeacher, its row of the table)``."""
    t_cfg, s_cfg = spec.teacher, spec.student
    log(f"teacher: training {t_cfg.arch}, {count(t_cfg.epochs, 'epoch')}")
    # The students' epochs in teacher epochs: a step costs about as much as the parameters.
    students = (1 + spec.baseline) * s_cfg.epochs * memory.parameters(s_cfg.sizes()) \
        / memory.parameters(t_cfg.sizes())
    net, row = train(t_cfg, backend, data, out_dir / "teacher", name="teacher", later_epochs=students,
                     log=log, **common)
    meta = {"config": asdict(t_cfg), "epoch": t_cfg.epochs}
    return teachers.NetworkTeacher(net, meta, out_dir / "teacher" / "checkpoint.npz"), dict(row, arch=t_cfg.arch)


def run_distill(spec, backend, ds, out_dir, log=print, stop=None, teacher=None):
    """Run the whole pipeline of a ``distill`` :class:`~nnkd.config.RunSpec`; returns
    ``(results, table)`` (also written to out_dir).

    ``teacher``: a :class:`nnkd.teachers.Teacher` (e.g. of :func:`nnkd.teachers.open_source`),
    or a list of them (an ensemble of ``spec.ensemble`` at the student's temperature); None: the
    teacher ``spec`` names (:func:`nnkd.teachers.open_teacher`), or one trained here.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = device_data(ds, backend, spec.validation, train_limit=spec.train_limit)
    s_cfg = spec.student
    common = dict(stop=stop, data_checksum=ds.checksum)
    if teacher is None and spec.teacher_sources():
        teacher = teachers.open_teacher(spec, ds, backend, log=log)
    if teacher is None:
        teacher, rows = _train_teacher(spec, backend, data, out_dir, log, **common)
        rows = {"teacher": rows}
    else:
        teacher = teachers.as_teacher(teacher, spec.ensemble, s_cfg.temperature)
        log(f"teacher: {teacher.describe()}")
        rows = teacher.rows(data)

    t_logits = time.perf_counter()
    n_train, C = data["x_train"].shape[0], data["n_classes"]
    logits = transfer.cached(out_dir / teachers.CACHE, lambda: teacher.logits(data, s_cfg.transfer_jitter, log, stop),
                             backend, n_train, C, s_cfg.transfer_jitter, log)
    logits_seconds = time.perf_counter() - t_logits
    absent = spec.absent_classes
    if absent:  # the students' transfer set lacks these classes (the teacher saw them all)
        data, logits = transfer.without_classes(data, logits, absent, backend)
        log(f"transfer set: {data['x_train'].shape[0]} images, without class(es) "
            f"{', '.join(map(str, absent))}")
    nets = _train_students(spec, backend, data, out_dir, logits, rows, log, **common)

    n_test = int(data["x_test"].shape[0])
    for r in rows.values():
        r["n_test"] = n_test
        r.setdefault("arch", s_cfg.arch)
    papers_setting = (not absent and ds.name == "mnist" and teacher.arch == TEACHER_ARCH
                      and s_cfg.arch == STUDENT_ARCH)
    table = results_table(rows, s_cfg.temperature, paper=papers_setting)
    correction = {}
    if absent:
        for role, net in nets.items():
            correction[role] = bias_correction(net, data, absent, paper=ds.name == "mnist")
        table += "\n\n" + correction_table(correction, absent)
    results = {"models": rows, "temperature": s_cfg.temperature, "backend": backend.describe(),
               "teacher_config": teacher.config, "student_config": asdict(s_cfg),
               "paper": PAPER, "pytorch_reimplementation": PYTORCH_REIMPLEMENTATION, "data": ds.source,
               "teacher_logits_seconds": logits_seconds, "dataset": ds.name,
               "absent_classes": absent, "bias_correction": correction,
               "wall_seconds_last_invocation": time.perf_counter() - t_start}
    write_text(out_dir / "results.json", json.dumps(results, indent=1))
    write_text(out_dir / "results.md", table + "\n")
    return results, table


def _train_students(spec, backend, data, out_dir, logits, rows, log, **common):
    """The baseline student (unless ``spec.baseline`` is off) and the distilled one; their rows go
    into ``rows``; returns ``{role: network}``."""
    s_cfg = spec.student
    nets = {}
    if spec.baseline:
        log(f"baseline student: {s_cfg.arch}, hard labels, {count(s_cfg.epochs, 'epoch')}")
        nets["student"], rows["student"] = train(s_cfg, backend, data, out_dir / "student",
                                                 later_epochs=s_cfg.epochs, name="student", log=log, **common)
    moved = f"jittered by up to {s_cfg.transfer_jitter} px" if s_cfg.transfer_jitter else "not jittered"
    log(f"distilled student: {s_cfg.arch}, T={s_cfg.temperature:g}, soft weight {s_cfg.soft_weight:g}, "
        f"hard weight {s_cfg.hard_weight:g}, transfer set {moved}, {count(s_cfg.epochs, 'epoch')}")
    nets["distilled"], rows["distilled"] = train(s_cfg, backend, data, out_dir / "distilled",
                                                 teacher_logits=logits, name="student", log=log, **common)
    return nets
