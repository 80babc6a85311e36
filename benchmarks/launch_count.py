"""Kernel launches and host synchronizations of a training step and of an epoch on the CuPy
path, counted by the CuPy stand-in (tests/cupy_standin, NumPy on the CPU): what a card would
be asked to run, measured without one.

    python3 benchmarks/launch_count.py [--preset fast] [--markdown FILE]

Per step: one :class:`nnkd.train.Step` (gather, jitter, forward, loss, backward, optimizer,
max-norm) of the preset's teacher, student, and distilled student.  Per epoch: one
``Trainer.run_epoch`` over 60,000 images (the steps, the finiteness checks, the metrics and the
evaluation on 10,000 test images), and the host syncs among its steps (before the epoch's end).  Counts depend on the layers, not on their widths: the hidden
layers are cut to 32 units so that an epoch runs in seconds (the script checks that a step counts
the same at two widths).
"""

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cupy_standin"))  # `cupy` is the stand-in
sys.path.insert(1, str(ROOT))

import cupy  # noqa: E402
from nnkd.backend import get_backend  # noqa: E402
from nnkd.network import Network  # noqa: E402
from nnkd.presets import preset  # noqa: E402
from nnkd.train import Step, Trainer  # noqa: E402
from nnkd.transfer import TeacherLogits  # noqa: E402

N_TRAIN, N_TEST = 60000, 10000
COUNTS = cupy._standin.counts


def narrow(cfg, width):
    sizes = cfg.arch.split("-")
    return replace(cfg, arch="-".join([sizes[0]] + [str(width)] * (len(sizes) - 2) + [sizes[-1]]))


def synthetic(be, rng):
    x = rng.random((N_TRAIN + N_TEST, 784), dtype=np.float32)
    y = rng.integers(0, 10, N_TRAIN + N_TEST)
    return {"x_train": be.asarray(x[:N_TRAIN]), "y_train": be.asarray(y[:N_TRAIN]),
            "x_test": be.asarray(x[N_TRAIN:]), "y_test": be.asarray(y[N_TRAIN:])}


def teacher_logits(be, cfg, rng):
    s = cfg.transfer_jitter
    return TeacherLogits(be.asarray(rng.standard_normal(((2 * s + 1) ** 2, N_TRAIN, 10), dtype=np.float32)), s)


def per_step(cfg, be, data, teacher, steps=20):
    net = Network.from_settings(cfg, be)
    net.set_rng(be.rng(0))
    step = Step(cfg, net)
    host_rng = np.random.default_rng(1)
    idx = be.asarray(np.arange(cfg.batch_size))
    step(data["x_train"], data["y_train"], idx, 0.01, 0.9, host_rng, teacher)  # buffers allocated
    COUNTS.reset()
    for _ in range(steps):
        step(data["x_train"], data["y_train"], idx, 0.01, 0.9, host_rng, teacher)
    return {k: v / steps for k, v in COUNTS.snapshot().items()}


def per_epoch(cfg, be, data, teacher, folder):
    t = Trainer(replace(cfg, eval_every=1, epochs=1), be, data, folder, teacher, log=lambda s: None)
    in_steps = []
    sync = be.synchronize  # run_epoch's first call after its steps: what the steps synced till then
    be.synchronize = lambda: (in_steps.append(COUNTS.syncs), sync())[1]
    COUNTS.reset()
    try:
        t.run_epoch()
    finally:
        del be.synchronize
    return dict(COUNTS.snapshot(), syncs_in_steps=in_steps[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    be = get_backend("cupy")
    rng = np.random.default_rng(0)
    data = synthetic(be, rng)
    cfgs = preset(args.preset)[0]
    t_cfg, s_cfg = cfgs["teacher"], cfgs["student"]
    models = [("teacher", t_cfg, None), ("student", s_cfg, None),
              ("distilled student", s_cfg, teacher_logits(be, s_cfg, rng))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, cfg, teacher) in enumerate(models):
            step = per_step(narrow(cfg, 32), be, data, teacher)
            if step != per_step(narrow(cfg, 48), be, data, teacher):
                raise SystemExit(f"{name}: a step counts differently at another width")
            epoch = per_epoch(narrow(cfg, 32), be, data, teacher, Path(tmp) / str(i))
            steps = -(-N_TRAIN // cfg.batch_size)
            rows.append(f"| {name} | {cfg.arch} | {cfg.batch_size} | {step['launches']:g} | "
                        f"{step['syncs']:g} | {step['h2d']:g} | {steps} | {epoch['launches']:,} | "
                        f"{epoch['syncs']:,} | {epoch['syncs_in_steps']:,} |")
    table = ("| model | arch | batch | launches / step | host syncs / step | host-to-device / step "
             "| steps / epoch | launches / epoch | host syncs / epoch | of which among the steps |\n"
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows))
    print(f"CuPy stand-in counts, preset {args.preset}, one epoch of {N_TRAIN:,} images "
          f"(evaluation on {N_TEST:,}):\n\n{table}")
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


if __name__ == "__main__":
    main()
