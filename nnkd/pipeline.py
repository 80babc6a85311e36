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


def results_table(rows, temperature, paper=True):
    """Markdown table of the run beside the paper's and the seed reimplementation's figures
    (``paper=False``: another dataset or transfer set, where those figures do not apply)."""
    lines = ["| model | test errors | error % | parameters | epochs | training time | paper | seed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for role, r in rows.items():
        label = LABELS[role].format(T=temperature, arch=r["arch"]) + (" (pretrained)" if "source" in r else "")
        lines.append(f"| {label} | {r['test_errors']} | {100 * r['test_errors'] / r['n_test']:.2f} | "
                     f"{r['params']:,} | {r['epochs']} | {r['seconds'] / 60:.1f} min | "
                     f"{PAPER[role] if paper else '-'} | {SEED[role] if paper else '-'} |")
    return "\n".join(lines)


def restrict_transfer_set(data, soft, absent, backend):
    """The students' data and soft targets without the training images of the ``absent``
    classes (the teacher's logits were computed on all of them, by sample index)."""
    y = backend.to_host(data["y_train"])
    keep = np.flatnonzero(~np.isin(y, absent))
    if keep.size == 0:
        raise UserError("the transfer set would hold no images: keep at least one class")
    idx = backend.asarray(keep)
    data = dict(data, x_train=data["x_train"][idx], y_train=data["y_train"][idx])
    # Indexing the middle axis of (shifts, N, C) gives a strided array; the training step
    # reshapes it to (shifts * N, C), which would copy all of it at every step.
    return data, backend.xp.ascontiguousarray(soft[..., idx, :])


# Hinton et al. 2015, section 3: a student whose transfer set lacks some classes, then
# the same student with a constant added to the logits (output biases) of those classes.
# Lowering the biases of the classes present is the same as raising those of the absent ones.
PAPER_CORRECTION = {
    (3,): {"shift": 3.5, "before": "206 (133 on 3s)", "after": "109 (14 on 3s)"},
    (0, 1, 2, 3, 4, 5, 6, 9): {"shift": 7.6, "before": "47.3%", "after": "13.2%"},  # only 7s and 8s
}
SHIFTS = np.round(np.arange(0.0, 20.0001, 0.1), 1)  # candidate corrections


def _errors_after_shift(z, y, absent, shift):
    """(errors, errors on the absent classes) with ``shift`` added to their logits."""
    z = z.copy()
    z[:, absent] += shift
    wrong = z.argmax(axis=1) != y
    return int(wrong.sum()), int((wrong & np.isin(y, absent)).sum())


def bias_correction(net, data, absent):
    """Test errors of ``net`` before and after raising the output biases of the ``absent``
    classes: by the paper's amount, by the amount with the fewest errors on the validation
    split (``data["x_val"]``: chosen without the test set), and, for reference only, by the
    amount that is best on the test set itself."""
    be = net.backend

    def logits(x, y):
        return be.to_host(net.predict_logits(data[x])).astype(np.float64), be.to_host(data[y])

    zt, yt = logits("x_test", "y_test")

    def on_test(shift, **extra):
        errors, on_absent = _errors_after_shift(zt, yt, absent, shift)
        return dict(shift=float(shift), test_errors=errors, test_errors_on_absent=on_absent, **extra)

    out = {"absent_classes": list(absent), "n_test": int(yt.size),
           "n_test_absent": int(np.isin(yt, absent).sum()), "before": on_test(0.0)}
    paper = PAPER_CORRECTION.get(tuple(absent))
    if paper:
        out["paper"] = on_test(paper["shift"], paper_before=paper["before"], paper_after=paper["after"])
    if "x_val" in data:
        zv, yv = logits("x_val", "y_val")
        errs = np.array([_errors_after_shift(zv, yv, absent, s)[0] for s in SHIFTS])
        best = SHIFTS[errs == errs.min()]
        out["chosen"] = on_test(best[len(best) // 2], validation_errors=int(errs.min()),
                                n_validation=int(yv.size))
    test_errs = np.array([_errors_after_shift(zt, yt, absent, s)[0] for s in SHIFTS])
    out["best_on_test"] = on_test(SHIFTS[int(test_errs.argmin())])
    return out


def correction_table(correction, absent):
    """Markdown table of :func:`bias_correction`'s results for each student."""
    names = ", ".join(map(str, absent))
    lines = [f"| model | logits of class {names} raised by | test errors | error % | errors on the "
             f"test images of class {names} | paper |", "|---|---|---:|---:|---:|---:|"]
    what = {"before": "0 (no correction)", "paper": "{shift:+.1f} (the paper's)",
            "chosen": "{shift:+.1f} (fewest errors on {n_validation:,} validation images)",
            "best_on_test": "{shift:+.1f} (best on the test set: reference only)"}
    for role, c in correction.items():
        for key, text in what.items():
            if key not in c:
                continue
            r = c[key]
            paper = "-" if role != "distilled" else \
                c.get("paper", {}).get({"before": "paper_before", "paper": "paper_after"}.get(key), "-")
            lines.append(f"| {role} | {text.format(**r)} | {r['test_errors']} | "
                         f"{100 * r['test_errors'] / c['n_test']:.2f} | {r['test_errors_on_absent']} of "
                         f"{c['n_test_absent']:,} | {paper} |")
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
    absent = settings.get("absent_classes") or []
    if absent:  # the students' transfer set lacks these classes (the teacher saw them all)
        data, soft = restrict_transfer_set(data, soft, absent, backend)
        log(f"transfer set: {data['x_train'].shape[0]} images, without class(es) "
            f"{', '.join(map(str, absent))}")

    nets = {}
    if settings.get("baseline", True):
        log(f"baseline student: {s_cfg.arch}, hard labels, {s_cfg.epochs} epochs")
        nets["student"], rows["student"] = train(s_cfg, backend, data, out_dir / "student", **common)
    log(f"distilled student: {s_cfg.arch}, T={s_cfg.temperature:g}, soft weight {s_cfg.soft_weight:g}, "
        f"hard weight {s_cfg.hard_weight:g}, transfer set jittered by up to {s_cfg.transfer_jitter} px, "
        f"{s_cfg.epochs} epochs")
    nets["distilled"], rows["distilled"] = train(s_cfg, backend, data, out_dir / "distilled",
                                                 soft_targets=soft, **common)

    n_test = int(data["x_test"].shape[0])
    for role, r in rows.items():
        r["n_test"] = n_test
        r["arch"] = t_cfg.arch if role == "teacher" else s_cfg.arch
    table = results_table(rows, s_cfg.temperature, paper=not absent and ds.name == "mnist")
    correction = {}
    if absent:
        for role, net in nets.items():
            correction[role] = bias_correction(net, data, absent)
        table += "\n\n" + correction_table(correction, absent)
    results = {"models": rows, "temperature": s_cfg.temperature, "backend": backend.describe(),
               "teacher_config": asdict(t_cfg), "student_config": asdict(s_cfg),
               "paper": PAPER, "seed_reimplementation": SEED, "data": ds.source,
               "teacher_logits_seconds": logits_seconds, "dataset": ds.name,
               "absent_classes": absent, "bias_correction": correction,
               "wall_seconds_this_session": time.perf_counter() - t_start}
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    (out_dir / "results.md").write_text(table + "\n")
    return results, table


def runs_table(run_dirs):
    """Markdown table of several distill runs (e.g. seeds): test errors per model, then
    mean and sample standard deviation."""
    roles = ("teacher", "student", "distilled")
    lines = ["| run | seed | " + " | ".join(roles) + " | training time |", "|---|---:|---:|---:|---:|---:|"]
    errs = {role: [] for role in roles}
    for d in map(Path, run_dirs):
        f = d / "results.json"
        if not f.exists():
            raise UserError(f"{d} has no results.json: give finished distill run folders")
        res = json.loads(f.read_text())
        m = res["models"]
        for role in roles:
            if role in m:
                errs[role].append(m[role]["test_errors"])
        minutes = sum(r["seconds"] for r in m.values() if "source" not in r) / 60
        lines.append(f"| {d.name} | {res['student_config']['seed']} | " +
                     " | ".join(str(m[r]["test_errors"]) if r in m else "-" for r in roles) +
                     f" | {minutes:.1f} min |")

    def stat(v):
        return "-" if not v else f"{np.mean(v):.1f}" + (f" ± {np.std(v, ddof=1):.1f}" if len(v) > 1 else "")
    lines.append(f"| mean ± std ({len(run_dirs)} runs) | | " + " | ".join(stat(errs[r]) for r in roles) + " | |")
    return "\n".join(lines)
