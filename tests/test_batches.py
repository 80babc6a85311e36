"""Jitter and mini-batches."""

import numpy as np

from nnkd.batches import batch_slices, gather, jitter, shifts

from .conftest import host


def shift_reference(img, dy, dx):
    """Independent zero-filled shift: positive dy moves content down, dx right."""
    out = np.zeros_like(img)
    h, w = img.shape
    for r in range(h):
        for c in range(w):
            rr, cc = r + dy, c + dx
            if 0 <= rr < h and 0 <= cc < w:
                out[rr, cc] = img[r, c]
    return out


def test_jitter_matches_reference_and_covers_all_shifts(backend):
    rng = np.random.default_rng(0)
    imgs = rng.integers(1, 256, (400, 784)).astype(np.float32)
    x = backend.asarray(imgs)
    out = backend.xp.empty_like(x)
    k = jitter(x, out, 2, rng)
    got = host(out)
    seen = set()
    for i in range(len(imgs)):
        dy, dx = shifts(2)[k[i]]
        seen.add((int(dy), int(dx)))
        ref = shift_reference(imgs[i].reshape(28, 28), dy, dx)
        np.testing.assert_array_equal(got[i].reshape(28, 28), ref)
    assert seen == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    # No invented pixel values: every output value is 0 or a value of its own input image.
    for i in range(0, 400, 37):
        assert set(np.unique(got[i])) <= set(np.unique(imgs[i])) | {0.0}


def test_jitter_shift_frequencies_are_uniform():
    rng = np.random.default_rng(1)
    x = np.zeros((100, 784), np.float32)
    out = np.empty_like(x)
    counts = np.zeros((5, 5))
    for _ in range(200):
        for k in jitter(x, out, 2, rng):
            dy, dx = shifts(2)[k]
            counts[dy + 2, dx + 2] += 1
    assert counts.min() > 0.85 * 800 and counts.max() < 1.15 * 800


def test_batches_cover_every_index_once(backend):
    rng = np.random.default_rng(0)
    order = rng.permutation(1050)
    seen = np.concatenate([order[a:b] for a, b in batch_slices(1050, 100)])
    assert sorted(seen) == list(range(1050))
    assert batch_slices(1050, 100)[-1] == (1000, 1050)
    X = backend.asarray(np.arange(20, dtype=np.float32).reshape(10, 2))
    out = backend.xp.empty((3, 2), dtype=np.float32)
    gather(X, backend.asarray(np.array([7, 0, 3])), out)
    np.testing.assert_array_equal(host(out), [[14, 15], [0, 1], [6, 7]])
