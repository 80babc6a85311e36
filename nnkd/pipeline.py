"""The distillation pipeline: teacher -> teacher logits -> baseline and distilled students.

A run folder::

    run.json             the command's settings (what --resume reads back)
    teacher/             stage folder (see train.py), unless a teacher checkpoint was given
    teacher.sha256       the SHA-256 of the teacher checkpoint given, checked when the run resumes
    teacher_logits.npy   the teacher's logits on the transfer set (see transfer.py)
    student/             the baseline student, hard labels only
    distilled/           the student trained on the teacher's soft targets
    results.json, results.md   the final table
"""

import functools
import json
import time
from dataclasses import asdict
from pathlib import Path

from . import memory, teachers, transfer
from .checkpoint import load_model
from .data import device_data
from .evaluation import bias_correction
from .files import write_text
from .presets import STUDENT_ARCH, TEACHER_ARCH
from .runs import check_same_teacher
from .tables import PAPER, PYTORCH_REIMPLEMENTATION, correction_table, count, results_table
from .train import count_errors, train


def train_alone(spec, backend, ds, out_dir, log=print, stop=None):
    """``train-teacher`` / ``train-student``: one model on hard labels; returns its summary."""
    role = spec.roles[0]
    data = device_data(ds, backend, spec.validation, train_limit=spec.train_limit)
    _, summary = train(getattr(spec, role), backend, data, Path(out_dir) / role, log=log, stop=stop,
                       data_checksum=ds.checksum, name=role)
    log(f"{role}: {summary['test_errors']} test errors in {summary['seconds'] / 60:.1f} min; "
        f"checkpoint {Path(out_dir) / role / 'checkpoint.npz'}")
    return summary


def run_distill(spec, backend, ds, out_dir, log=print, stop=None, teacher=None):
    """Run the whole pipeline of a ``distill`` :class:`~nnkd.config.RunSpec`; returns
    ``(results, table)`` (also written to out_dir).

    ``teacher``: ``(net, meta)`` of ``spec.teacher_checkpoint`` if the caller has loaded it,
    or :func:`nnkd.teachers.open_teacher`'s result for an ONNX model or a logits file.
    """
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    data = device_data(ds, backend, spec.validation, train_limit=spec.train_limit)
    s_cfg = spec.student
    rows = {}
    common = dict(log=log, stop=stop, data_checksum=ds.checksum)

    outside = spec.teacher_logits or teachers.is_onnx(spec.teacher_checkpoint)
    if outside:  # an ONNX model or logits computed elsewhere
        teacher, _ = teacher or teachers.open_teacher(spec, ds, backend, cache=out_dir / "teacher_logits.npy")
        log(f"teacher: {teacher.describe()}")
        rows["teacher"] = teacher.row(data)
        t_arch, t_config = Path(rows["teacher"]["source"]).name, None
    elif spec.teacher_checkpoint:
        tpath = Path(spec.teacher_checkpoint)
        check_same_teacher(tpath, out_dir)
        teacher, meta = teacher or load_model(tpath, backend, data_checksum=ds.checksum, dataset=ds.name)
        t_arch = "-".join(map(str, teacher.sizes))
        log(f"teacher: {tpath} ({t_arch}, {count(meta['epoch'], 'epoch')})")
        rows["teacher"] = {"test_errors": count_errors(teacher, data["x_test"], data["y_test"]),
                           "params": teacher.n_params(), "epochs": meta["epoch"],
                           "seconds": meta.get("seconds", 0.0), "source": str(tpath)}
        t_config = meta["config"]
    else:
        t_cfg = spec.teacher
        t_arch, t_config = t_cfg.arch, asdict(t_cfg)
        log(f"teacher: training {t_cfg.arch}, {count(t_cfg.epochs, 'epoch')}")
        # The students' epochs in teacher epochs: a step costs about as much as the parameters.
        students = (1 + spec.baseline) * s_cfg.epochs * memory.parameters(s_cfg.sizes()) \
            / memory.parameters(t_cfg.sizes())
        teacher, rows["teacher"] = train(t_cfg, backend, data, out_dir / "teacher", name="teacher",
                                         later_epochs=students, **common)

    t_logits = time.perf_counter()
    compute = teacher.transfer_logits if outside else functools.partial(transfer.compute, teacher)
    logits = compute(data, out_dir / "teacher_logits.npy", s_cfg.transfer_jitter, log, stop)
    logits_seconds = time.perf_counter() - t_logits
    absent = spec.absent_classes
    if absent:  # the students' transfer set lacks these classes (the teacher saw them all)
        data, logits = transfer.without_classes(data, logits, absent, backend)
        log(f"transfer set: {data['x_train'].shape[0]} images, without class(es) "
            f"{', '.join(map(str, absent))}")

    nets = {}
    if spec.baseline:
        log(f"baseline student: {s_cfg.arch}, hard labels, {count(s_cfg.epochs, 'epoch')}")
        nets["student"], rows["student"] = train(s_cfg, backend, data, out_dir / "student",
                                                 later_epochs=s_cfg.epochs,
                                                 name="student", **common)
    moved = f"jittered by up to {s_cfg.transfer_jitter} px" if s_cfg.transfer_jitter else "not jittered"
    log(f"distilled student: {s_cfg.arch}, T={s_cfg.temperature:g}, soft weight {s_cfg.soft_weight:g}, "
        f"hard weight {s_cfg.hard_weight:g}, transfer set {moved}, {count(s_cfg.epochs, 'epoch')}")
    nets["distilled"], rows["distilled"] = train(s_cfg, backend, data, out_dir / "distilled",
                                                 teacher_logits=logits, name="student", **common)

    n_test = int(data["x_test"].shape[0])
    for role, r in rows.items():
        r["n_test"] = n_test
        r["arch"] = t_arch if role == "teacher" else s_cfg.arch
    papers_setting = (not absent and ds.name == "mnist" and t_arch == TEACHER_ARCH
                      and s_cfg.arch == STUDENT_ARCH)
    table = results_table(rows, s_cfg.temperature, paper=papers_setting)
    correction = {}
    if absent:
        for role, net in nets.items():
            correction[role] = bias_correction(net, data, absent, paper=ds.name == "mnist")
        table += "\n\n" + correction_table(correction, absent)
    results = {"models": rows, "temperature": s_cfg.temperature, "backend": backend.describe(),
               "teacher_config": t_config, "student_config": asdict(s_cfg),
               "paper": PAPER, "pytorch_reimplementation": PYTORCH_REIMPLEMENTATION, "data": ds.source,
               "teacher_logits_seconds": logits_seconds, "dataset": ds.name,
               "absent_classes": absent, "bias_correction": correction,
               "wall_seconds_last_invocation": time.perf_counter() - t_start}
    write_text(out_dir / "results.json", json.dumps(results, indent=1))
    write_text(out_dir / "results.md", table + "\n")
    return results, table
