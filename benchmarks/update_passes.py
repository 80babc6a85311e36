"""SGD's momentum update of the student's two weight matrices (784x800, 800x800, float32), one
thread: NumPy's four passes whole, in blocks of rows or elements, and one Numba loop; each
checked bit for bit against the four passes, then timed in 15 interleaved rounds (medians and
fastest).

    OPENBLAS_NUM_THREADS=1 python benchmarks/update_passes.py
"""
import os
import statistics
import time

import numba
import numpy as np

import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nnkd import cpu_kernels  # noqa: E402

print("load average", os.getloadavg())
rng = np.random.default_rng(0)
shapes = [(784, 800), (800, 800)]
def mk():
    return [(rng.standard_normal(s, dtype=np.float32), rng.standard_normal(s, dtype=np.float32)*1e-3,
             rng.standard_normal(s, dtype=np.float32)*1e-2) for s in shapes]
scale, mom = np.float32(-0.035), np.float32(0.9)
S = [np.empty(s, np.float32) for s in shapes]

def plain(P):
    for (w, v, g), s in zip(P, S):
        np.multiply(g, scale, out=s); v *= mom; v += s; w += v

def chunked(P, rows=32):
    for (w, v, g), s in zip(P, S):
        for a in range(0, w.shape[0], rows):
            r = slice(a, a + rows)
            np.multiply(g[r], scale, out=s[r]); v[r] *= mom; v[r] += s[r]; w[r] += v[r]

def chunked_flat(P, n=32768):
    for (w, v, g), s in zip(P, S):
        w1, v1, g1, s1 = w.reshape(-1), v.reshape(-1), g.reshape(-1), s.reshape(-1)
        s1 = s1[:n]
        for a in range(0, w1.size, n):
            b = min(a + n, w1.size); k = b - a
            ss = s1[:k]
            np.multiply(g1[a:b], scale, out=ss); vv = v1[a:b]; vv *= mom; vv += ss; ww = w1[a:b]; ww += vv

@numba.njit(nogil=True)
def _nb(w, v, g, scale, mom):
    for i in range(w.shape[0]):
        x = v[i] * mom
        x = x + g[i] * scale
        v[i] = x
        w[i] = w[i] + x
def numba_(P):
    for (w, v, g), s in zip(P, S):
        _nb(w.reshape(-1), v.reshape(-1), g.reshape(-1), scale, mom)

def nnkd_kernel(P):
    for (w, v, g), s in zip(P, S):
        cpu_kernels.sgd_update(w, v, g, scale, mom, slice(None))

fns = {"nnkd.cpu_kernels": nnkd_kernel, "plain": plain, "rows32": chunked, "rows16": lambda P: chunked(P, 16), "flat32k": chunked_flat, "flat16k": lambda P: chunked_flat(P, 16384), "flat numba loop": numba_}
# exactness
ref = mk(); 
for name, f in fns.items():
    Q = [tuple(a.copy() for a in t) for t in ref]
    R = [tuple(a.copy() for a in t) for t in ref]
    for _ in range(3): plain(Q); f(R)
    print(name, "exact:", all(np.array_equal(a, b) for t, u in zip(Q, R) for a, b in zip(t, u)))
P = mk()
times = {k: [] for k in fns}
for r in range(15):
    for k, f in fns.items():
        t = time.perf_counter()
        for _ in range(20): f(P)
        times[k].append((time.perf_counter() - t) / 20 * 1e3)
print("load average", os.getloadavg())
for k, t in times.items(): print(f"{k}: median {statistics.median(t):.3f} ms  min {min(t):.3f}")
