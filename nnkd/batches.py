"""Mini-batches and jitter, on the active backend.

Shuffling and shift draws use a host NumPy generator derived from
``(seed, epoch)``; the images never leave the device.
"""

import numpy as np

from .backend import array_module


def batch_slices(n, batch_size):
    """``[(start, stop)]`` covering ``0..n`` in order; the last batch may be smaller."""
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def gather(X, idx, out):
    """``out[:] = X[idx]`` without allocating (``take`` along axis 0 into ``out``).  ``idx``
    must lie in ``range(len(X))`` (a training order): on NumPy the take does not check it,
    since the checking mode buffers ``out`` through a temporary as large as the batch."""
    xp = array_module(out)
    if xp is np:
        return np.take(X, idx, axis=0, out=out, mode="clip")
    return xp.take(X, idx, axis=0, out=out)


def n_shifts(max_shift):
    """How many shifts a jitter of up to ``max_shift`` pixels has: ``(2s + 1)^2``."""
    return (2 * max_shift + 1) ** 2


def shifts(max_shift):
    """All :func:`n_shifts` shifts ``(dy, dx)`` in ``[-s, s]^2``, in a fixed order; shift ``k``
    of this list is what :func:`jitter` reports as ``k``."""
    side = 2 * max_shift + 1
    return [(k // side - max_shift, k % side - max_shift) for k in range(n_shifts(max_shift))]


def shift_into(src, dst, dy, dx):
    """``dst[...] = src`` moved by ``(dy, dx)`` pixels with zero fill.

    src, dst: ``(B, H, W)`` views (distinct).  Positive ``dy`` moves the content
    down, positive ``dx`` right.
    """
    dst.fill(0)
    return _place(src, dst, dy, dx)


def _place(src, dst, dy, dx):
    """:func:`shift_into` without the zero fill (``dst`` is zero where nothing lands)."""
    h, w = src.shape[-2:]
    dst[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        src[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return dst


_SHIFT_MAPS = {}  # (max_shift, shape, array module) -> _shift_maps' arrays, made once


def _shift_maps(max_shift, shape, xp):
    """For shift ``k`` of :func:`shifts` and output pixel ``p`` of a flattened ``(H, W)`` image:
    ``source[k, p]``, the input pixel that lands on ``p``, and ``inside[k, p]``, whether there is
    one (else ``p`` is 0); arrays of module ``xp``."""
    key = (max_shift, tuple(shape), xp.__name__)
    if key not in _SHIFT_MAPS:
        h, w = shape
        row, col = np.divmod(np.arange(h * w), w)
        source, inside = [], []
        for dy, dx in shifts(max_shift):
            r, c = row - dy, col - dx
            ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            source.append(np.where(ok, r * w + c, 0))
            inside.append(ok)
        _SHIFT_MAPS[key] = xp.asarray(np.array(source)), xp.asarray(np.array(inside))
    return _SHIFT_MAPS[key]


def jitter(x, out, max_shift, host_rng, shape=(28, 28)):
    """Translate each image of ``x`` by an integer shift of up to ``max_shift`` pixels in
    each direction, filling with zeros.

    x, out: ``(B, H * W)`` arrays on the backend (distinct); ``shape``: ``(H, W)``.  Consecutive
    blocks of the batch share a shift: the rows of a shuffled batch are
    exchangeable, so giving block ``k`` shift ``k`` with multinomial block sizes
    is the same distribution as an independent uniform shift per image, and it
    costs ``(2s + 1)^2`` slice copies instead of a gather over every pixel.

    Returns ``k``, a host ``(B,)`` int array: row ``i`` was moved by
    ``shifts(max_shift)[k[i]]``.  On CuPy the same moves are one gather (a few kernels instead of
    one or two per shift).
    """
    B = x.shape[0]
    X = x.reshape(B, *shape)
    O = out.reshape(B, *shape)
    all_shifts = shifts(max_shift)
    counts = host_rng.multinomial(B, np.full(len(all_shifts), 1.0 / len(all_shifts)))
    k = np.repeat(np.arange(len(all_shifts)), counts)
    xp = array_module(out)
    if xp is not np:
        source, inside = _shift_maps(max_shift, shape, xp)
        kd = xp.asarray(k)
        moved = xp.take_along_axis(x, source[kd], axis=1)
        out[...] = xp.where(inside[kd], moved, out.dtype.type(0))
        return k
    O.fill(0)  # once for the batch
    start = 0
    for (dy, dx), count in zip(all_shifts, counts):
        if count:
            rows = slice(start, start + count)
            _place(X[rows], O[rows], dy, dx)
            start += count
    return k
