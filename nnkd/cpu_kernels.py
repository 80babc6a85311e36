"""Optional Numba kernels for the NumPy path's memory-bound passes (``pip install numba``).

SGD's momentum update is four NumPy passes over each weight matrix (``s = g * scale``,
``v *= m``, ``v += s``, ``w += v``) and max-norm's column norms a fifth.  With Numba
installed, one compiled loop does them in one pass: the same float32 operations on each
element in the same order (no fused multiply-add, no reassociation: Numba's default
``fastmath=False``), and each column's squared norm summed down the rows as
``numpy.einsum("ij,ij->j")`` sums it, so the results are bit for bit those of the NumPy
passes (tested).  Without Numba, or with ``NNKD_NUMBA=0``, the NumPy passes run.  Numba is
imported and the kernels compiled at their first use (and cached on disk by Numba).
"""

import importlib.util
import os
import threading

import numpy as np

ENV = "NNKD_NUMBA"
NO_NORMS = np.empty(0, dtype=np.float32)  # "no column norms wanted" (Numba needs an array)
_INSTALLED = importlib.util.find_spec("numba") is not None


def available():
    """Whether the Numba kernels are used: Numba installed and ``NNKD_NUMBA`` not ``0``."""
    return _INSTALLED and os.environ.get(ENV, "1") != "0"


def _update_row(w, v, g, scale, mom):
    """1-D: ``v = v * mom + g * scale; w += v`` (a loop the compiler vectorizes)."""
    for j in range(w.shape[0]):
        x = v[j] * mom + g[j] * scale
        v[j] = x
        w[j] = w[j] + x


def _add_squares(sq, w):
    """1-D: ``sq += w * w``."""
    for j in range(w.shape[0]):
        sq[j] = sq[j] + w[j] * w[j]


def _sgd_update(w, v, g, scale, mom, c0, c1, sq_norms):
    """For columns ``c0:c1`` of 2-D ``w``, ``v``, ``g``: :func:`_update_row` row after row;
    with a non-empty ``sq_norms``, ``sq_norms[c0:c1]`` becomes the squared lengths of the
    updated columns, summed down the rows while each row is still in cache."""
    norms = sq_norms.shape[0] > 0
    if norms:
        sq_norms[c0:c1] = 0
    for i in range(w.shape[0]):
        _update_row(w[i, c0:c1], v[i, c0:c1], g[i, c0:c1], scale, mom)
        if norms:
            _add_squares(sq_norms[c0:c1], w[i, c0:c1])


_compiled = {}
_compiling = threading.Lock()  # the parts of a step may call it first on two threads at once


def _kernel():
    """:func:`_sgd_update` compiled (its helpers first: Numba resolves them as globals)."""
    with _compiling:
        if not _compiled:
            import numba
            jit = numba.njit(nogil=True, cache=True)
            globals().update(_update_row=jit(_update_row), _add_squares=jit(_add_squares))
            _compiled["sgd"] = jit(_sgd_update)
    return _compiled["sgd"]


def sgd_update(w, v, g, scale, mom, part, sq_norms=NO_NORMS):
    """:func:`_sgd_update` on the columns ``part`` (a slice) of 2-D float arrays; ``scale``,
    ``mom``: scalars of their dtype."""
    c0, c1, _ = part.indices(w.shape[1])
    _kernel()(w, v, g, scale, mom, c0, c1, sq_norms)
