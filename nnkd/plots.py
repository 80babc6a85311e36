"""``python main.py plot RUN_DIR``: PNG figures of a distill run or a sweep (needs matplotlib).

``python main.py plot RUN_DIR RUN_DIR... --out FIG.png`` sets the learning curves of
several runs side by side in one figure (e.g. the ``paper`` and ``fast`` teachers).

A distill run folder gets ``learning_curves.png`` (test errors and training error of
the teacher, baseline and distilled student per epoch, from their metrics.jsonl; the epoch
axis is logarithmic where one curve is ten times as long as another) and
``dark_knowledge.png`` (the teacher's softmax on a few test images at T = 1 and at the run's T).
A sweep folder gets ``errors_vs_temperature.png`` (mean test errors and their spread
per student width).
"""

from pathlib import Path

import numpy as np

from .errors import UserError
from .files import read_json, read_metrics
from .install import extra_hint
from .runs import read_spec
from .tables import once_each

COLORS = {"teacher": "tab:blue", "student": "tab:red", "distilled": "tab:green"}
RUN_COLORS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
              "tab:gray", "tab:olive", "tab:cyan"]  # one per run, when each run has one model


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise UserError(f"plotting needs matplotlib: {extra_hint('plot')} (or pip install matplotlib)") \
            from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _metrics(stage_dir):
    return read_metrics(Path(stage_dir) / "metrics.jsonl", log=lambda line: None)


def _stages(run_dir, spec):
    """{role: stage folder} of a run (the teacher's may be a shipped checkpoint's folder), or of
    a stage folder given on its own (``spec`` None)."""
    if spec is None:
        return {_stage_role(run_dir): run_dir}
    given = spec.teacher_sources()
    teacher = Path(given[0]).parent if given else run_dir / "teacher"  # an ensemble: its first member's
    return {"teacher": teacher, "student": run_dir / "student", "distilled": run_dir / "distilled"}


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _regularized(stage_dir):
    """What of dropout and jitter the model of ``stage_dir`` trained with (its config.json)."""
    f = Path(stage_dir) / "config.json"
    cfg = read_json(f, "a model's settings") if f.is_file() else {}
    on = [("dropout", cfg.get("dropout_hidden") or cfg.get("dropout_input")), ("jitter", cfg.get("jitter"))]
    return [name for name, value in on if _number(value) and value > 0]


def _draw_curves(ax_test, ax_train, stages, label="", style="-", drawn=None, color=None):
    """Draw each stage's curves, in ``color`` or else the colour of the stage's role; ``drawn``:
    resolved stage folders already drawn (a teacher shared by several runs is drawn once).  Returns ``(training errors after each curve's
    first epoch, training errors of the first epochs, {role: regularizations on})``: what
    the axes must show.  Values that are not numbers (null) are left out."""
    later, first, regularized = [], [], {}
    for role, d in stages.items():
        if drawn is not None:
            if Path(d).resolve() in drawn:
                continue
            drawn.add(Path(d).resolve())
        rows = [r for r in _metrics(d) if _number(r.get("train_err")) and 0 <= r["train_err"] <= 1]
        if not rows:
            continue
        tested = [r for r in rows if _number(r.get("test_errors"))]
        if label.rstrip().endswith(role):  # a stage folder named after its role
            name = label.rstrip()
        elif role == "teacher" and Path(d).name != "teacher":  # a given checkpoint's, maybe shared
            name = f"teacher {Path(d).name}"
        else:
            name = f"{label}{role}"
        ax_test.plot([r["epoch"] for r in tested], [r["test_errors"] for r in tested], style, marker="o",
                     ms=2, color=color or COLORS[role], label=name)
        ax_train.plot([r["epoch"] for r in rows], [100 * r["train_err"] for r in rows], style,
                      color=color or COLORS[role], label=name)
        first.append(100 * rows[0]["train_err"])
        later += [100 * r["train_err"] for r in rows[1:]]
        if _regularized(d):
            regularized[role] = _regularized(d)
    return later, first, regularized


def _train_axis(ax, later, first, regularized):
    """Fit the training-error axis to the curves; the first epoch, often far above the rest,
    may be left off the scale (the title says so)."""
    top = max(later or first or [1.0]) * 1.15
    cut = any(f > top for f in first)
    notes = "; ".join(f"{role}: {', '.join(on)} on" for role, on in regularized.items())
    ax.set(ylim=(0, top), ylabel="training error %" + (f"\n({notes})" if notes else ""),
           title="training error" + (" (first epoch off the scale)" if cut else ""))


