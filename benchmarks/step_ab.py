"""The training step of two nnkd trees side by side: does a change make the step faster?

    git worktree add /tmp/base HEAD~1
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/step_ab.py /tmp/base . --rounds 3

Each round runs one process per tree, in turn (the order alternates from round to round); a
process imports nnkd from its tree and times the `fast` preset's student and teacher steps
(nnkd.train.Step, batch 100, random batches of a 60,000-image random X) in step modes split and
whole on all usable cores, in 6 blocks of ``--steps`` steps (50; half that for the teacher),
and reports the fastest block.  The table gives, per tree, every round's figure: on a shared
machine, compare rounds, not single numbers.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

CASES = [(mode, role) for mode in ("split", "whole") for role in ("student", "teacher")]


def child(tree, steps):
    """Print ``mode role ms`` per case for the nnkd in ``tree``."""
    sys.path.insert(0, str(Path(tree).resolve()))
    import numpy as np
    from nnkd.backend import flush_subnormals, get_backend
    from nnkd.network import Network
    from nnkd.parallel import cpu_workers, step_threads
    from nnkd.presets import preset
    from nnkd.train import Step

    be = get_backend("numpy")
    rng = np.random.default_rng(0)
    X, order = rng.random((60000, 784), dtype=np.float32), rng.permutation(60000)
    Y = rng.integers(0, 10, 60000)
    for mode, role in CASES:
        with flush_subnormals(), np.errstate(all="ignore"), cpu_workers(be, step_threads(be), mode) as workers:
            cfg = preset("fast")[0][role]
            net = Network.from_settings(cfg, be)
            step = Step(cfg, net, workers=workers)
            net.set_rng(be.rng(0))
            host, n, best = np.random.default_rng(1), steps if role == "student" else steps // 2 or 1, float("inf")
            for block in range(6):
                t0 = time.perf_counter()
                for i in range(n):
                    a = (block * n + i) * 100 % 59900
                    step(X, Y, order[a:a + 100], 0.01, 0.9, host)
                best = min(best, (time.perf_counter() - t0) / n)
            print(mode, role, f"{best * 1e3:.3f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs=2, help="two folders holding an nnkd package (a checkout, a worktree)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50, help="a block's student steps (the teacher's: half)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.steps)
    ms = {tree: {case: [] for case in CASES} for tree in args.trees}
    for r in range(args.rounds):
        for tree in args.trees if r % 2 == 0 else args.trees[::-1]:
            out = subprocess.run([sys.executable, __file__, *args.trees, "--steps", str(args.steps), "--child", tree],
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                mode, role, value = line.split()
                ms[tree][mode, role].append(value)
        print(f"round {r + 1} done, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    print(f"\n`python benchmarks/step_ab.py {' '.join(sys.argv[1:])}`: ms a step, fastest block, "
          "each round\n\n| step | " + " | ".join(args.trees) + " |\n|---|" + "---|" * len(args.trees))
    for case in CASES:
        print(f"| {case[1]}, {case[0]} | " + " | ".join(" / ".join(ms[t][case]) for t in args.trees) + " |")


if __name__ == "__main__":
    main()
