"""Where a training step's time goes: cProfile over many steps of the `fast` preset's
teacher or student, grouped into products, optimizer, max-norm, masks, jitter, the rest.

    python benchmarks/profile_step.py teacher [--batch 100] [--steps 300]
"""

import argparse
import cProfile
import pstats
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnkd.backend import get_backend, keep_mask  # noqa: E402
from nnkd.batches import jitter  # noqa: E402
from nnkd.layers import Dense, Parameter  # noqa: E402
from nnkd.optim import SGD, MaxNorm  # noqa: E402
from nnkd.presets import preset  # noqa: E402
from nnkd.train import Step  # noqa: E402


def code_key(fn):
    """cProfile's key of a Python function: (file, first line, name), found from the function
    itself, so the table follows the code when lines move."""
    c = fn.__code__
    return (c.co_filename, c.co_firstlineno, c.co_name)


EINSUM = ("~", 0, "<built-in method numpy._core._multiarray_umath.c_einsum>")
# (label, cProfile key) of the parts whose own time is reported.
PARTS = [
    ("forward products + bias (Dense.forward)", code_key(Dense.forward)),
    ("weight + bias gradients (Parameter.accumulate)", code_key(Parameter.accumulate)),
    ("input gradients (Dense.backward)", code_key(Dense.backward)),
    ("optimizer update (SGD.step)", code_key(SGD.step)),
    ("max-norm (MaxNorm.apply, column norms)", code_key(MaxNorm.apply)),
    ("max-norm column norms (einsum)", EINSUM),
    ("dropout masks (keep_mask)", code_key(keep_mask)),
    ("jitter", code_key(jitter)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["teacher", "student"])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    be = get_backend("numpy")
    cfg = replace(preset("fast")[0][args.model], batch_size=args.batch)
    rng = np.random.default_rng(0)
    N = 8192
    X = rng.random((N, 784), dtype=np.float32)
    Y = rng.integers(0, 10, N)
    net = cfg.build(be)
    step = Step(cfg, net)
    net.set_rng(be.rng(0))
    host_rng = np.random.default_rng(1)
    order = np.concatenate([rng.permutation(N) for _ in range(1 + args.steps * args.batch // N)])

    def run(n):
        for i in range(n):
            step(X, Y, order[i * args.batch:(i + 1) * args.batch], 0.01, 0.9, host_rng)

    run(10)
    t0 = time.perf_counter()
    run(args.steps)
    per_step = (time.perf_counter() - t0) / args.steps * 1e3
    prof = cProfile.Profile()
    prof.enable()
    run(args.steps)
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())  # own time of everything
    print(f"{args.model}, batch {args.batch}: {per_step:.2f} ms a step without the profiler "
          f"({args.batch / per_step * 1e3:,.0f} examples/s)")
    print("| part | ms/step (own time, profiled) |\n|---|---:|")
    accounted = 0.0
    for label, key in PARTS:
        t = stats.get(key, (0, 0, 0.0))[2]
        accounted += t
        print(f"| {label} | {t / args.steps * 1e3:.2f} |")
    print(f"| everything else (loss, ReLU, gather, Python) | {(total - accounted) / args.steps * 1e3:.2f} |")
    print(f"| total under the profiler | {total / args.steps * 1e3:.2f} |")


if __name__ == "__main__":
    main()
