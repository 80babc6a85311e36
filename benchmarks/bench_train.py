"""Training-step throughput of nnkd against the machine's GEMM ceiling and a framework peer.

Measures, in one run, examples/s of a full training step (gather, jitter,
forward, backward, momentum update, max-norm) for the teacher, the baseline
student and the distillation step (student + soft targets), at several batch
sizes, for each available backend, and the same steps in PyTorch when it is
installed (CPU, or CUDA beside CuPy).  Also: float32 GEMM FLOP/s of the
backend on large square matrices (the ceiling), the fraction of it each step
reaches, inference throughput and the implied epoch time.

    python benchmarks/bench_train.py                         # everything available
    python benchmarks/bench_train.py --batches 100 --seconds 3 --markdown out.md

Not a test: the figures depend on the machine and on what else it is doing.
Run it on an otherwise idle machine; compare the ratios within one run.
"""

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nnkd import losses  # noqa: E402
from nnkd.backend import get_backend  # noqa: E402
from nnkd.errors import UserError  # noqa: E402
from nnkd.network import parse_arch  # noqa: E402
from nnkd.optim import learning_rate, momentum_at  # noqa: E402
from nnkd.presets import preset  # noqa: E402
from nnkd.train import Step  # noqa: E402

N_DATA = 8192


