"""The distillation pipeline: teacher -> teacher logits -> baseline and distilled students.

A run folder::

    run.json             the command's settings (what --resume reads back)
    teacher/             stage folder (see train.py), unless a teacher checkpoint was given
    teacher_logits.npy   the teacher's logits on the transfer set, row i = training image i
                         (with --transfer-jitter: [shift k, image i])
    student/             the baseline student, hard labels only
    distilled/           the student trained on the teacher's soft targets
    results.json, results.md   the final table
"""

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import losses
from .errors import UserError
from .files import atomic_write
from .train import TrainConfig, count_errors, load_weights, train

PAPER = {"teacher": 67, "student": 146, "distilled": 74}
SEED = {"teacher": 100, "student": 171, "distilled": 111}
LABELS = {"teacher": "teacher {arch}", "student": "student {arch}, hard labels",
          "distilled": "student {arch}, distilled at T={T:g}"}


def device_data(ds, backend, validation=0, normalize=False, train_limit=None):
    """Move a :class:`nnkd.data.Dataset` to the backend as float32 in [0, 1] (the edge).

    ``train_limit`` keeps only the first N training images (before the
    validation split); the test set is always whole.
    """
    from .data import to_float32, validation_split
    x, y = ds.train_images[:train_limit], ds.train_labels[:train_limit]
    if validation >= x.shape[0]:
        raise UserError(f"--validation {validation} leaves no training images out of {x.shape[0]}")
    out = {}
    if validation:
        x, y, xv, yv = validation_split(x, y, validation)
        out["x_val"] = backend.asarray(to_float32(xv, normalize))
        out["y_val"] = backend.asarray(yv.astype(np.int64))
    out["x_train"] = backend.asarray(to_float32(x, normalize))
    out["y_train"] = backend.asarray(y.astype(np.int64))
    out["x_test"] = backend.asarray(to_float32(ds.test_images, normalize))
    out["y_test"] = backend.asarray(ds.test_labels.astype(np.int64))
    return out


def teacher_logits(net, data, path, max_shift=0, log=print):
    """The teacher's logits on the transfer set, in evaluation mode, cached in ``path``.

    Stored by sample index (row i is ``x_train[i]``), never by batch position,
    so any later shuffling pairs each image with its own soft targets.  With
    ``max_shift`` > 0 the transfer set holds every shift of every training image
    (see :func:`nnkd.batches.shifts`): the result is ``(shifts, N, C)``, and the
    student's jittered batches look up the logits of exactly the image they see.
    """
    from .batches import shift_into, shifts
    path = Path(path)
    X = data["x_train"]
    n = X.shape[0]
    moves = shifts(max_shift) if max_shift else [(0, 0)]
    shape = (len(moves), n, net.sizes[-1]) if max_shift else (n, net.sizes[-1])
    if path.exists():
        host = np.load(path, allow_pickle=False)
        if host.shape == shape:
            log(f"teacher logits: cached in {path}")
            return net.backend.asarray(host)
    t0 = time.perf_counter()
    xp = net.backend.xp
    z = xp.empty((len(moves), n, net.sizes[-1]), dtype=np.float32)
    side = int(round(X.shape[1] ** 0.5))
    moved = xp.empty_like(X)
    for k, (dy, dx) in enumerate(moves):
        shift_into(X.reshape(n, side, side), moved.reshape(n, side, side), dy, dx)
        z[k] = net.predict_logits(moved)
    z = z.reshape(shape)
    atomic_write(path, lambda f: np.save(f, net.backend.to_host(z)))
    log(f"teacher logits: {len(moves)} x {n} images in {time.perf_counter() - t0:.1f} s -> {path}")
    return z


