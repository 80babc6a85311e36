"""What the benchmark scripts read from a run folder, and how they keep one in the repository.

    python3 benchmarks/run_folders.py finished RUN   # exit 0 once RUN's student reached its last epoch

validation_grid.sh and fast_rows.sh import it for their tables and their `keep` mode,
long_runs.sh for its `seeds` rows.
"""

import json
import shutil
import sys
from pathlib import Path


def student_metrics(run):
    """The per-epoch rows of ``run``'s student (the last stage but a teacher), or [] if none."""
    metrics = [m for m in sorted(Path(run).glob("*/metrics.jsonl")) if m.parent.name != "teacher"]
    return [json.loads(line) for line in metrics[-1].read_text().splitlines()] if metrics else []


def student_epochs(run):
    """The number of epochs ``run``'s settings give its student."""
    return json.loads((Path(run) / "run.json").read_text())["configs"]["student"]["epochs"]


def finished(run):
    """Whether ``run``'s student trained to its last epoch (False where the folder is incomplete)."""
    try:
        rows = student_metrics(run)
        return bool(rows) and rows[-1]["epoch"] >= student_epochs(run)
    except (OSError, ValueError, KeyError):
        return False


def keep(run, kept):
    """Copy ``run``'s settings, log, results and per-epoch metrics (no weights) into ``kept``/NAME,
    and its console output RUN.out beside it."""
    run, dst = Path(run), Path(kept) / Path(run).name
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("run.json", "log.txt", "results.json", "results.md"):
        if (run / f).exists():
            shutil.copy(run / f, dst / f)
    for metrics in sorted(run.glob("*/metrics.jsonl")):
        (dst / metrics.parent.name).mkdir(exist_ok=True)
        for f in ("metrics.jsonl", "config.json"):
            shutil.copy(metrics.parent / f, dst / metrics.parent.name / f)
    shutil.copy(run.parent / f"{run.name}.out", Path(kept) / f"{run.name}.out")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "finished":
        sys.exit("usage: python3 benchmarks/run_folders.py finished RUN")
    sys.exit(0 if finished(sys.argv[2]) else 1)
