"""A training step against its products alone, per step mode, with and without the Numba
kernels, against PyTorch's plain step and the machine's GEMM ceilings (OpenBLAS, and MKL
through the ``mkl`` runtime wheel when installed): all in one run, interleaved.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_step_parts.py \\
        --models student,teacher --rounds 9 --seconds 0.25 --markdown out.md

Models: the `fast` preset's ``teacher`` and ``student``, and ``distillation`` (the student's
step on soft targets of the jittered transfer set).  Variants of its step at batch 100
(nnkd.train.Step, random data): *split* / *whole* (nnkd.stepmode) x *numpy* (NumPy passes) /
*numba* (nnkd.cpu_kernels).  *update*: the step's optimizer update and max-norm alone
(``Step.update``), a pass over every parameter, its velocity and its gradient that no product
hides.
*products*: the step's matrix products alone (forward, weight gradients, input gradients of
every layer but the first), on the same threads as the mode runs them: OpenBLAS by column
parts on nnkd's threads (split) or whole on OpenBLAS's threads (whole), and MKL's
``cblas_sgemm`` whole on MKL's threads or by column parts on nnkd's threads with MKL at one
thread.  *around the products* is (step - products of the same mode) / step.  Each round
times every variant once (about ``--seconds`` each, in a rotated order); the table gives each
variant's fastest round (the least disturbed on a shared machine) and its median.  Not a test: on a shared machine the
load average printed beside the table says how busy it was.  Last, per model, the targets:
the step against its products alone (at most 1.15x) and PyTorch's plain step against nnkd's
(at least 1.5x for the teacher, 1.3x for the student and distillation), in the mode this
machine's calibration chose (nnkd.stepmode's cache) or, with none cached, the faster here.
"""

import argparse
import ctypes
import glob
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nnkd import cpu_kernels, parallel, stepmode  # noqa: E402
from nnkd.backend import flush_subnormals, get_backend  # noqa: E402
from nnkd.network import Network, parse_arch  # noqa: E402
from nnkd.parallel import cpu_workers  # noqa: E402
from nnkd.presets import preset  # noqa: E402
from nnkd.train import Step  # noqa: E402
from nnkd.transfer import TeacherLogits  # noqa: E402

from bench_train import step_flops  # noqa: E402

try:
    import torch_peers  # noqa: E402
except ModuleNotFoundError:
    torch_peers = None

BATCH = 100
ROLES = {"teacher": "teacher", "student": "student", "distillation": "student"}  # model: preset role
TARGETS = {"teacher": 1.5, "student": 1.3, "distillation": 1.3}  # PyTorch plain step / nnkd's
MAX_STEP_OVER_PRODUCTS = 1.15


