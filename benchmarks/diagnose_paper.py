"""Why a preset collapses: the first steps of training, instrumented.

    python benchmarks/diagnose_paper.py [--preset paper] [--lr 10] [--steps 300] [--every 20]
        [--max-norm-layers hidden|all|none] [--momentum-form paper|classic] [--dropout-scaling train|test]

Trains the preset's teacher on MNIST for a few hundred steps and prints, every
``--every`` steps: the batch loss and error, the fraction of hidden units that are
dead on the batch (never positive), the largest |logit|, the largest column norm of
each layer's weights, the largest |bias|, and how many floats in the weights,
gradients and velocities are subnormal (what makes a float32 step slow on x86).
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnkd import backend as backends, data  # noqa: E402
from nnkd.schedules import learning_rate, momentum_at  # noqa: E402
from nnkd.network import Network  # noqa: E402
from nnkd.data import device_data  # noqa: E402
from nnkd.presets import preset  # noqa: E402
from nnkd.train import Step, count_errors  # noqa: E402

TINY = np.finfo(np.float32).tiny


def subnormals(arrays):
    return int(sum(np.count_nonzero((a != 0) & (np.abs(a) < TINY)) for a in arrays))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--max-norm-layers")
    ap.add_argument("--momentum-form")
    ap.add_argument("--init-std", type=float)
    ap.add_argument("--dropout-scaling")
    args = ap.parse_args()
    cfg = preset(args.preset)[0]["teacher"]
    for name in ("lr", "max_norm_layers", "momentum_form", "init_std", "dropout_scaling"):
        if getattr(args, name) is not None:
            cfg = replace(cfg, **{name: getattr(args, name)})
    print(cfg)
    be = backends.get_backend("numpy")
    d = device_data(data.load("mnist"), be)
    net = Network.from_settings(cfg, be)
    step = Step(cfg, net)
    net.set_rng(be.rng([cfg.seed, 0, 1]))
    host_rng = np.random.default_rng([cfg.seed, 0, 0])
    order = host_rng.permutation(d["x_train"].shape[0])
    lr = learning_rate(0, cfg.lr, cfg.lr_schedule, cfg.lr_decay, cfg.epochs)
    mom = momentum_at(0, cfg.momentum_start, cfg.momentum_end, cfg.momentum_epochs)
    print(f"lr {lr}  momentum {mom}  form {cfg.momentum_form}")
    print(" step   loss  err%  dead1  dead2  max|z|  |W0|max |W1|max |W2|max  |b|max  subnormal(w,g,v)  ms/step")
    t0 = time.perf_counter()
    for s in range(1, args.steps + 1):
        idx = order[(s - 1) * cfg.batch_size: s * cfg.batch_size]
        loss, wrong = step(d["x_train"], d["y_train"], idx, lr, mom, host_rng)
        if s % args.every == 0 or s == 1:
            ms = 1000 * (time.perf_counter() - t0) / (s if s == 1 else args.every)
            # dead units: on this batch (eval mode), a hidden unit that is never positive
            h = d["x_train"][idx]
            dead = []
            for layer in net.dense[:-1]:
                h = np.maximum(h @ layer.W.data + layer.b.data, 0)
                dead.append(float(np.mean(h.max(axis=0) <= 0)))
            z = h @ net.dense[-1].W.data + net.dense[-1].b.data
            norms = [float(np.sqrt((l.W.data ** 2).sum(axis=0)).max()) for l in net.dense]
            bmax = max(float(np.abs(l.b.data).max()) for l in net.dense)
            ps = [p for _, p in net.params]
            sub = (subnormals([p.data for p in ps]), subnormals([p.grad for p in ps]),
                   subnormals(step.opt.velocity))
            print(f"{s:5d} {float(loss):6.3f} {100 * int(wrong) / len(idx):5.1f} {dead[0]:6.3f} "
                  f"{dead[1]:6.3f} {float(np.abs(z).max()):7.3g} {norms[0]:8.3f} {norms[1]:8.3f} "
                  f"{norms[2]:8.3f} {bmax:7.3g}  {sub[0]:5d} {sub[1]:6d} {sub[2]:7d}  {ms:7.1f}",
                  flush=True)
            t0 = time.perf_counter()
    print("test errors", count_errors(net, d["x_test"], d["y_test"]))


if __name__ == "__main__":
    main()
