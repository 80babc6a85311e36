"""Does this CPU slow down on subnormal float32 operands?  One run, ratios within it.

    python benchmarks/subnormal_check.py

Times the optimizer's elementwise update (``v *= p; v += g`` on 1200x1200) and a
batch-100 product (100x1200 @ 1200x1200) with normal operands (1e-3) and with
subnormal ones (1e-39, below float32's smallest normal 1.18e-38).  Many x86 CPUs
take a microcode assist per subnormal operand or result (tens to hundreds of
cycles); a ratio near 1 means this machine does not.  The `paper` preset's text
reading (lr0 = 10) collapses and leaves up to two million velocities decaying
through the subnormal range (benchmarks/logs/paper/diagnose-lr10.log).
"""

import platform
import timeit

import numpy as np


def best(fn, number=20, repeat=7):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def cpu():
    """'model name, family F model M' from /proc/cpuinfo (Linux), else the platform's name."""
    try:
        info = dict(line.split(":", 1) for line in open("/proc/cpuinfo").read().split("\n\n")[0]
                    .splitlines() if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        return f"{info['model name']}, family {info['cpu family']} model {info['model']}"
    except (OSError, KeyError):
        return platform.processor() or platform.machine()


def main():
    n = 1200 * 1200
    g = np.zeros(n, np.float32)
    b = np.random.default_rng(0).random((1200, 1200), dtype=np.float32)
    print(f"CPU: {cpu()}, numpy {np.__version__}")
    print("| operation | normal operands ms | subnormal operands ms | subnormal / normal |")
    print("|---|---:|---:|---:|")
    rows = []
    for label, make, op in (
            ("v *= p; v += g (1200x1200)", lambda x: np.full(n, x, np.float32),
             lambda v: (v.fill(v.flat[0]), v.__imul__(np.float32(0.99)), v.__iadd__(g))),
            ("100x1200 @ 1200x1200", lambda x: np.full((100, 1200), x, np.float32), lambda a: a @ b)):
        t = [best(lambda a=make(x): op(a)) * 1e3 for x in (1e-3, 1e-39)]
        rows.append(t)
        print(f"| {label} | {t[0]:.3f} | {t[1]:.3f} | {t[1] / t[0]:.2f} |")
    assert float(np.float32(1e-39)) != 0.0, "subnormals are flushed to zero here"


if __name__ == "__main__":
    main()