class MKL:
    """``cblas_sgemm`` of the MKL runtime (``libmkl_rt``) through ctypes, or None."""

    def __init__(self):
        # MKL's OpenMP threads would otherwise spin 200 ms after each product, on the cores the
        # next variant is timed on
        os.environ.setdefault("KMP_BLOCKTIME", "0")
        paths = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
        self.lib = ctypes.CDLL(paths[0]) if paths else None
        if self.lib:
            self.path = paths[0]
            self.lib.MKL_Get_Version_String.argtypes = [ctypes.c_char_p, ctypes.c_int]
            buf = ctypes.create_string_buffer(256)
            self.lib.MKL_Get_Version_String(buf, 256)
            self.version = buf.value.decode().strip()
            self.lib.MKL_Set_Num_Threads.argtypes = [ctypes.c_int]
            f = self.lib.cblas_sgemm
            f.restype = None
            f.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, ctypes.c_void_p, ctypes.c_int,
                                               ctypes.c_void_p, ctypes.c_int, ctypes.c_float,
                                               ctypes.c_void_p, ctypes.c_int]

    def threads(self, n):
        self.lib.MKL_Set_Num_Threads(n)

    def matmul(self, a, b, out):
        """``out[...] = a @ b`` for float32 2-D views whose rows or columns are contiguous."""
        (ta, lda), (tb, ldb) = _operand(a), _operand(b)
        m, k = a.shape
        n = b.shape[1]
        self.lib.cblas_sgemm(101, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0,
                             out.ctypes.data, out.strides[0] // 4)


def _operand(a):
    """CBLAS's (transpose flag, leading dimension) of a row-major view ``a``."""
    if a.strides[1] == 4:
        return 111, a.strides[0] // 4
    return 112, a.strides[1] // 4


def products(sizes, mm, rng):
    """A function running a step's products for ``sizes`` at batch 100 through ``workers``
    as nnkd.layers.Dense does, with ``mm(a, b, out)`` as the product."""
    W = [rng.standard_normal((a, b), dtype=np.float32) * 0.01 for a, b in zip(sizes[:-1], sizes[1:])]
    acts = [rng.random((BATCH, n), dtype=np.float32) for n in sizes]
    grads = [np.empty_like(w) for w in W]
    gxs = [np.empty_like(a) for a in acts]

    def run(workers):
        for i, w in enumerate(W):
            x, y = acts[i], acts[i + 1]
            workers.over(lambda c: mm(x, w[:, c], y[:, c]), w.shape[1])
        for i in reversed(range(len(W))):
            x, gy, w = acts[i], acts[i + 1], W[i]
            workers.over(lambda c: mm(x.T, gy[:, c], grads[i][:, c]), w.shape[1])
            if i:
                workers.over(lambda c: mm(gy, w[c].T, gxs[i][:, c]), w.shape[0])
    return run


def stepper(cfg, soft):
    """``(run_step, run_update)``: a step of ``cfg`` (on soft targets of the jittered transfer
    set if ``soft``) and its update alone, each a function of the workers."""
    be = get_backend("numpy")
    rng = np.random.default_rng(0)
    X = rng.random((4096, 784), dtype=np.float32)
    Y = rng.integers(0, 10, 4096)
    shifts = (2 * cfg.transfer_jitter + 1) ** 2
    targets = TeacherLogits(rng.standard_normal((shifts, 4096, 10), dtype=np.float32) * 5,
                            cfg.transfer_jitter) if soft else None
    net = Network.from_settings(cfg, be)
    step = Step(cfg, net)
    net.set_rng(be.rng(0))
    host = np.random.default_rng(1)
    pos = [0]

    def on(workers):
        net.set_workers(workers)
        step.opt.workers = workers

    def run_step(workers):
        on(workers)
        a = pos[0] % (4096 - BATCH)
        pos[0] += BATCH
        step(X, Y, np.arange(a, a + BATCH), 0.01, 0.9, host, targets)

    def run_update(workers):
        on(workers)
        step.update(0.01, 0.9)
    return run_step, run_update


def per_call(fn, seconds):
    """Seconds per call of ``fn()`` over about ``seconds`` (after two warm-up calls)."""
    fn()
    fn()
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and reps >= 3:
            return dt / reps


def gemm_ceiling(mm, seconds, n=2048):
    a, b = (np.random.default_rng(i).random((n, n), dtype=np.float32) for i in (0, 1))
    c = np.empty_like(a)
    return 2 * n ** 3 / per_call(lambda: mm(a, b, c), seconds) / 1e9


def variants(models, threads, mkl):
    """``{name: (mode, extra, fn)}``: ``fn(workers)`` runs the variant once."""
    be = get_backend("numpy")
    out = {}
    for model in models:
        cfg = preset("fast")[0][ROLES[model]]
        sizes = parse_arch(cfg.arch)
        run_step, run_update = stepper(cfg, model == "distillation")
        for mode in ("split", "whole") if threads > 1 else ("whole",):  # one thread: the same
            for numba in ("numpy", "numba") if cpu_kernels._INSTALLED else ("numpy",):
                out[f"{model} step {mode} {numba}"] = (mode, numba, run_step)
                out[f"{model} update {mode} {numba}"] = (mode, numba, run_update)
            out[f"{model} products {mode} openblas"] = (mode, None, products(sizes, np.matmul,
                                                                               np.random.default_rng(1)))
            if mkl:
                out[f"{model} products {mode} mkl"] = (mode, "mkl", products(sizes, mkl.matmul,
                                                                             np.random.default_rng(1)))
        if torch_peers is not None:
            out[f"{model} torch plain"] = (None, "torch", torch_peers.plain_step(
                cfg, model == "distillation", BATCH, "cpu", cfg.lr))
    return be, out


def time_variant(be, name, spec, threads, mkl, seconds):
    mode, extra, fn = spec
    if extra == "torch":
        return per_call(fn, seconds)
    os.environ[cpu_kernels.ENV] = "0" if extra == "numpy" else "1"
    with flush_subnormals(), np.errstate(all="ignore"), cpu_workers(be, threads, mode) as workers:
        if extra == "mkl":
            mkl.threads(1 if mode == "split" else threads)
        return per_call(lambda: fn(workers), seconds)


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="student,teacher", help="any of " + ",".join(ROLES))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.25)
    ap.add_argument("--threads", type=int, default=None, help="default: all usable cores")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    threads = args.threads or parallel.step_threads(get_backend("numpy"))
    if torch_peers is not None:
        torch_peers.torch.set_num_threads(threads)
    mkl = MKL()
    mkl = mkl if mkl.lib else None
    lines = [f"`python benchmarks/bench_step_parts.py {' '.join(sys.argv[1:])}`", ""]
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i['internal_api']} {i['version']} {i.get('architecture')}" for i in threadpool_info()
                if i["user_api"] == "blas"]
    except ImportError:
        blas = [parallel.blas_config() or "?"]
    import numba
    lines += [f"- CPU: {parallel.cpu_model()}, {os.cpu_count()} CPUs; steps on {threads} threads",
              f"- numpy {np.__version__}, BLAS (threadpoolctl): {'; '.join(blas)}; "
              f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}",
              f"- MKL: {mkl.version + ' (' + mkl.path + ')' if mkl else 'not installed'}",
              f"- numba {numba.__version__}" if cpu_kernels._INSTALLED else "- numba not installed",
              f"- torch {torch_peers.torch.__version__}, {torch_peers.torch.get_num_threads()} threads"
              if torch_peers else "- torch not installed",
              f"- load average at the start: {load()}", ""]
    print("\n".join(lines), flush=True)
    be, specs = variants(args.models.split(","), threads, mkl)
    ceilings = {"openblas": [], "mkl": []}
    times = {name: [] for name in specs}
    names = list(specs)
    with cpu_workers(be, threads, "whole"):
        for r in range(args.rounds):
            ceilings["openblas"].append(gemm_ceiling(np.matmul, args.seconds))
            if mkl:
                mkl.threads(threads)
                ceilings["mkl"].append(gemm_ceiling(mkl.matmul, args.seconds))
            k = r % len(names)
            for name in names[k:] + names[:k]:
                times[name].append(time_variant(be, name, specs[name], threads, mkl, args.seconds))
            print(f"round {r + 1}: load {load()}", flush=True)
    lines += table(args.models.split(","), times, ceilings, specs)
    lines += targets(args.models.split(","), times, specs, threads)
    lines += ["", f"Load average at the end: {load()}."]
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


