"""Training-step throughput of nnkd against the machine's GEMM ceiling and PyTorch peers.

Measures, in one run, examples/s of a full training step (gather, jitter,
forward, backward, momentum update, max-norm) for the teacher, the baseline
student and the distillation step (student + soft targets), at several batch
sizes, for each available backend; beside it, when torch is installed (CPU, or
CUDA beside CuPy), the same step in PyTorch three ways (benchmarks/torch_peers.py):

- peer: with nnkd's jitter and max-norm (what nnkd's step does, written in PyTorch);
- plain torch: what a PyTorch user would write (nn.Sequential, F.cross_entropy,
  SGD with momentum 0.9, batches sliced from a tensor; no jitter, no max-norm);
- compiled peer (CUDA only): the peer's step under torch.compile(mode="reduce-overhead").

Also: float32 GEMM FLOP/s of the backend on 2048x2048 matrices (the ceiling) and
the fraction of it each step reaches; inference throughput; and one epoch of
the real training loop (nnkd.train.Trainer.run_epoch, 60,000 random MNIST-sized
images at batch 100) next to the epoch time the step benchmark implies.

    python benchmarks/bench_train.py                         # everything available
    python benchmarks/bench_train.py --batches 100 --seconds 3 --rounds 3 --markdown out.md
    python benchmarks/bench_train.py --backends numpy --batches 100 --seconds 0.2 \\
        --models student --epoch-models student --rounds 2     # a quick look

Not a test: the figures depend on the machine and on what else it is doing.
Run it on an otherwise idle machine; compare the ratios within one run (within
a cell nnkd, the peer and plain torch are measured one right after the other).
"""

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nnkd.backend import get_backend  # noqa: E402
from nnkd.errors import UserError  # noqa: E402
from nnkd.network import Network, parse_arch  # noqa: E402
from nnkd.schedules import learning_rate, momentum_at  # noqa: E402
from nnkd.presets import preset  # noqa: E402
from nnkd.train import Step, Trainer, training_conditions  # noqa: E402
from nnkd.transfer import TeacherLogits  # noqa: E402

try:
    import torch_peers  # noqa: E402 (needs torch)
except ModuleNotFoundError as exc:
    if exc.name != "torch":
        raise
    torch_peers = None

N_DATA = 8192
MNIST_TRAIN, MNIST_TEST = 60000, 10000
THREADS = None  # nnkd's threads for a step (--threads); None: all usable cores, as in training
MODE = None     # the step mode (--mode); None: nnkd.stepmode's choice, as in training


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


def first_epoch(cfg):
    """The learning rate and momentum of the config's first epoch (max-norm binds or not as
    in training)."""
    return (learning_rate(0, cfg.lr, cfg.lr_schedule, cfg.lr_decay, cfg.epochs),
            momentum_at(0, cfg.momentum_start, cfg.momentum_end, cfg.momentum_epochs))


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


def random_teacher_logits(backend, cfg, n, seed=0):
    """Random teacher logits in the pipeline's layout: ``TeacherLogits`` of ``(n, 10)``, or of
    ``((2s + 1)^2, n, 10)`` by shift and sample with ``cfg.transfer_jitter`` s."""
    s = cfg.transfer_jitter
    shape = ((2 * s + 1) ** 2, n, 10) if s else (n, 10)
    z = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * 5
    return TeacherLogits(backend.asarray(z), s)


def bench_nnkd(backend, cfg, soft, batch, seconds):
    """Examples/s of nnkd's Step at ``batch`` (random data, ``N_DATA`` images)."""
    rng = np.random.default_rng(0)
    X = backend.asarray(rng.random((N_DATA, 784), dtype=np.float32))
    Y = backend.asarray(rng.integers(0, 10, N_DATA))
    P = random_teacher_logits(backend, cfg, N_DATA) if soft else None
    host_rng = np.random.default_rng(1)
    order = backend.asarray(np.concatenate([rng.permutation(N_DATA) for _ in range(64)]))
    pos = [0]
    lr, mom = first_epoch(cfg)
    with training_conditions(backend, THREADS, MODE) as workers:  # as nnkd.train.train runs its steps
        net = Network.from_settings(cfg, backend)
        step = Step(cfg, net, workers=workers)
        net.set_rng(backend.rng(0))

        def one():
            a = pos[0] % (order.shape[0] - batch)
            pos[0] += batch
            step(X, Y, order[a:a + batch], lr, mom, host_rng, P)

        return batch / timed(one, backend.synchronize, seconds)


