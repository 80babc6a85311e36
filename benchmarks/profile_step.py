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

from nnkd.backend import get_backend  # noqa: E402
from nnkd.presets import preset  # noqa: E402
from nnkd.train import Step  # noqa: E402

# (label, file suffix, function name) of the parts whose own time is reported.
PARTS = [
    ("forward products + bias (Dense.forward)", "layers.py", "forward", 100),
    ("weight + bias gradients (Parameter.accumulate)", "layers.py", "accumulate", None),
    ("input gradients (Dense.backward)", "layers.py", "backward", 108),
    ("optimizer update (SGD.step)", "optim.py", "step", None),
    ("max-norm (MaxNorm.apply, column norms)", "optim.py", "apply", None),
    ("max-norm column norms (einsum)", "~", "<built-in method numpy._core._multiarray_umath.c_einsum>", None),
    ("dropout masks (Backend.keep_mask)", "backend.py", "keep_mask", None),
    ("jitter", "batches.py", "jitter", None),
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
    for label, fname, func, line in PARTS:
        t = sum(v[2] for (f, ln, fn), v in stats.items()
                if f.endswith(fname) and fn == func and (line is None or ln == line))
        accounted += t
        print(f"| {label} | {t / args.steps * 1e3:.2f} |")
    print(f"| everything else (loss, ReLU, gather, Python) | {(total - accounted) / args.steps * 1e3:.2f} |")
    print(f"| total under the profiler | {total / args.steps * 1e3:.2f} |")


if __name__ == "__main__":
    main()
