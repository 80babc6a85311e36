"""An adversarial pass over the seams between features: ONNX teachers, logits files, resume,
Adam, npz data, the Python API, signals and the environment, tried as a user would.

Each case runs a command (``python3 main.py ...`` in a subprocess) or a Python API call and
checks that there is no traceback, that the exit status is the one expected (0, or 2 for a
mistake, 130 for a stop), that a refusal is one ``error:`` line (a short usage hint may stand
above it), and, where the case says so, that nothing already written was lost or changed.

    python3 benchmarks/adversarial.py            # every case; prints one line per case and the counts
    python3 benchmarks/adversarial.py ONNX npz   # the cases whose group is named

Exit status 0 when every case holds.  docs/reliability.md lists the groups and counts.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.adversarial_cases import CASES, DS, cases  # noqa: E402


def main_py(args, env=None, timeout=300):
    full = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "main.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env=full, timeout=timeout, errors="replace")


def judge_cli(args, rc, env, check):
    r = main_py(args, env)
    if "Traceback" in r.stderr or "Traceback" in r.stdout:
        return "traceback: " + r.stderr.strip().splitlines()[-1]
    if r.returncode not in rc:
        return f"exit {r.returncode}, expected {rc}: {r.stderr.strip()[-300:]}"
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    if r.returncode == 2 and len(errors) != 1:
        return f"{len(errors)} error lines: {r.stderr.strip()[-300:]}"
    return check(r) if check else None


def judge_api(fn, refuses, check):
    from nnkd.errors import UserError
    try:
        out = fn()
    except UserError as exc:
        if not refuses:
            return f"refused: {exc}"
        if "\n" in str(exc):
            return f"a message of several lines: {exc!r}"
        return check(exc) if check else None
    except Exception as exc:  # noqa: BLE001 - anything else is the finding
        return f"{type(exc).__name__}: {exc}"
    if refuses:
        return f"accepted (returned {type(out).__name__})"
    return check(out) if check else None


def setup(tmp):
    """A digits teacher, a distill run, an exported ONNX teacher and logits files."""
    t = tmp / "teacher"
    r = main_py(["train-teacher", "--dataset", DS, "--preset", "smoke", "--epochs", "3", "--out", t])
    assert r.returncode == 0, r.stderr
    ckpt = t / "teacher" / "checkpoint.npz"
    onnx = tmp / "t.onnx"
    r = main_py(["export", ckpt, onnx, "--format", "onnx"])
    assert r.returncode == 0, r.stderr
    run = tmp / "run"
    r = main_py(["distill", "--dataset", DS, "--preset", "smoke", "--teacher", ckpt, "--epochs", "2", "--out", run])
    assert r.returncode == 0, r.stderr
    z = np.load(run / "teacher_logits.npy")
    np.save(tmp / "logits.npy", z)
    return ckpt, onnx, run, z


def run_signal(sig, folder, command):
    """Start a training command, send ``sig`` once its first checkpoint is written; expect exit
    130 within 2 s, the advice to continue, and a checkpoint that loads."""
    args = [sys.executable, "main.py", *map(str, command), "--out", str(folder)]
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(folder.glob("*/checkpoint.npz")):
        time.sleep(0.05)
    p.send_signal(getattr(signal, sig))
    t0 = time.time()
    out, err = p.communicate(timeout=60)
    took = time.time() - t0
    if p.returncode != 130 or "Traceback" in err:
        return f"exit {p.returncode}: {err[-300:]}"
    if took > 2:
        return f"stopped {took:.1f} s after {sig}"
    if "continue with" not in err:
        return f"no advice to continue: {err[-200:]}"
    ckpt = next(folder.glob("*/checkpoint.npz"))
    r = main_py(["evaluate", ckpt])
    return None if r.returncode == 0 else f"its checkpoint does not load: {r.stderr[-200:]}"


def main(groups):
    tmp = Path(tempfile.mkdtemp(prefix="nnkd-adversarial-"))
    try:
        return run_cases(tmp, groups)
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


def run_cases(tmp, groups):
    fixtures = setup(tmp)
    cases(tmp, *fixtures)
    results = {}
    for group, name, spec in CASES:
        if groups and group not in groups:
            continue
        kind = spec[0]
        t0 = time.perf_counter()
        try:
            if kind == "cli":
                problem = judge_cli(*spec[1:])
            elif kind == "api":
                problem = judge_api(*spec[1:])
            else:
                problem = run_signal(*spec[1:])
        except subprocess.TimeoutExpired:
            problem = "timed out"
        results.setdefault(group, []).append((name, problem))
        print(f"{'ok  ' if problem is None else 'FAIL'} {group:12s} {name}  ({time.perf_counter() - t0:.1f} s)"
              + (f"\n       {problem}" if problem else ""), flush=True)
    print("\n| group | cases | held |\n|---|---:|---:|")
    for group, rows in results.items():
        print(f"| {group} | {len(rows)} | {sum(p is None for _, p in rows)} |")
    total = sum(len(r) for r in results.values())
    held = sum(p is None for r in results.values() for _, p in r)
    print(f"| all | {total} | {held} |")
    return 0 if held == total else 1


if __name__ == "__main__":
    sys.exit(main(set(sys.argv[1:])))
