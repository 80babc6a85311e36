"""Optional Numba kernels for the NumPy path's memory-bound passes (``pip install numba``).

SGD's momentum update is four NumPy passes over each weight matrix (``s = g * scale``,
``v *= m``, ``v += s``, ``w += v``) and max-norm's column norms a fifth.  With Numba
installed, one compiled loop does them in one pass: the same float32 operations on each
element in the same order (no fused multiply-add, no reassociation: Numba's default
``fastmath=False``), and each column's squared norm summed down the rows as
``numpy.einsum("ij,ij->j")`` sums it, so the results are bit for bit those of the NumPy
passes (tested).  Without Numba, or with ``NNKD_NUMBA=0``, the NumPy passes run.
"""

import os

import numpy as np

try:
    import numba
except ImportError:  # the optional extra is not installed
    numba = None

ENV = "NNKD_NUMBA"
NO_NORMS = np.empty(0, dtype=np.float32)  # "no column norms wanted" (Numba needs an array)


def available():
    """Whether the Numba kernels are used: Numba importable and ``NNKD_NUMBA`` not ``0``."""
    return numba is not None and os.environ.get(ENV, "1") != "0"


def _sgd_update(w, v, g, scale, mom, c0, c1, sq_norms):
    """For columns ``c0:c1`` of 2-D ``w``, ``v``, ``g``: ``v = v * mom + g * scale`` and
    ``w += v`` elementwise, in the NumPy path's order; with a non-empty ``sq_norms``,
    ``sq_norms[j]`` becomes the squared length of the updated column ``w[:, j]``."""
    norms = sq_norms.shape[0] > 0
    for i in range(w.shape[0]):
        for j in range(c0, c1):
            s = g[i, j] * scale
            x = v[i, j] * mom
            x = x + s
            v[i, j] = x
            y = w[i, j] + x
            w[i, j] = y
            if norms:
                if i == 0:
                    sq_norms[j] = y * y
                else:
                    sq_norms[j] = sq_norms[j] + y * y


_compiled = {}


def sgd_update(w, v, g, scale, mom, part, sq_norms=NO_NORMS):
    """:func:`_sgd_update` on the columns ``part`` (a slice) of 2-D float32 arrays, compiled at
    the first call (and cached on disk by Numba); ``scale``, ``mom``: float32 scalars."""
    kernel = _compiled.get("sgd")
    if kernel is None:
        kernel = _compiled["sgd"] = numba.njit(nogil=True, cache=True)(_sgd_update)
    c0, c1, _ = part.indices(w.shape[1])
    kernel(w, v, g, scale, mom, c0, c1, sq_norms)