def learning_curves(run_dir, spec, plt, others=()):
    """Test errors and training error per epoch of every model of the run (and of
    ``others``: further run folders, drawn in other line styles).  Curves take the colour of
    their model's role (teacher, student, distilled), or, when every run holds one model
    only (e.g. several teachers), a colour per run."""
    fig, (ax_test, ax_train) = plt.subplots(1, 2, figsize=(11, 4))
    runs = [(d, sp, _stages(d, sp)) for d, sp in [(run_dir, spec)] + list(others)]
    one_model_each = len(runs) > 1 and all(
        sum(1 for stage in stages.values() if _metrics(stage)) <= 1 for _, _, stages in runs)
    styles = ["-", "--", ":", "-."]
    drawn = set()
    later, first, regularized = [], [], {}
    for i, (d, sp, stages) in enumerate(runs):
        name = d.name if sp is not None else f"{d.parent.name}/{d.name}"
        lt, ft, rg = _draw_curves(ax_test, ax_train, stages, label=f"{name} " if others else "",
                                  style=styles[i % len(styles)], drawn=drawn,
                                  color=RUN_COLORS[i % len(RUN_COLORS)] if one_model_each else None)
        later, first = later + lt, first + ft
        regularized.update(rg)
    # Curves of very different lengths (a 1000-epoch teacher beside 60-epoch students) share
    # an axis only on a log scale, where the short ones are not squeezed against the left edge.
    lengths = [max(line.get_xdata()) for line in ax_train.lines]
    log_epochs = bool(lengths) and max(lengths) >= 10 * min(lengths)
    xlabel = "epoch (log scale)" if log_epochs else "epoch"
    ax_test.set(xlabel=xlabel, ylabel="test errors", yscale="log", title="test errors")
    _train_axis(ax_train, later, first, regularized)
    ax_train.set(xlabel=xlabel)
    for ticks in (ax_test.yaxis.set_major_formatter, ax_test.yaxis.set_minor_formatter):
        ticks(plt.matplotlib.ticker.ScalarFormatter())
    for ax in (ax_test, ax_train):
        if log_epochs:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
        else:
            ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(f"{run_dir.name}: learning curves" if not others else
                 "learning curves: " + ", ".join(d.name if sp is not None else f"{d.parent.name}/{d.name}"
                                                 for d, sp, _ in runs))
    fig.tight_layout()
    return fig


def dark_knowledge(run_dir, spec, plt, n_images=4):
    """The teacher's class probabilities on the first test image of a few classes, at T=1 and at
    the run's temperature (the students' ``temperature``)."""
    from . import losses
    from .backend import get_backend
    from .checkpoint import load_model
    from .data import load
    given = spec.teacher_sources()
    ckpt = Path(given[0] if len(given) == 1 else run_dir / "teacher" / "checkpoint.npz")
    if not ckpt.exists() or ckpt.suffix != ".npz" or spec.dataset not in ("mnist", "fashion-mnist"):
        return None
    teacher, _ = load_model(ckpt, get_backend("numpy"))
    ds = load(spec.dataset, log=lambda line: None)
    T = spec.student.temperature
    wanted = (2, 3, 7, 9)[:n_images]
    idx = [int(np.flatnonzero(ds.test_labels == c)[0]) for c in wanted]
    x = ds.test_features[idx].astype(np.float32) / 255.0
    z = teacher.predict_logits(x)
    fig, axes = plt.subplots(len(idx), 3, figsize=(10, 2.2 * len(idx)),
                             gridspec_kw={"width_ratios": [1, 3, 3]})
    for row, i in enumerate(idx):
        axes[row, 0].imshow(ds.test_features[i].reshape(28, 28), cmap="gray_r")
        axes[row, 0].set_axis_off()
        axes[row, 0].set_title(f"test image {i} (label {ds.test_labels[i]})", fontsize=8)
        for col, t, scale in ((1, 1.0, "log"), (2, T, "linear")):
            p = losses.softmax(z[row:row + 1].astype(np.float64), t)[0]
            ax = axes[row, col]
            ax.bar(range(len(p)), p, color="tab:gray")
            ax.set(yscale=scale, xticks=range(len(p)))
            if scale == "log":
                ax.set_ylim(1e-12, 1.5)
            ax.set_title(f"teacher softmax at T={t:g} ({scale} scale)", fontsize=8)
    fig.suptitle(f"{run_dir.name}: dark knowledge: what the teacher says about the wrong classes, "
                 f"all but invisible at T=1, is what T={T:g} passes on")
    fig.tight_layout()
    return fig