def bench_inference(backend, cfg, seconds, n=10000):
    X = backend.asarray(np.random.default_rng(0).random((n, 784), dtype=np.float32))
    net = Network.from_settings(cfg, backend)
    return n / timed(lambda: net.predict_logits(X), backend.synchronize, seconds)


def bench_torch(kind, device, cfg, soft, batch, seconds):
    """Examples/s of a PyTorch step (``kind`` "peer" or "plain", see torch_peers)."""
    lr, mom = first_epoch(cfg)
    if kind == "peer":
        step = torch_peers.peer_step(cfg, soft, batch, device, lr, mom)
    else:
        step = torch_peers.plain_step(cfg, soft, batch, device, lr)
    return batch / timed(step, lambda: torch_peers.sync(device), seconds)


def bench_compiled(device, cfg, soft, batch, seconds):
    """``(examples/s, compile seconds)`` of the compiled peer step, or ``(None, reason)`` if
    torch.compile or its first steps fail (any exception)."""
    lr, mom = first_epoch(cfg)
    try:
        step, compile_s = torch_peers.compiled_step(cfg, soft, batch, device, lr, mom)
        return batch / timed(step, lambda: torch_peers.sync(device), seconds), compile_s
    except Exception as exc:  # noqa: BLE001 (a failed compile leaves the column "-")
        lines = str(exc).strip().splitlines()
        return None, f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def mnist_sized_data(backend, n_train=MNIST_TRAIN, n_test=MNIST_TEST, seed=0):
    """Random data shaped like ``nnkd.data.device_data``'s MNIST dict: float32 images in
    [0, 1], int64 labels 0..9."""
    rng = np.random.default_rng(seed)
    return {"x_train": backend.asarray(rng.random((n_train, 784), dtype=np.float32)),
            "y_train": backend.asarray(rng.integers(0, 10, n_train)),
            "x_test": backend.asarray(rng.random((n_test, 784), dtype=np.float32)),
            "y_test": backend.asarray(rng.integers(0, 10, n_test)),
            "image_shape": (28, 28), "n_classes": 10}


def measure_epoch(backend, cfg, data, teacher=None):
    """Examples/s of one epoch of the real training loop (``Trainer.run_epoch``'s
    ``examples_per_s``: training time only, the evaluation after it excluded)."""
    with tempfile.TemporaryDirectory() as stage_dir, training_conditions(backend, THREADS, MODE) as workers:
        trainer = Trainer(replace(cfg, epochs=1), backend, data, stage_dir,
                          teacher=teacher, log=lambda *a: None, workers=workers)
        row = trainer.run_epoch()  # under the conditions nnkd.train.train uses
    return row["examples_per_s"]


def environment(backends):
    lines = [f"- python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
             f"{os.cpu_count()} CPUs ({_cpu_model()}), {_load()} at the start"]
    try:
        from threadpoolctl import threadpool_info
        for info in threadpool_info():
            what = " ".join(str(info[k]) for k in ("internal_api", "version", "architecture") if info.get(k))
            lines.append(f"- {info.get('user_api')}: {what}, {info.get('num_threads')} threads "
                         f"({info.get('prefix')})")
    except ImportError:
        lines.append("- threadpoolctl not installed: BLAS library and threads unknown")
    for be in backends:
        with training_conditions(be, THREADS, MODE) as workers:
            lines.append(f"- nnkd backend {be.name}: {be.describe()}" + ("" if be.is_gpu else
                         f", steps on {workers.n} thread(s) in {workers.mode} mode (nnkd.stepmode)"))
    lines.append(f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} in the environment")
    if torch_peers is None:
        lines.append("- torch not installed (no PyTorch columns)")
    else:
        torch = torch_peers.torch
        blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
        lines.append(f"- torch {torch.__version__}, {torch.get_num_threads()} threads "
                     f"({torch.get_num_interop_threads()} inter-op), BLAS {blas.group(1) if blas else '?'}"
                     + (f", CUDA {torch.version.cuda} on {torch.cuda.get_device_name()}"
                        if torch.cuda.is_available() else ""))
    return lines


