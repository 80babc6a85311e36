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
from .checkpoint import load_model
from .errors import Interrupted, UserError
from .files import atomic_write, read_array, read_json, write_text
from .train import count_errors, train

PAPER = {"teacher": 67, "student": 146, "distilled": 74}
SEED_REIMPLEMENTATION = {"teacher": 100, "student": 171, "distilled": 111}
LABELS = {"teacher": "teacher {arch}", "student": "student {arch}, hard labels",
          "distilled": "student {arch}, distilled at T={T:g}"}


def count(n, word):
    """``1 epoch``, ``3 epochs``."""
    return f"{n} {word}{'s' * (n != 1)}"


def device_data(ds, backend, validation=0, train_limit=None):
    """Move a :class:`nnkd.data.Dataset` to the backend as float32 (images in [0, 1]): the edge.

    ``train_limit`` keeps only the first N training images (before the
    validation split); the test set is always whole.
    """
    from .data import to_float32, validation_split
    x, y = ds.train_images[:train_limit], ds.train_labels[:train_limit]
    if validation >= x.shape[0]:
        raise UserError(f"`validation` {validation} would leave no training images out of {x.shape[0]}")
    out = {}
    if validation:
        x, y, xv, yv = validation_split(x, y, validation)
        out["x_val"] = backend.asarray(to_float32(xv))
        out["y_val"] = backend.asarray(yv.astype(np.int64))
    out["x_train"] = backend.asarray(to_float32(x))
    out["y_train"] = backend.asarray(y.astype(np.int64))
    out["x_test"] = backend.asarray(to_float32(ds.test_images))
    out["y_test"] = backend.asarray(ds.test_labels.astype(np.int64))
    out["image_shape"] = getattr(ds, "image_shape", (28, 28))
    out["n_classes"] = getattr(ds, "n_classes", 10)
    return out


def teacher_logits(net, data, path, max_shift=0, log=print, stop=None, chunk=10000):
    """The teacher's logits on the transfer set, in evaluation mode, cached in ``path``.

    Stored by sample index (row i is ``x_train[i]``), never by batch position,
    so any later shuffling pairs each image with its own soft targets.  With
    ``max_shift`` > 0 the transfer set holds every shift of every training image
    (see :func:`nnkd.batches.shifts`): the result is ``(shifts, N, C)``, and the
    student's jittered batches look up the logits of exactly the image they see.

    ``stop`` (a :class:`nnkd.train.StopFlag`) is checked every ``chunk`` images; the
    file is written whole at the end or not at all.
    """
    from .batches import shift_into, shifts
    path = Path(path)
    X = data["x_train"]
    n = X.shape[0]
    moves = shifts(max_shift) if max_shift else [(0, 0)]
    shape = (len(moves), n, net.sizes[-1]) if max_shift else (n, net.sizes[-1])
    if path.exists():
        host = read_array(path, "teacher logits", shape=shape, dtype=np.float32)
        log(f"teacher logits: cached in {path}")
        return net.backend.asarray(host)
    t0 = time.perf_counter()
    xp = net.backend.xp
    z = xp.empty((len(moves), n, net.sizes[-1]), dtype=np.float32)
    side = data.get("image_shape", (28, 28))[0] if max_shift else None
    moved = xp.empty_like(X) if max_shift else None  # no copy of the images when nothing moves
    for k, (dy, dx) in enumerate(moves):
        if max_shift:
            shift_into(X.reshape(n, side, -1), moved.reshape(n, side, -1), dy, dx)
        images = moved if max_shift else X  # evaluation mode reads its input, never writes it
        for i in range(0, n, chunk):
            if stop:
                raise Interrupted(f"stopped by {stop.signal} while computing the teacher's logits "
                                  f"(shift {k + 1} of {len(moves)}); nothing of them was written")
            z[k, i:i + chunk] = net.predict_logits(images[i:i + chunk])
    if not bool(xp.isfinite(z).all()):
        raise UserError("the teacher's logits hold NaN or infinite values: its weights are damaged; "
                        "train the teacher again")
    z = z.reshape(shape)
    atomic_write(path, lambda f: np.save(f, net.backend.to_host(z)))
    log(f"teacher logits: {len(moves)} x {n} images in {time.perf_counter() - t0:.1f} s -> {path}")
    return z


