"""Every ``cupy.fuse`` kernel of nnkd traced by the installed CuPy's own fusion, without a GPU:
the body must become one ``ElementwiseKernel`` or ``ReductionKernel`` (what a card would compile;
compiling needs NVRTC and a device).  The arrays are placeholders that own no memory.

    python3 -m tests.cupy_standin.trace_fused     # one line per kernel; exit 1 if one fails

Run with the real ``cupy`` (not with the stand-in on the path)."""

import sys

import numpy as np

F32, I64 = np.float32, np.int64
B, C, N_IN, N_OUT = 100, 10, 784, 1200

# The shapes and dtypes each kernel is called with in a step (scalars as NumPy scalars).
CASES = {
    "nnkd.optim._momentum_update": [((N_IN, N_OUT), F32)] * 3 + [((), F32)] * 2,
    "nnkd.optim._rescale_columns": [((N_IN, N_OUT), F32), ((N_OUT,), F32), F32(3.87)],
    "nnkd.losses._sum_exp_shifted": [((B, C), F32), ((B, 1), F32), F32(0.05)],
    "nnkd.losses._shifted_minus_log": [((B, C), F32), ((B, 1), F32), F32(0.05), ((B, 1), F32)],
    "nnkd.losses._softmax_minus_onehot": [((B, C), F32), ((B, 1), I64), ((C,), I64), F32(B)],
    "nnkd.losses._softmax_minus_targets": [((B, C), F32), ((B, C), F32), F32(20 * B)],
    "nnkd.losses._sum_product": [((B, C), F32), ((B, C), F32)],
    "nnkd.losses._sum_p_log_p": [((B, C), F32)],
}


def fused_kernels():
    """``{module.name: function}`` of every function made by :func:`nnkd.backend.fused`."""
    import importlib
    import pkgutil

    import nnkd
    found = {}
    for info in pkgutil.walk_packages(nnkd.__path__, "nnkd."):
        if info.name.startswith("nnkd.cli") or info.name == "nnkd.__main__":  # (the command line runs)
            continue
        module = importlib.import_module(info.name)
        for name, f in vars(module).items():
            if callable(f) and getattr(f, "__qualname__", "").startswith("fused.<locals>") \
                    and getattr(f, "__module__", None) == "nnkd.backend" and hasattr(f, "__wrapped__"):
                found[f"{f.__wrapped__.__module__}.{f.__wrapped__.__name__}"] = f
    return found


def trace(f, args):
    import cupy
    from cupy._core import fusion
    from cupy.cuda import memory

    def placeholder(shape, dtype):
        return cupy.ndarray(shape, dtype, memptr=memory.MemoryPointer(
            memory.UnownedMemory(0, 0, None, device_id=0), 0))

    args = [placeholder(*a) if isinstance(a, tuple) else a for a in args]
    history = fusion._FusionHistory()
    fusion._thread_local.history, fusion._thread_local.is_old_fusing = history, True
    try:
        kernel, _ = history.get_fusion(f.__wrapped__, args, f.__name__)
    finally:
        fusion._thread_local.history, fusion._thread_local.is_old_fusing = None, False
    return type(kernel).__name__


def main():
    import cupy
    if "standin" in cupy.__version__:
        raise SystemExit("this is the stand-in, not CuPy")
    failed = 0
    kernels = fused_kernels()
    for name in sorted(set(kernels) | set(CASES)):
        if name not in CASES or name not in kernels:
            print(f"{name}: {'no case in CASES' if name in kernels else 'no such fused kernel'}")
            failed += 1
            continue
        try:
            print(f"{name}: {trace(kernels[name], CASES[name])}")
        except Exception as exc:  # what CuPy's fusion says about the body
            print(f"{name}: FAILED {type(exc).__name__}: {exc}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
