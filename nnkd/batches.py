"""Mini-batches and jitter, on the active backend.

Shuffling and shift draws use a host NumPy generator derived from
``(seed, epoch)``; the images never leave the device.
"""

import numpy as np

from .backend import array_module


def epoch_order(n, host_rng):
    """A random permutation of the sample indices ``0..n-1`` for one epoch."""
    return host_rng.permutation(n)


def batch_slices(n, batch_size):
    """``[(start, stop)]`` covering ``0..n`` in order; the last batch may be smaller."""
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def gather(X, idx, out):
    """``out[:] = X[idx]`` without allocating (``take`` along axis 0 into ``out``)."""
    return array_module(out).take(X, idx, axis=0, out=out)


def jitter_counts(batch, max_shift, host_rng):
    """How many images of a batch get each shift ``(dy, dx)`` in ``[-s, s]^2``.

    Returns a list of ``((dy, dx), count)`` over the ``(2s + 1)^2`` shifts,
    counts from a uniform multinomial (summing to ``batch``).
    """
    side = 2 * max_shift + 1
    counts = host_rng.multinomial(batch, np.full(side * side, 1.0 / (side * side)))
    return [((k // side - max_shift, k % side - max_shift), int(c)) for k, c in enumerate(counts)]


def jitter(x, out, max_shift, host_rng, size=28):
    """Translate each image of ``x`` by an integer shift of up to ``max_shift`` pixels in
    each direction, filling with zeros.

    x, out: ``(B, size * size)`` arrays on the backend (distinct).  Consecutive
    blocks of the batch share a shift: the rows of a shuffled batch are
    exchangeable, so giving block ``k`` shift ``k`` with multinomial block sizes
    is the same distribution as an independent uniform shift per image, and it
    costs ``(2s + 1)^2`` slice copies instead of a gather over every pixel.

    Returns ``shifts``, a host ``(B, 2)`` int array of each row's ``(dy, dx)``
    (positive ``dy`` moves the image down, positive ``dx`` right).
    """
    B = x.shape[0]
    X = x.reshape(B, size, size)
    O = out.reshape(B, size, size)
    out.fill(0)
    shifts = np.empty((B, 2), dtype=np.int64)
    start = 0
    for (dy, dx), count in jitter_counts(B, max_shift, host_rng):
        if count == 0:
            continue
        rows = slice(start, start + count)
        O[rows, max(dy, 0):size + min(dy, 0), max(dx, 0):size + min(dx, 0)] = \
            X[rows, max(-dy, 0):size + min(-dy, 0), max(-dx, 0):size + min(-dx, 0)]
        shifts[rows] = (dy, dx)
        start += count
    return shifts