MAX_CONFUSION = 1000  # classes up to which evaluate() builds the confusion matrix (8 MB of int64)


def check_evaluation_data(sizes, n_features, labels, model="the model", data="the data"):
    """Refuse, in one line, to evaluate a model of layer widths ``sizes`` on ``n_features``
    features and the (host) ``labels``: their counts must fit the model's input and outputs."""
    if n_features != sizes[0]:
        raise UserError(f"{model} takes {sizes[0]} inputs but {data} has {n_features} features: "
                        "evaluate it on the kind of data it was trained on")
    top = int(labels.max()) if labels.size else 0
    low = int(labels.min()) if labels.size else 0
    if low < 0 or top >= sizes[-1]:
        raise UserError(f"{model} has {sizes[-1]} outputs (classes 0 to {sizes[-1] - 1}) but {data} "
                        f"has test label {low if low < 0 else top}: evaluate it on the kind of data it "
                        "was trained on")


def evaluate(net, data):
    """Test errors, per-class errors and the confusion matrix (rows: true class; None above
    :data:`MAX_CONFUSION` classes)."""
    be = net.backend
    y = be.to_host(data["y_test"])
    check_evaluation_data(net.sizes, int(data["x_test"].shape[1]), y)
    z = net.predict_logits(data["x_test"])
    pred = be.to_host(z.argmax(axis=1))
    C = net.sizes[-1]
    per_class = np.bincount(y[pred != y], minlength=C)
    confusion = None
    if C <= MAX_CONFUSION:
        confusion = np.zeros((C, C), dtype=np.int64)
        np.add.at(confusion, (y, pred), 1)
        confusion = confusion.tolist()
    return {"errors": int((pred != y).sum()), "n": int(y.size), "per_class_errors": per_class.tolist(),
            "confusion": confusion}


def results_table(rows, temperature, paper=True):
    """Markdown table of the run beside the paper's and the seed reimplementation's figures
    (``paper=False``: another dataset or transfer set, where those figures do not apply)."""
    lines = ["| model | test errors | error % | parameters | epochs | training time | paper | seed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for role, r in rows.items():
        label = LABELS[role].format(T=temperature, arch=r["arch"]) + (" (pretrained)" if "source" in r else "")
        lines.append(f"| {label} | {r['test_errors']} | {100 * r['test_errors'] / r['n_test']:.2f} | "
                     f"{r['params']:,} | {r['epochs']} | {r['seconds'] / 60:.1f} min | "
                     f"{PAPER[role] if paper else '-'} | {SEED_REIMPLEMENTATION[role] if paper else '-'} |")
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
    (3,): {"offset": 3.5, "before": "206 (133 on 3s)", "after": "109 (14 on 3s)"},
    (0, 1, 2, 3, 4, 5, 6, 9): {"offset": 7.6, "before": "47.3%", "after": "13.2%"},  # only 7s and 8s
}
CORRECTIONS = np.round(np.arange(0.0, 20.0001, 0.1), 1)  # candidate logit offsets


def _errors_after_correction(z, y, absent, offset):
    """(errors, errors on the absent classes) with ``offset`` added to their logits."""
    z = z.copy()
    z[:, absent] += offset
    wrong = z.argmax(axis=1) != y
    return int(wrong.sum()), int((wrong & np.isin(y, absent)).sum())


