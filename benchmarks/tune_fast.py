"""Time-to-accuracy sweep behind the `fast` preset, and a long teacher run, in parallel.

Meant for a machine with a GPU (CuPy), where many short runs fit in minutes:

    python benchmarks/tune_fast.py --backend cupy --out OUT --deadline 330

1. probes the teacher's epoch time, then starts a long teacher run (the `fast`
   recipe with as many epochs as fit in the deadline): the candidate for the
   shipped pretrained teacher;
2. trains the `fast` preset's teacher (and teacher variants with other learning
   rates) and, on the `fast` teacher, distilled students over a grid of learning
   rate x hard-label weight, and baseline students at the same learning rates;
3. writes OUT/sweep.jsonl (one line per finished run) and OUT/pretrained_teacher.npz
   (weights of the long run's last checkpoint).

Every run is an ordinary `main.py` command, so each result can be reproduced
on the CPU with the same flags.  Runs not finished by the deadline are killed and
reported as such.
"""

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nnkd.train import export_weights  # noqa: E402


def run(cmd, log, timeout):
    t0 = time.time()
    try:
        with open(log, "w") as f:
            r = subprocess.run([sys.executable, "main.py", *cmd], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT,
                               timeout=max(timeout, 1))
        return r.returncode, time.time() - t0
    except subprocess.TimeoutExpired:
        return "timeout", time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="cupy")
    ap.add_argument("--out", required=True)
    ap.add_argument("--deadline", type=float, default=330, help="seconds for the whole sweep")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--teacher-epochs", type=int, default=150)
    ap.add_argument("--student-epochs", type=int, default=60)
    ap.add_argument("--max-long-epochs", type=int, default=1000)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_end = time.time() + args.deadline
    left = lambda: t_end - time.time()  # noqa: E731
    be = ["--backend", args.backend]
    results = out / "sweep.jsonl"

    def record(name, cmd, rc, secs, run_dir):
        row = {"name": name, "cmd": "python main.py " + " ".join(cmd), "rc": rc, "seconds": round(secs, 1)}
        res = run_dir / "results.json"
        if res.exists():
            row["test_errors"] = {k: v["test_errors"] for k, v in json.loads(res.read_text())["models"].items()}
        else:
            m = next(iter(run_dir.glob("*/metrics.jsonl")), None)
            if m and m.read_text().strip():
                last = json.loads(m.read_text().splitlines()[-1])
                row["test_errors"] = last["test_errors"]
                row["epoch"] = last["epoch"]
        with open(results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    # 1. Probe the teacher's epoch time, then size the long run to the deadline.
    probe = out / "probe"
    run(["train-teacher", *be, "--epochs", "2", "--out", str(probe)], out / "probe.log", 120)
    rows = [json.loads(l) for l in (probe / "teacher" / "metrics.jsonl").read_text().splitlines()]
    per_epoch = rows[-1]["seconds"] / len(rows) * 1.6  # slack: other processes share the GPU
    long_epochs = max(10, min(args.max_long_epochs, int((left() - 40) / per_epoch)))
    print(f"teacher epoch ~{per_epoch / 1.6:.2f} s alone; long run: {long_epochs} epochs", flush=True)
    long_dir = out / "long"
    long_cmd = ["train-teacher", *be, "--epochs", str(long_epochs), "--checkpoint-every", "5",
                "--out", str(long_dir)]

    pool = ThreadPoolExecutor(args.workers)
    jobs = [pool.submit(lambda: (long_cmd, run(long_cmd, out / "long.log", left() - 15)))]

    def job(name, cmd):
        run_dir = Path(cmd[cmd.index("--out") + 1])
        rc, secs = run(cmd, out / f"{name}.log", left() - 5)
        record(name, cmd, rc, secs, run_dir)

    # 2. The fast teacher first; teacher variants beside it.
    fast_t = out / "teacher-lr0.1"
    t_cmd = lambda lr, d: ["train-teacher", *be, "--epochs", str(args.teacher_epochs), "--lr", str(lr),  # noqa: E731
                           "--out", str(d)]
    variants = [pool.submit(job, f"teacher-lr{lr}", t_cmd(lr, out / f"teacher-lr{lr}")) for lr in (0.05, 0.2)]
    job("teacher-lr0.1", t_cmd(0.1, fast_t))
    teacher = fast_t / "teacher" / "checkpoint.npz"
    student_jobs = []
    if teacher.exists():
        s = ["--epochs", str(args.student_epochs)]
        for lr in (0.02, 0.05, 0.01):
            for hw in (0.1, 0.0, 0.5):
                name = f"distill-lr{lr}-hw{hw}"
                student_jobs.append(pool.submit(job, name, ["distill", *be, "--teacher", str(teacher), *s,
                                                            "--lr", str(lr), "--hard-weight", str(hw),
                                                            "--no-baseline", "--out", str(out / name)]))
            name = f"baseline-lr{lr}"
            student_jobs.append(pool.submit(job, name, ["train-student", *be, *s, "--lr", str(lr),
                                                        "--out", str(out / name)]))
    for j in variants + student_jobs:
        j.result()
    long_cmd, (rc, secs) = jobs[0].result()
    record("long-teacher", long_cmd, rc, secs, long_dir)
    ck = long_dir / "teacher" / "checkpoint.npz"
    if ck.exists():
        export_weights(ck, out / "pretrained_teacher.npz", trained_by="benchmarks/tune_fast.py")
        (out / "pretrained_metrics.jsonl").write_text((long_dir / "teacher" / "metrics.jsonl").read_text())


if __name__ == "__main__":
    main()
