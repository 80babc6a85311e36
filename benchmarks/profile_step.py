"""Where a training step's time goes: each large operation of the `fast` preset's teacher or
student step (every one goes through ``workers.over``, nnkd.parallel), the loss, max-norm,
jitter, and the rest, timed with a clock around each call over many steps.

    python benchmarks/profile_step.py teacher [--batch 100] [--steps 300] [--threads N]
        [--mode split|whole] [--distill]

``--mode whole`` profiles whole operations on OpenBLAS's own threads, ``--mode split`` the
products cut by columns over nnkd's threads; the default is what training uses (all usable
cores, the mode nnkd.stepmode chooses).
"""

import argparse
import collections
import importlib
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnkd import batches, losses, optim, parallel  # noqa: E402
from nnkd.backend import get_backend  # noqa: E402
from nnkd.network import Network  # noqa: E402
from nnkd.presets import preset  # noqa: E402
from nnkd.transfer import TeacherLogits  # noqa: E402

train = importlib.import_module("nnkd.train")  # the module (nnkd.train is also the package's function)

SPENT = collections.defaultdict(float)


def clocked(label, fn):
    def timed_call(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPENT[label(*args) if callable(label) else label] += time.perf_counter() - t0
    return timed_call


def operation(workers, fn, n, cut=True):
    """``Layer.forward.<locals>.units, 1200 wide`` for an operation handed to ``over``."""
    return f"{fn.__qualname__.replace('.<locals>', '')} over {n}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["teacher", "student"])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--mode", choices=("split", "whole"), default=None)
    ap.add_argument("--distill", action="store_true", help="the student's distillation step")
    args = ap.parse_args()
    be = get_backend("numpy")
    cfg = replace(preset("fast")[0][args.model], batch_size=args.batch)
    rng = np.random.default_rng(0)
    N = 8192
    X = rng.random((N, 784), dtype=np.float32)
    Y = rng.integers(0, 10, N)
    soft = None
    if args.distill:
        s = cfg.transfer_jitter
        soft = TeacherLogits(rng.standard_normal(((2 * s + 1) ** 2, N, 10), dtype=np.float32) * 5, s)
    order = np.concatenate([rng.permutation(N) for _ in range(2 + 2 * args.steps * args.batch // N)])
    host_rng = np.random.default_rng(1)

    with train.training_conditions(be, args.threads, args.mode) as workers:
        net = Network.from_settings(cfg, be)
        step = train.Step(cfg, net, workers=workers)
        net.set_rng(be.rng(0))
        pos = [0]

        def run(n):
            for _ in range(n):
                a = pos[0]
                pos[0] += args.batch
                step(X, Y, order[a:a + args.batch], 0.01, 0.9, host_rng, soft)

        run(10)
        t0 = time.perf_counter()
        run(args.steps)
        per_step = (time.perf_counter() - t0) / args.steps * 1e3
        # Clocks around every operation, the losses, max-norm and jitter; then the same steps again.
        type(workers).over = clocked(operation, type(workers).over)
        optim.MaxNorm.apply = clocked("max-norm (MaxNorm.apply)", optim.MaxNorm.apply)
        train.losses = type("clocked_losses", (), {
            "cross_entropy": staticmethod(clocked("loss (cross_entropy)", losses.cross_entropy)),
            "distillation_loss": staticmethod(clocked("loss (distillation_loss)", losses.distillation_loss))})
        train.jitter = clocked("jitter", batches.jitter)
        t0 = time.perf_counter()
        run(args.steps)
        clocked_step = (time.perf_counter() - t0) / args.steps * 1e3
    kind = "distillation" if args.distill else args.model
    print(f"{kind} step, batch {args.batch}, {workers.n} thread(s) in {workers.mode} mode (nnkd.stepmode): "
          f"{per_step:.2f} ms a step without clocks ({args.batch / per_step * 1e3:,.0f} examples/s), "
          f"{clocked_step:.2f} ms with them")
    print("| part | ms/step |\n|---|---:|")
    for label, t in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {t / args.steps * 1e3:.3f} |")
    accounted = sum(SPENT.values()) / args.steps * 1e3
    print(f"| everything else (gather, argmax, Python, ...) | {clocked_step - accounted:.3f} |")
    print(f"| step (with clocks) | {clocked_step:.3f} |")
    print(f"\nOperations are named `function over n`: `n` rows or columns, cut into parts when "
          f"wide and large enough (nnkd.parallel: at least {parallel.MIN_WIDTH} wide; elementwise "
          f"passes from {parallel.MIN_ELEMENTWISE:,} elements).")


if __name__ == "__main__":
    main()
