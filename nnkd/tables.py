"""Markdown tables of results: a distill run beside the paper, the bias correction, and
several runs (seeds) with their mean and spread."""

from pathlib import Path

import numpy as np

from .errors import UserError
from .files import read_json

# Test errors on MNIST with the paper's architectures: Hinton et al. (2015), and the
# PyTorch reimplementation nnkd set out to improve on (3000 epochs per model).
PAPER = {"teacher": 67, "student": 146, "distilled": 74}
PYTORCH_REIMPLEMENTATION = {"teacher": 100, "student": 171, "distilled": 111}
LABELS = {"teacher": "teacher {arch}", "student": "student {arch}, hard labels",
          "distilled": "student {arch}, distilled at T={T:g}"}


def count(n, word):
    """``1 epoch``, ``3 epochs``."""
    return f"{n} {word}{'s' * (n != 1)}"


def results_table(rows, temperature, paper=True):
    """Markdown table of the run; with ``paper`` (MNIST, the whole transfer set) beside the
    paper's figures and the PyTorch reimplementation's."""
    head = "| model | test errors | error % | parameters | epochs | training time |"
    rule = "|---|---:|---:|---:|---:|---:|"
    lines = [head + " paper | PyTorch reimplementation |" if paper else head,
             rule + "---:|---:|" if paper else rule]
    for role, r in rows.items():
        label = r.get("label") or \
            LABELS[role].format(T=temperature, arch=r["arch"]) + (" (pretrained)" if "source" in r else "")
        errors = r["test_errors"]  # None, like the other figures, where they are not known (a logits file)
        n_test = r["n_test"]
        line = (f"| {label} | {_known(errors)} | {_known(errors, lambda e: f'{100 * e / n_test:.2f}')} | "
                f"{_known(r['params'], '{:,}'.format)} | {_known(r['epochs'])} | "
                f"{_known(r['seconds'], lambda s: f'{s / 60:.1f} min')} |")
        lines.append(line + f" {PAPER[role]} | {PYTORCH_REIMPLEMENTATION[role]} |" if paper else line)
    return "\n".join(lines)


def _known(value, form=str):
    return "-" if value is None else form(value)


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


def once_each(run_dirs):
    """``run_dirs`` as Paths, refusing a run given twice (under any two of its names)."""
    seen = {}
    for d in map(Path, run_dirs):
        if d.resolve() in seen:
            raise UserError(f"{d} is given twice (also as {seen[d.resolve()]}): give each run once")
        seen[d.resolve()] = d
    return list(seen.values())


def runs_table(run_dirs):
    """Markdown table of several distill runs (e.g. seeds): test errors per model, then
    mean and sample standard deviation."""
    roles = ("teacher", "student", "distilled")
    lines = ["| run | seed | " + " | ".join(roles) + " | training time |", "|---|---:|---:|---:|---:|---:|"]
    errs = {role: [] for role in roles}
    data = None
    for d in once_each(run_dirs):
        f = d / "results.json"
        if not f.exists():
            raise UserError(f"{d} has no results.json: give finished distill run folders")
        res = read_json(f, "results of a distill run")
        m = res.get("models")
        ok = isinstance(m, dict) and all(isinstance(r, dict) and (
            isinstance(r.get("test_errors"), int) or r.get("test_errors") is None and "source" in r)
            and isinstance(r.get("seconds") or 0, (int, float))
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
            if role in m and m[role]["test_errors"] is not None:
                errs[role].append(m[role]["test_errors"])
        minutes = sum(r["seconds"] for r in m.values() if "source" not in r) / 60
        lines.append(f"| {d.name} | {res['student_config'].get('seed', '-')} | " +
                     " | ".join(_known(m[r]["test_errors"]) if r in m else "-" for r in roles) +
                     f" | {minutes:.1f} min |")

    def stat(v):
        return "-" if not v else f"{np.mean(v):.1f}" + (f" ± {np.std(v, ddof=1):.1f}" if len(v) > 1 else "")
    lines.append(f"| mean ± std ({count(len(run_dirs), 'run')}) | | " + " | ".join(stat(errs[r]) for r in roles) + " | |")
    return "\n".join(lines)