def step_flops(sizes):
    """FLOPs of one example's training step: forward, weight gradients, and input
    gradients of every layer but the first (multiply-add = 2 FLOPs)."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    fwd = sum(2 * a * b for a, b in pairs)
    return fwd + fwd + sum(2 * a * b for a, b in pairs[1:])


def configs():
    """{model: (TrainConfig, on soft targets)}: the `fast` preset's models, and the `paper`
    preset's as ``paper-teacher`` etc. (same networks, the paper's optimizer settings)."""
    out = {}
    for name, prefix in (("fast", ""), ("paper", "paper-")):
        cfgs, _ = preset(name)
        t, s = cfgs["teacher"], cfgs["student"]
        out.update({prefix + "teacher": (t, False), prefix + "student": (s, False),
                    prefix + "distill": (s, True)})
    return out


def timed(fn, sync, seconds, min_reps=5):
    """Run ``fn`` repeatedly for about ``seconds`` after a warm-up; returns seconds per call."""
    for _ in range(3):
        fn()
    sync()
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        if reps >= min_reps and reps % 5 == 0:
            sync()
            dt = time.perf_counter() - t0
            if dt >= seconds:
                return dt / reps


def gemm_ceiling(xp, sync, n=2048, seconds=1.0):
    a = xp.asarray(np.random.default_rng(0).random((n, n), dtype=np.float32))
    b = xp.asarray(np.random.default_rng(1).random((n, n), dtype=np.float32))
    c = xp.empty_like(a)
    return 2 * n ** 3 / timed(lambda: xp.matmul(a, b, out=c), sync, seconds)


def bench_nnkd(backend, role, cfg, soft, batch, seconds):
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.random((N_DATA, 784), dtype=np.float32))
    Y = backend.asarray(rng.integers(0, 10, N_DATA))
    # Soft targets by sample index, or by (shift, sample index) for a jittered transfer set.
    shape = ((2 * cfg.transfer_jitter + 1) ** 2, N_DATA, 10) if cfg.transfer_jitter else (N_DATA, 10)
    P = losses.softmax(backend.asarray(rng.standard_normal(shape).astype(np.float32) * 5), 20.0) \
        if soft else None
    net = cfg.build(backend)
    step = Step(cfg, net)
    net.set_rng(backend.rng(0))
    host_rng = np.random.default_rng(1)
    order = backend.asarray(np.concatenate([rng.permutation(N_DATA) for _ in range(64)]))
    pos = [0]
    # The first epoch's learning rate and momentum of the config (max-norm binds or not as in training).
    lr = learning_rate(0, cfg.lr, cfg.lr_schedule, cfg.lr_decay, cfg.epochs)
    mom = momentum_at(0, cfg.momentum_start, cfg.momentum_end, cfg.momentum_epochs)

    def one():
        a = pos[0] % (order.shape[0] - batch)
        pos[0] += batch
        step(X, Y, order[a:a + batch], lr, mom, host_rng, P)

    return batch / timed(one, backend.synchronize, seconds)


def bench_inference(backend, cfg, seconds, n=10000):
    X = backend.asarray(np.random.default_rng(0).random((n, 784), dtype=np.float32))
    net = cfg.build(backend)
    return n / timed(lambda: net.predict_logits(X), backend.synchronize, seconds)


def torch_peer(device):
    """PyTorch steps of the same shapes, dtype and batch (None if torch is missing)."""
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def model(cfg):
        sizes = parse_arch(cfg.arch)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            rate = cfg.dropout_input if i == 0 else cfg.dropout_hidden
            if rate:
                layers.append(torch.nn.Dropout(rate))
            layers.append(torch.nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers).to(device)

    def bench(role, cfg, soft, batch, seconds):
        g = torch.Generator(device="cpu").manual_seed(0)
        X = torch.rand(N_DATA, 784, generator=g).to(device)
        Y = torch.randint(0, 10, (N_DATA,), generator=g).to(device)
        P = torch.softmax(torch.randn(N_DATA, 10, generator=g) * 5 / 20, 1).to(device)
        net = model(cfg)
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        hidden = [m for m in net if isinstance(m, torch.nn.Linear)][:-1]
        bound = float(np.sqrt(cfg.max_norm)) if cfg.max_norm_squared else cfg.max_norm
        T = cfg.temperature
        pos = [0]
        xj = torch.empty(batch, 28, 28, device=device)

        def one():
            a = pos[0] % (N_DATA - batch)
            pos[0] += batch
            idx = torch.arange(a, a + batch, device=device)
            x = X[idx]
            if cfg.jitter:  # the same grouped-slice jitter as nnkd
                xi = x.view(batch, 28, 28)
                xj.zero_()
                s = cfg.jitter
                counts = np.random.multinomial(batch, [1 / 25] * 25)
                start = 0
                for k, c in enumerate(counts):
                    if c:
                        dy, dx = k // 5 - s, k % 5 - s
                        xj[start:start + c, max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = \
                            xi[start:start + c, max(-dy, 0):28 + min(-dy, 0), max(-dx, 0):28 + min(-dx, 0)]
                        start += c
                x = xj.view(batch, 784)
            z = net(x)
            if soft:
                loss = cfg.soft_weight * T * T * -(P[idx] * torch.log_softmax(z / T, 1)).sum(1).mean() \
                    + cfg.hard_weight * torch.nn.functional.cross_entropy(z, Y[idx])
            else:
                loss = torch.nn.functional.cross_entropy(z, Y[idx])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
            if cfg.max_norm:
                with torch.no_grad():
                    for lin in hidden:  # Linear.weight is (out, in): a unit is a row
                        lin.weight.copy_(torch.renorm(lin.weight, 2, 0, bound))

        return batch / timed(one, sync, seconds)

    return torch, bench


def environment(backends):
    lines = [f"- python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
             f"{os.cpu_count()} CPUs ({_cpu_model()})"]
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            lines.append(f"- {info.get('internal_api')} {info.get('version')} "
                         f"{info.get('architecture', '')}, {info.get('num_threads')} threads")
    except ImportError:
        pass
    for be in backends:
        lines.append(f"- nnkd backend {be.name}: {be.describe()}")
    try:
        import torch
        lines.append(f"- torch {torch.__version__}, {torch.get_num_threads()} threads"
                     + (f", CUDA {torch.version.cuda}" if torch.cuda.is_available() else ""))
    except ImportError:
        lines.append("- torch not installed (no peer column)")
    return lines


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="numpy,cupy", help="comma-separated; unusable ones are skipped")
    ap.add_argument("--batches", default="32,100,256,1024,4096")
    ap.add_argument("--models", default="teacher,student,distill")
    ap.add_argument("--seconds", type=float, default=1.5, help="timing per cell after warm-up")
    ap.add_argument("--no-peer", action="store_true", help="skip PyTorch")
    ap.add_argument("--markdown", default=None, help="also write the tables to this file")
    args = ap.parse_args()

    backends = []
    for name in args.backends.split(","):
        try:
            backends.append(get_backend(name))
        except UserError as exc:
            print(f"skipping backend {name}: {exc}")
    batches = [int(b) for b in args.batches.split(",")]
    models = args.models.split(",")
    cfgs = configs()
    out = [f"## Training-step throughput, {time.strftime('%Y-%m-%d %H:%M')}", "",
           "`python benchmarks/bench_train.py " + " ".join(sys.argv[1:]) + "`", ""]
    out += environment(backends) + [""]
    for be in backends:
        ceiling = gemm_ceiling(be.xp, be.synchronize)
        peer = None if args.no_peer else torch_peer("cuda" if be.is_gpu else "cpu")
        peer_name = f"torch {peer[0].__version__} ({'cuda' if be.is_gpu else 'cpu'})" if peer else None
        out += [f"### backend {be.name}: float32, GEMM ceiling {ceiling / 1e9:.0f} GFLOP/s "
                "(2048x2048 matmul)", ""]
        head = "| model | batch | nnkd ex/s | GFLOP/s | % of GEMM ceiling |"
        sep = "|---|---:|---:|---:|---:|"
        if peer:
            head += f" {peer_name} ex/s | nnkd / peer |"
            sep += "---:|---:|"
        out += [head, sep]
        for role in models:
            cfg, soft = cfgs[role]
            flops = step_flops(parse_arch(cfg.arch))
            for batch in batches:
                c = replace(cfg, batch_size=batch)
                ex = bench_nnkd(be, role, c, soft, batch, args.seconds)
                row = f"| {role} | {batch} | {ex:,.0f} | {ex * flops / 1e9:.0f} | {100 * ex * flops / ceiling:.0f}% |"
                if peer:
                    px = peer[1](role, c, soft, batch, args.seconds)
                    row += f" {px:,.0f} | {ex / px:.2f} |"
                out.append(row)
                print(row, flush=True)
        out.append("")
        out += [f"Inference (evaluation mode, batches of 10,000) and the epoch time implied by "
                f"batch-100 steps on 60,000 images, backend {be.name}:", "",
                "| model | inference ex/s | epoch at batch 100 |", "|---|---:|---:|"]
        for role in ("teacher", "student"):
            cfg, _ = cfgs[role]
            inf = bench_inference(be, cfg, args.seconds)
            ex = bench_nnkd(be, role, replace(cfg, batch_size=100), False, 100, args.seconds)
            out.append(f"| {role} | {inf:,.0f} | {60000 / ex:.1f} s |")
        out.append("")
    text = "\n".join(out)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