def evaluate(net, data):
    """Test errors, per-class errors and the confusion matrix (rows: true class)."""
    be = net.backend
    z = net.predict_logits(data["x_test"])
    pred = be.to_host(z.argmax(axis=1))
    y = be.to_host(data["y_test"])
    C = net.sizes[-1]
    confusion = np.zeros((C, C), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    per_class = confusion.sum(axis=1) - np.diag(confusion)
    return {"errors": int((pred != y).sum()), "n": int(y.size), "per_class_errors": per_class.tolist(),
            "confusion": confusion.tolist()}


def results_table(rows, temperature):
    """Markdown table of the run beside the paper's and the seed reimplementation's figures."""
    lines = ["| model | test errors | error % | parameters | epochs | training time | paper | seed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for role, r in rows.items():
        label = LABELS[role].format(T=temperature, arch=r["arch"]) + (" (pretrained)" if "source" in r else "")
        lines.append(f"| {label} | {r['test_errors']} | {100 * r['test_errors'] / r['n_test']:.2f} | "
                     f"{r['params']:,} | {r['epochs']} | {r['seconds'] / 60:.1f} min | {PAPER[role]} | "
                     f"{SEED[role]} |")
    return "\n".join(lines)


def run_distill(settings, backend, ds, out_dir, log=print, stop=None):
    """Run the whole pipeline; returns the results dict (also written to out_dir).

    settings: dict with ``teacher`` and ``student`` TrainConfigs, ``teacher_checkpoint``
    (path or None), ``baseline`` (bool), ``validation`` (int), ``normalize`` (bool),
    ``train_limit`` (int or None).
    """
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    data = device_data(ds, backend, settings.get("validation", 0), settings.get("normalize", False),
                       settings.get("train_limit"))
    t_cfg, s_cfg = settings["teacher"], settings["student"]
    rows = {}
    common = dict(log=log, stop=stop, data_checksum=ds.checksum)

    if settings.get("teacher_checkpoint"):
        tpath = Path(settings["teacher_checkpoint"])
        from .checkpoint import load
        _, meta = load(tpath)
        t_cfg = TrainConfig.from_dict(meta["config"])
        teacher = t_cfg.build(backend)
        load_weights(teacher, tpath)
        log(f"teacher: {tpath} ({t_cfg.arch}, {meta['epoch']} epochs)")
        rows["teacher"] = {"test_errors": count_errors(teacher, data["x_test"], data["y_test"]),
                           "params": teacher.n_params(), "epochs": meta["epoch"],
                           "seconds": meta.get("seconds", 0.0), "source": str(tpath)}
    else:
        log(f"teacher: training {t_cfg.arch}, {t_cfg.epochs} epochs")
        teacher, rows["teacher"] = train(t_cfg, backend, data, out_dir / "teacher", **common)
    if teacher.sizes[0] != data["x_train"].shape[1]:
        raise UserError(f"the teacher takes {teacher.sizes[0]} inputs but the data has "
                        f"{data['x_train'].shape[1]}")

    t_logits = time.perf_counter()
    z = teacher_logits(teacher, data, out_dir / "teacher_logits.npy", s_cfg.transfer_jitter, log)
    soft = losses.softmax(z, s_cfg.temperature).astype(np.float32)
    del z
    logits_seconds = time.perf_counter() - t_logits

    if settings.get("baseline", True):
        log(f"baseline student: {s_cfg.arch}, hard labels, {s_cfg.epochs} epochs")
        _, rows["student"] = train(s_cfg, backend, data, out_dir / "student", **common)
    log(f"distilled student: {s_cfg.arch}, T={s_cfg.temperature:g}, soft weight {s_cfg.soft_weight:g}, "
        f"hard weight {s_cfg.hard_weight:g}, transfer set jittered by up to {s_cfg.transfer_jitter} px, "
        f"{s_cfg.epochs} epochs")
    _, rows["distilled"] = train(s_cfg, backend, data, out_dir / "distilled", soft_targets=soft, **common)

    n_test = int(data["x_test"].shape[0])
    for role, r in rows.items():
        r["n_test"] = n_test
        r["arch"] = t_cfg.arch if role == "teacher" else s_cfg.arch
    table = results_table(rows, s_cfg.temperature)
    results = {"models": rows, "temperature": s_cfg.temperature, "backend": backend.describe(),
               "teacher_config": asdict(t_cfg), "student_config": asdict(s_cfg),
               "paper": PAPER, "seed_reimplementation": SEED, "data": ds.source,
               "teacher_logits_seconds": logits_seconds,
               "wall_seconds_this_session": time.perf_counter() - t_start}
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    (out_dir / "results.md").write_text(table + "\n")
    return results, table