def bias_correction(net, data, absent, paper=True):
    """Test errors of ``net`` before and after raising the output biases of the ``absent``
    classes: by the paper's amount, by the amount with the fewest errors on the validation
    split (``data["x_val"]``: chosen without the test set), and, for reference only, by the
    amount that is best on the test set itself.  ``paper``: the data is MNIST, where the
    paper's amounts and figures apply."""
    be = net.backend

    def logits(x, y):
        return be.to_host(net.predict_logits(data[x])).astype(np.float64), be.to_host(data[y])

    zt, yt = logits("x_test", "y_test")

    def on_test(offset, **extra):
        errors, on_absent = _errors_after_correction(zt, yt, absent, offset)
        return dict(offset=float(offset), test_errors=errors, test_errors_on_absent=on_absent, **extra)

    out = {"absent_classes": list(absent), "n_test": int(yt.size),
           "n_test_absent": int(np.isin(yt, absent).sum()), "before": on_test(0.0)}
    paper = PAPER_CORRECTION.get(tuple(absent)) if paper else None
    if paper:
        out["paper"] = on_test(paper["offset"], paper_before=paper["before"], paper_after=paper["after"])
    if "x_val" in data:
        zv, yv = logits("x_val", "y_val")
        errs = np.array([_errors_after_correction(zv, yv, absent, s)[0] for s in CORRECTIONS])
        best = CORRECTIONS[errs == errs.min()]
        out["chosen"] = on_test(best[len(best) // 2], validation_errors=int(errs.min()),
                                n_validation=int(yv.size))
    test_errs = np.array([_errors_after_correction(zt, yt, absent, s)[0] for s in CORRECTIONS])
    out["best_on_test"] = on_test(CORRECTIONS[int(test_errs.argmin())])
    return out


def correction_table(correction, absent):
    """Markdown table of :func:`bias_correction`'s results for each student."""
    names = ", ".join(map(str, absent))
    lines = [f"| model | logits of class {names} raised by | test errors | error % | errors on the "
             f"test images of class {names} | paper |", "|---|---|---:|---:|---:|---:|"]
    what = {"before": "0 (no correction)", "paper": "{offset:+.1f} (the paper's)",
            "chosen": "{offset:+.1f} (fewest errors on {n_validation:,} validation images)",
            "best_on_test": "{offset:+.1f} (best on the test set: reference only)"}
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

    ``teacher``: ``(net, meta)`` of ``spec.teacher_checkpoint`` if the caller has loaded it.
    """
    out_dir = Path(out_dir)
    t_start = time.perf_counter()
    data = device_data(ds, backend, spec.validation, train_limit=spec.train_limit)
    s_cfg = spec.student
    rows = {}
    common = dict(log=log, stop=stop, data_checksum=ds.checksum)

    if spec.teacher_checkpoint:
        tpath = Path(spec.teacher_checkpoint)
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
        teacher, rows["teacher"] = train(t_cfg, backend, data, out_dir / "teacher", name="teacher", **common)

    t_logits = time.perf_counter()
    z = teacher_logits(teacher, data, out_dir / "teacher_logits.npy", s_cfg.transfer_jitter, log, stop)
    soft = losses.softmax(z, s_cfg.temperature).astype(np.float32)
    del z
    logits_seconds = time.perf_counter() - t_logits
    absent = spec.absent_classes
    if absent:  # the students' transfer set lacks these classes (the teacher saw them all)
        data, soft = restrict_transfer_set(data, soft, absent, backend)
        log(f"transfer set: {data['x_train'].shape[0]} images, without class(es) "
            f"{', '.join(map(str, absent))}")

    nets = {}
    if spec.baseline:
        log(f"baseline student: {s_cfg.arch}, hard labels, {count(s_cfg.epochs, 'epoch')}")
        nets["student"], rows["student"] = train(s_cfg, backend, data, out_dir / "student",
                                                 name="student", **common)
    log(f"distilled student: {s_cfg.arch}, T={s_cfg.temperature:g}, soft weight {s_cfg.soft_weight:g}, "
        f"hard weight {s_cfg.hard_weight:g}, " + (f"transfer set jittered by up to {s_cfg.transfer_jitter} px, "
                                                   if s_cfg.transfer_jitter else "")
        + count(s_cfg.epochs, "epoch"))
    nets["distilled"], rows["distilled"] = train(s_cfg, backend, data, out_dir / "distilled",
                                                 soft_targets=soft, name="student", **common)

    n_test = int(data["x_test"].shape[0])
    for role, r in rows.items():
        r["n_test"] = n_test
        r["arch"] = t_arch if role == "teacher" else s_cfg.arch
    table = results_table(rows, s_cfg.temperature, paper=not absent and ds.name == "mnist")
    correction = {}
    if absent:
        for role, net in nets.items():
            correction[role] = bias_correction(net, data, absent, paper=ds.name == "mnist")
        table += "\n\n" + correction_table(correction, absent)
    results = {"models": rows, "temperature": s_cfg.temperature, "backend": backend.describe(),
               "teacher_config": t_config, "student_config": asdict(s_cfg),
               "paper": PAPER, "seed_reimplementation": SEED_REIMPLEMENTATION, "data": ds.source,
               "teacher_logits_seconds": logits_seconds, "dataset": ds.name,
               "absent_classes": absent, "bias_correction": correction,
               "wall_seconds_this_session": time.perf_counter() - t_start}
    write_text(out_dir / "results.json", json.dumps(results, indent=1))
    write_text(out_dir / "results.md", table + "\n")
    return results, table


def runs_table(run_dirs):
    """Markdown table of several distill runs (e.g. seeds): test errors per model, then
    mean and sample standard deviation."""
    roles = ("teacher", "student", "distilled")
    lines = ["| run | seed | " + " | ".join(roles) + " | training time |", "|---|---:|---:|---:|---:|---:|"]
    errs = {role: [] for role in roles}
    seen, data = {}, None
    for d in map(Path, run_dirs):
        if d.resolve() in seen:
            raise UserError(f"{d} is given twice (also as {seen[d.resolve()]}): give each run once")
        seen[d.resolve()] = d
        f = d / "results.json"
        if not f.exists():
            raise UserError(f"{d} has no results.json: give finished distill run folders")
        res = read_json(f, "results of a distill run")
        m = res.get("models")
        ok = isinstance(m, dict) and all(isinstance(r, dict) and isinstance(r.get("test_errors"), int)
                                         and isinstance(r.get("seconds", 0), (int, float))
                                         for r in m.values())
        if not ok or not isinstance(res.get("student_config"), dict):
            raise UserError(f"{f} is not the results file of a distill run (damaged?): run the "
                            "distill again or leave that folder out")
        mine = (res.get("dataset", "mnist"), sorted({r.get("n_test") for r in m.values()}, key=str))
        if data is not None and mine != data[1]:
            raise UserError(f"{d} was tested on {mine[0]} ({', '.join(map(str, mine[1]))} test images), "
                            f"{data[0]} on {data[1][0]} ({', '.join(map(str, data[1][1]))}): a table of "
                            "means takes runs of the same data")
        data = data or (d, mine)
        for role in roles:
            if role in m:
                errs[role].append(m[role]["test_errors"])
        minutes = sum(r["seconds"] for r in m.values() if "source" not in r) / 60
        lines.append(f"| {d.name} | {res['student_config'].get('seed', '-')} | " +
                     " | ".join(str(m[r]["test_errors"]) if r in m else "-" for r in roles) +
                     f" | {minutes:.1f} min |")

    def stat(v):
        return "-" if not v else f"{np.mean(v):.1f}" + (f" ± {np.std(v, ddof=1):.1f}" if len(v) > 1 else "")
    lines.append(f"| mean ± std ({count(len(run_dirs), 'run')}) | | " + " | ".join(stat(errs[r]) for r in roles) + " | |")
    return "\n".join(lines)