def errors_vs_temperature(run_dir, plt):
    res_file = run_dir / "results.json"
    if not res_file.exists():
        raise UserError(f"{run_dir} has no results.json yet: let the sweep finish (or run it again)")
    results = read_json(res_file, "a sweep's results")
    cells = results.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) and "mean" in c for c in cells):
        raise UserError(f"{res_file} is not a sweep's results (damaged?): run the sweep again to "
                        "rewrite it")
    cells = [c for c in cells if c["mean"] is not None]
    widths = sorted({c["width"] for c in cells}, reverse=True)
    arch = str((results.get("student_config") or {}).get("arch", "784-10")).split("-")
    n_in, n_out = arch[0], arch[-1]
    fig, axes = plt.subplots(1, len(widths), figsize=(4 * len(widths), 3.6), squeeze=False)
    for ax, width in zip(axes[0], widths):
        mine = sorted((c for c in cells if c["width"] == width), key=lambda c: c["temperature"])
        ax.errorbar([c["temperature"] for c in mine], [c["mean"] for c in mine],
                    yerr=[c["std"] or 0.0 for c in mine], fmt="o-", capsize=3)
        for c in mine:
            ax.plot([c["temperature"]] * len(c["errors"]), c["errors"], ".", color="tab:gray")
        ax.set(xscale="log", xlabel="temperature T", ylabel="test errors",
               title=f"student {n_in}-{width}-{width}-{n_out}")
        ax.set_xticks([c["temperature"] for c in mine], [f"{c['temperature']:g}" for c in mine])
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{run_dir.name}: distilled student's test errors against temperature "
                 "(mean ± std over seeds, dots: seeds)")
    fig.tight_layout()
    return fig


def _stage_role(stage_dir):
    """A stage folder on its own (e.g. nnkd/pretrained/fast-teacher/): a teacher if it trained with dropout."""
    cfg = read_json(stage_dir / "config.json", "a model's settings") if (stage_dir / "config.json").exists() else {}
    return "teacher" if cfg.get("dropout_hidden", 0) or cfg.get("dropout_input", 0) else "student"


def _run_spec(run_dir):
    if not (run_dir / "run.json").exists():
        raise UserError(f"{run_dir} is not a run or sweep folder written by nnkd (no run.json or sweep.json)")
    return read_spec(run_dir / "run.json")


def plot(run_dir, log=print, others=(), out=None, force=False):
    """Write the run's figures as PNGs into ``run_dir`` (or, with ``others``, one figure of
    all their learning curves to ``out``, which is replaced only when ``force``); returns
    their paths."""
    if others and not out:
        raise UserError("plotting several runs together writes one figure: give `out` (a .png file)")
    if out and not others:
        raise UserError(f"`out` {out} names the figure of several runs; the figures of one run are "
                        f"written into its folder ({Path(run_dir)}): leave it out")
    if out and not str(out).endswith(".png"):
        raise UserError(f"`out` {out}: give a file name ending in .png")
    if out and (Path(out).exists() or Path(out).is_symlink()) and not force:
        raise UserError(f"{out} already exists: choose another `out`, or add `force` to replace it")
    if out and Path(out).is_dir():
        raise UserError(f"`out` {out} is a folder: give a file name ending in .png")
    if out and not Path(out).parent.is_dir():
        raise UserError(f"`out` {out}: there is no folder {Path(out).parent}; create it or give another path")
    run_dir, *others = once_each([run_dir, *others])
    plt = _pyplot()
    if others:
        def spec_of(d):  # a run folder, or a stage folder on its own (holding metrics.jsonl)
            return None if (d / "metrics.jsonl").exists() and not (d / "run.json").exists() else _run_spec(d)
        runs = [(Path(d), spec_of(Path(d))) for d in others]
        figures = {Path(out): learning_curves(run_dir, spec_of(run_dir), plt, others=runs)}
    elif (run_dir / "sweep.json").exists():
        figures = {run_dir / "errors_vs_temperature.png": errors_vs_temperature(run_dir, plt)}
    else:
        spec = _run_spec(run_dir)
        figures = {run_dir / "learning_curves.png": learning_curves(run_dir, spec, plt),
                   run_dir / "dark_knowledge.png": dark_knowledge(run_dir, spec, plt)}
    paths = []
    for path, fig in figures.items():
        if fig is None:
            continue
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
        log(f"wrote {path}")
    return paths