def _load():
    """The 1/5/15-minute load averages: another job on a shared machine shows here."""
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _names(text, known, flag, ap):
    names = [n for n in text.split(",") if n]
    for n in names:
        if n not in known:
            ap.error(f"{flag}: unknown model {n!r} (known: {', '.join(known)})")
    return names


class Compiler:
    """The compiled-peer column: compiles cell after cell until ``budget`` seconds of compiling
    and warming up are spent or a compile fails; then "-"."""

    def __init__(self, budget):
        self.budget, self.spent, self.off, self.times = budget, 0.0, None, []

    def cell(self, device, role, cfg, soft, batch, seconds):
        """Examples/s of the compiled step, or None (and one line saying why, once)."""
        if self.off is None and self.spent >= self.budget:
            self.off = f"the compile budget ({self.budget:g} s) is spent"
            print(f"torch.compile: {self.off}; '-' from here on")
        if self.off is not None:
            return None
        ex, info = bench_compiled(device, cfg, soft, batch, seconds)
        if ex is None:
            self.off = f"failed for {role} at batch {batch} ({info})"
            print(f"torch.compile {self.off}; '-' from here on")
        else:
            self.spent += info
            self.times.append(f"{role} at {batch} {info:.0f} s")
        return ex


def step_table(be, cfgs, models, batches, seconds, torch_device, compiler):
    """The step table's lines for one backend and round; within a cell nnkd, the peer, plain
    torch and the compiled peer run one right after the other."""
    ceiling = gemm_ceiling(be.xp, be.synchronize)
    lines = [f"float32, GEMM ceiling {ceiling / 1e9:.0f} GFLOP/s (2048x2048 matmul).", ""]
    head = "| model | batch | nnkd ex/s | GFLOP/s | % of GEMM ceiling |"
    sep = "|---|---:|---:|---:|---:|"
    if torch_device:
        lines += [f"PyTorch {torch_peers.torch.__version__} on {torch_device}: *peer* with nnkd's jitter "
                  "and max-norm (gathered batches, grouped-slice jitter, soft targets by shift); "
                  "*plain torch*: nn.Sequential, F.cross_entropy, SGD(momentum=0.9), batches sliced "
                  "from a tensor, no jitter, no max-norm; "
                  + ("*compiled peer*: the peer's model, loss, backward, SGD step and max-norm under "
                     'torch.compile(mode="reduce-overhead"), gather and jitter eager, compile and '
                     "warm-up not timed." if compiler else "torch.compile: skipped on CPU."), ""]
        head += " peer ex/s | nnkd / peer | plain torch ex/s | nnkd / plain |"
        sep += "---:|---:|---:|---:|"
        if compiler:
            head += " compiled peer ex/s | nnkd / compiled |"
            sep += "---:|---:|"
    lines += [head, sep]
    print(head, flush=True)
    for role in models:
        cfg, soft = cfgs[role]
        flops = step_flops(parse_arch(cfg.arch))
        for batch in batches:
            c = replace(cfg, batch_size=batch)
            ex = bench_nnkd(be, c, soft, batch, seconds)
            row = f"| {role} | {batch} | {ex:,.0f} | {ex * flops / 1e9:.0f} | {100 * ex * flops / ceiling:.0f}% |"
            if torch_device:
                for kind in ("peer", "plain"):
                    px = bench_torch(kind, torch_device, c, soft, batch, seconds)
                    row += f" {px:,.0f} | {ex / px:.2f} |"
            if compiler:
                cx = compiler.cell(torch_device, role, c, soft, batch, seconds)
                row += f" {cx:,.0f} | {ex / cx:.2f} |" if cx else " - | - |"
            lines.append(row)
            print(row, flush=True)
    lines.append("")
    if compiler and compiler.times:
        lines += ["torch.compile and warm-up so far (not timed): " + ", ".join(compiler.times) + ".", ""]
    if compiler and compiler.off:
        lines += [f"torch.compile: {compiler.off}; its column is '-' from there on.", ""]
    return lines