def table(models, times, ceilings, specs):
    """Per model: each variant's fastest round (the least disturbed on a shared machine) and its
    median; *around the products* from the fastest rounds."""
    best = {k: min(v) for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    out = ["GEMM ceiling (2048x2048 float32, whole on the BLAS's threads), best and median round: "
           + ", ".join(f"{k} {max(v):.0f} and {statistics.median(v):.0f} GFLOP/s"
                       for k, v in ceilings.items() if v), ""]
    ceiling = max(ceilings["openblas"]) * 1e9
    for model in models:
        plain = best.get(f"{model} torch plain")
        flops = BATCH * step_flops(parse_arch(preset("fast")[0][ROLES[model]].arch))
        out += [f"**{model}**, batch {BATCH}" + (f"; PyTorch plain step {plain * 1e3:.2f} ms best, "
                                                  f"{med[f'{model} torch plain'] * 1e3:.2f} median"
                                                  if plain else ""), "",
                "| variant | best ms | median ms | best ex/s | % of OpenBLAS's GEMM ceiling | around the products "
                "| PyTorch plain / variant |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for name in [n for n in specs if n.startswith(model + " ") and "torch" not in n]:
            t, mode, step = best[name], specs[name][0], " step " in name
            around = f"{100 * (t - best[f'{model} products {mode} openblas']) / t:.0f}%" if step else ""
            share = f"{100 * flops / t / ceiling:.0f}%" if step or " products " in name else ""
            out.append(f"| {name[len(model) + 1:]} | {t * 1e3:.3f} | {med[name] * 1e3:.3f} | "
                       f"{f'{BATCH / t:,.0f}' if step else ''} | {share} | {around} | "
                       f"{f'{plain / t:.2f}' if plain and step else ''} |")
        out.append("")
    return out


def targets(models, times, specs, threads):
    """Per model, the issue's targets judged on the fastest rounds, in the machine's step mode."""
    best = {k: min(v) for k, v in times.items()}
    known = stepmode.known_mode(threads) if threads > 1 else "whole"
    out = ["**Targets** (fastest rounds; " + (f"step mode {known}, this machine's calibration)" if known else
                                               "no calibration cached here: the faster mode)"), ""]
    for model in models:
        modes = [known] if known else [m for m in ("split", "whole") if f"{model} step {m} numpy" in best]
        extra = "numba" if cpu_kernels._INSTALLED else "numpy"
        mode = min(modes, key=lambda m: best[f"{model} step {m} {extra}"])
        step, update = best[f"{model} step {mode} {extra}"], best[f"{model} update {mode} {extra}"]
        prods, plain = best[f"{model} products {mode} openblas"], best.get(f"{model} torch plain")
        ratio = step / prods
        line = (f"- {model} ({mode}, {extra}): step {step * 1e3:.2f} ms = {ratio:.2f}x its products alone "
                f"({prods * 1e3:.2f} ms; target at most {MAX_STEP_OVER_PRODUCTS}: "
                f"{'met' if ratio <= MAX_STEP_OVER_PRODUCTS else 'not met'}); the update alone "
                f"{update * 1e3:.2f} ms, so products + update = {(prods + update) / prods:.2f}x the products")
        if plain:
            line += (f"; PyTorch plain / nnkd {plain / step:.2f} (target at least {TARGETS[model]}: "
                     f"{'met' if plain / step >= TARGETS[model] else 'not met'})")
        out.append(line)
    return out


if __name__ == "__main__":
    main()
