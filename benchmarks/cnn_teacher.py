"""A small PyTorch CNN teacher for MNIST, exported to ONNX for ``nnkd distill --teacher cnn.onnx``.

PyTorch is a benchmark peer here, never a dependency of nnkd (``pip install torch``).  The
data is nnkd's (``nnkd.data.load``), and the exported model takes what nnkd's networks take:
float32 ``[N, 784]``, the pixels / 255 flattened; the graph reshapes them into images.

    OMP_NUM_THREADS=1 nice -n 19 python3 benchmarks/cnn_teacher.py --out runs/cnn
    python3 main.py distill --teacher runs/cnn/cnn.onnx --no-baseline

or all in one, with the paper's student distilled over three seeds from the CNN and from the
shipped MLP teacher (``fast`` preset), and ``main.py report`` of each set:

    OMP_NUM_THREADS=1 nice -n 19 python3 benchmarks/cnn_teacher.py --out runs/cnn --distill-seeds 0,1,2

Training: two 5x5 convolutions (16 and 32 maps, each followed by ReLU and 2x2 max pooling),
a dense layer of 128 ReLUs with dropout 0.5, 10 logits; SGD with momentum 0.9, a cosine
learning rate from 0.05, batch 100, the images moved by up to 2 pixels like the shipped
teacher's.  The script writes ``cnn.onnx`` (and its SHA-256), the PyTorch weights
``cnn.pt`` and ``train.log``, and checks that onnxruntime's logits agree with PyTorch's on
the test set.  Run again with the same ``--out``, it reuses ``cnn.pt`` and the finished or
stopped distill runs there (more seeds: a longer ``--distill-seeds``).
"""

import argparse
import hashlib
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnkd.batches import jitter  # noqa: E402
from nnkd.data import load, to_float32  # noqa: E402


def build(torch):
    nn = torch.nn

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5),
                                      nn.Linear(128, 10))

        def forward(self, x):  # x: [N, 784] float32 in [0, 1], as nnkd feeds its teachers
            return self.head(self.features(x.reshape(-1, 1, 28, 28)))

    return CNN()


def errors(torch, model, x, y, batch=1000):
    model.eval()
    with torch.no_grad():
        z = np.concatenate([model(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])
    return int((z.argmax(1) != y).sum()), z


def train_cnn(torch, model, args, x, y, xt, yt, log):
    """Train ``model`` in place; returns the start time."""
    n_params = sum(p.numel() for p in model.parameters())
    log(f"cnn teacher: {n_params:,} parameters, {len(x)} training images, {args.epochs} epochs, lr {args.lr}, "
        f"jitter {args.jitter}, torch {torch.__version__}, {args.threads} thread(s), seed {args.seed}")
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rng = np.random.default_rng(args.seed)
    moved = np.empty((100, 784), np.float32)
    steps = args.epochs * math.ceil(len(x) / 100)
    t0, step = time.perf_counter(), 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order, loss_sum = rng.permutation(len(x)), 0.0
        for i in range(0, len(x), 100):
            idx = order[i:i + 100]
            xb = x[idx]
            if args.jitter:
                jitter(xb, moved[:len(idx)], args.jitter, rng)
                xb = moved[:len(idx)]
            for group in opt.param_groups:
                group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(xb)), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            step += 1
        e, _ = errors(torch, model, xt, yt)
        log(f"  epoch {epoch:3d}/{args.epochs}  loss {loss_sum / len(x):.4f}  test errors {e}  "
            f"{(time.perf_counter() - t0) / 60:.1f} min")
    return t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for cnn.onnx, cnn.pt and train.log")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--jitter", type=int, default=2, help="max shift of the training images in pixels")
    p.add_argument("--train-limit", type=int, default=None, help="use the first N training images only")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distill-seeds", default=None, metavar="S,S,...",
                   help="then distill the fast preset's student from cnn.onnx and from the shipped teacher, "
                   "one run per seed (folders OUT/distill-{cnn,shipped}-seedS), and report each set")
    p.add_argument("--distill-args", default="", help="more distill flags, e.g. '--epochs 1 --train-limit 2000'")
    args = p.parse_args(argv)
    import torch
    import onnxruntime as ort
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "train.log", "a")

    def log(line):
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    ds = load("mnist", log=log)
    x, y = to_float32(ds.train_features[:args.train_limit]), ds.train_labels[:args.train_limit].astype(np.int64)
    xt, yt = to_float32(ds.test_features), ds.test_labels.astype(np.int64)
    model = build(torch)
    if (out / "cnn.pt").exists():  # a trained CNN in --out: export it again and distill from it
        model.load_state_dict(torch.load(out / "cnn.pt"))
        log(f"cnn teacher: the trained weights in {out / 'cnn.pt'}")
        t0 = time.perf_counter()
    else:
        t0 = train_cnn(torch, model, args, x, y, xt, yt, log)
        torch.save(model.state_dict(), out / "cnn.pt")
    test_errors, z_torch = errors(torch, model, xt, yt)
    dest = out / "cnn.onnx"
    torch.onnx.export(model, (torch.from_numpy(xt[:2]),), str(dest), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(dest), opts, providers=["CPUExecutionProvider"])
    z_ort = np.concatenate([session.run(None, {"input": xt[i:i + 1000]})[0] for i in range(0, len(xt), 1000)])
    diff = float(np.abs(z_ort - z_torch).max())
    ort_errors = int((z_ort.argmax(1) != yt).sum())
    sha = hashlib.sha256(dest.read_bytes()).hexdigest()
    log(f"test errors: {test_errors} (PyTorch), {ort_errors} (onnxruntime); largest logit difference {diff:.2e}")
    log(f"{dest}: {dest.stat().st_size:,} bytes, sha256 {sha}; {(time.perf_counter() - t0) / 60:.1f} min")
    (out / "SHA256SUMS").write_text(f"{sha}  cnn.onnx\n")
    if ort_errors != test_errors:
        return 1
    if args.distill_seeds:
        distill(out, [int(s) for s in args.distill_seeds.split(",")], args.distill_args.split(), log)
    return 0


def distill(out, seeds, extra, log):
    """``main.py distill --no-baseline`` from the CNN and from the shipped teacher for each seed,
    then ``main.py report`` of each set (into the log)."""
    root = Path(__file__).resolve().parent.parent
    for name, teacher in (("cnn", ["--teacher", str((out / "cnn.onnx").resolve())]), ("shipped", [])):
        runs = []
        for seed in seeds:
            run = (out / f"distill-{name}-seed{seed}").resolve()
            cmd = [sys.executable, "main.py", "distill"]  # a started run continues with its own settings
            cmd += ["--resume", str(run)] if (run / "run.json").exists() else \
                [*teacher, "--no-baseline", "--seed", str(seed), *extra, "--out", str(run)]
            log("$ " + " ".join(cmd[1:]))
            r = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
            tail = r.stdout.splitlines()[-6:] + r.stderr.splitlines()
            for line in tail:
                log("  " + line)
            if r.returncode:
                raise SystemExit(f"distill failed (exit status {r.returncode})")
            runs.append(str(run))
        r = subprocess.run([sys.executable, "main.py", "report", *runs], cwd=root, capture_output=True, text=True)
        log(f"distilled from the {name} teacher:")
        log(r.stdout + r.stderr)


if __name__ == "__main__":
    sys.exit(main())