def epoch_table(be, cfgs, models, seconds):
    """Per model at batch 100: the epoch time the step benchmark implies (measured just
    before) and one epoch of Trainer.run_epoch on random MNIST-sized data."""
    data = mnist_sized_data(be)
    lines = ["| model | step ex/s (batch 100) | implied epoch | measured epoch (Trainer.run_epoch) "
             "| measured / implied |", "|---|---:|---:|---:|---:|"]
    for role in models:
        cfg, soft = cfgs[role]
        cfg = replace(cfg, batch_size=100)
        step_ex = bench_nnkd(be, cfg, soft, 100, seconds)
        targets = random_teacher_logits(be, cfg, MNIST_TRAIN) if soft else None
        epoch_ex = measure_epoch(be, cfg, data, targets)
        implied, measured = MNIST_TRAIN / step_ex, MNIST_TRAIN / epoch_ex
        lines.append(f"| {role} | {step_ex:,.0f} | {implied:.2f} s | {measured:.2f} s | {measured / implied:.2f} |")
        print(lines[-1], flush=True)
    return lines + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="numpy,cupy", help="comma-separated; unusable ones are skipped")
    ap.add_argument("--batches", default="32,100,256,1024,4096")
    ap.add_argument("--models", default="teacher,student,distill")
    ap.add_argument("--seconds", type=float, default=1.5, help="timing per cell after warm-up")
    ap.add_argument("--rounds", type=int, default=1, help="measure the step table this many times")
    ap.add_argument("--epoch-models", default="teacher,student,distill",
                    help="models whose real epoch (Trainer.run_epoch, batch 100) is timed; '' skips")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for a step; default all usable cores, as training uses")
    ap.add_argument("--mode", choices=("split", "whole"), default=None,
                    help="step mode (nnkd.stepmode): products split by columns over nnkd's threads, "
                         "or whole on OpenBLAS's threads; default the mode training would use")
    ap.add_argument("--no-peer", action="store_true", help="skip PyTorch")
    ap.add_argument("--compile-budget", type=float, default=120,
                    help="seconds of torch.compile + warm-up (CUDA) after which its column is '-'")
    ap.add_argument("--markdown", default=None, help="also write the tables to this file (after each table)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be at least 1")
    global THREADS, MODE
    THREADS, MODE = args.threads, args.mode
    cfgs = configs()
    models = _names(args.models, cfgs, "--models", ap)
    epoch_models = _names(args.epoch_models, cfgs, "--epoch-models", ap)
    batches = [int(b) for b in args.batches.split(",") if b]
    backends = []
    for name in args.backends.split(","):
        try:
            backends.append(get_backend(name))
        except UserError as exc:
            print(f"skipping backend {name}: {exc}")

    out = [f"## Training-step throughput, {time.strftime('%Y-%m-%d %H:%M')}", "",
           "`python benchmarks/bench_train.py " + " ".join(sys.argv[1:]) + "`", ""]

    def emit(lines):
        out.extend(lines)
        if args.markdown:
            Path(args.markdown).write_text("\n".join(out) + "\n")

    emit(environment(backends) + [""])
    compiler = Compiler(args.compile_budget)
    for be in backends:
        torch_device = None
        if torch_peers is not None and not args.no_peer:
            if not be.is_gpu:
                torch_device = "cpu"
            elif torch_peers.torch.cuda.is_available():
                torch_device = "cuda"
        for r in range(args.rounds):
            title = f"### backend {be.name}" + (f", round {r + 1} of {args.rounds}" if args.rounds > 1 else "")
            emit([title, ""] + step_table(be, cfgs, models, batches, args.seconds, torch_device,
                                          compiler if torch_device == "cuda" else None))
        inference = [f"| {role} | {bench_inference(be, cfgs[role][0], args.seconds):,.0f} |"
                     for role in ("teacher", "student")]
        emit([f"Inference (evaluation mode, batches of 10,000), backend {be.name}:", "",
              "| model | inference ex/s |", "|---|---:|", *inference, ""])
        if epoch_models:
            emit([f"One epoch of {MNIST_TRAIN:,} random MNIST-sized images at batch 100, backend {be.name}: "
                  "implied by the step benchmark (measured just before) and measured by the training "
                  "loop (Trainer.run_epoch's examples_per_s: training time only):", ""]
                 + epoch_table(be, cfgs, epoch_models, args.seconds))
    emit([f"{_load()} at the end."])
    print("\n".join(out))


if __name__ == "__main__":
    main()
