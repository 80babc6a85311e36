"""Make ``digits8x8.npz``: a small, real-looking, non-MNIST test dataset for ``npz:``.

scikit-learn's 8x8 digits are not installed here, so this draws its own: each digit 0..9
is a template of pen strokes (polylines in the unit square), drawn with a random slant,
rotation, scale, shift and pen width on a 16x16 canvas, averaged down 2x2 to 8x8, with
a little noise, as uint8 0..255.  1,500 training and 500 test images, classes balanced,
``image_shape`` [8, 8].  Deterministic (NumPy's PCG64, seed 8); rerun with
``python3 tests/data/make_digits8x8.py`` to write the file again; nnkd ships it as
``nnkd/examples/digits8x8.npz`` (``nnkd.example_data()``).
"""

from pathlib import Path

import numpy as np


def _arc(cx, cy, rx, ry, a0, a1, n=12):
    t = np.radians(np.linspace(a0, a1, n))
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t)))  # y grows downwards


# each digit: a list of strokes, each a list of (x, y) points in [0, 1]^2
TEMPLATES = {
    0: [_arc(0.5, 0.5, 0.27, 0.38, 0, 360, 24)],
    1: [[(0.35, 0.25), (0.55, 0.1), (0.55, 0.9)]],
    2: [_arc(0.5, 0.32, 0.25, 0.2, 190, 380) + [(0.25, 0.9), (0.78, 0.9)]],
    3: [_arc(0.48, 0.3, 0.24, 0.19, 200, 450), _arc(0.48, 0.69, 0.27, 0.21, 270, 520)],
    4: [[(0.6, 0.1), (0.2, 0.62), (0.82, 0.62)], [(0.64, 0.35), (0.64, 0.92)]],
    5: [[(0.75, 0.1), (0.3, 0.1), (0.27, 0.45)], _arc(0.48, 0.65, 0.26, 0.24, 230, 500)],
    6: [[(0.68, 0.1), (0.35, 0.4)], _arc(0.5, 0.66, 0.23, 0.23, 0, 360, 20)],
    7: [[(0.22, 0.1), (0.8, 0.1), (0.42, 0.92)]],
    8: [_arc(0.5, 0.29, 0.2, 0.19, 0, 360, 20), _arc(0.5, 0.7, 0.25, 0.21, 0, 360, 20)],
    9: [_arc(0.5, 0.32, 0.23, 0.22, 0, 360, 20), [(0.73, 0.32), (0.62, 0.92)]],
}
CANVAS = 16  # drawn at 16x16, stored at 8x8


def _points(strokes, step=0.02):
    """Points every ``step`` along each stroke."""
    out = []
    for stroke in strokes:
        p = np.asarray(stroke, dtype=np.float64)
        for a, b in zip(p[:-1], p[1:]):
            n = max(2, int(np.ceil(np.linalg.norm(b - a) / step)))
            out.append(a + np.linspace(0, 1, n)[:, None] * (b - a))
    return np.concatenate(out)


def draw(digit, rng):
    """One 8x8 uint8 image of ``digit``."""
    p = _points(TEMPLATES[digit]) - 0.5
    angle = np.radians(rng.uniform(-15, 15))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shear = np.array([[1, rng.uniform(-0.3, 0.15)], [0, 1]])
    scale = np.diag(rng.uniform(0.7, 1.0, 2))
    p = p @ (rot @ shear @ scale).T + 0.5 + rng.uniform(-0.08, 0.08, 2)
    p = p + rng.normal(0, 0.015, p.shape)  # a shaky pen
    grid = (np.arange(CANVAS) + 0.5) / CANVAS
    gx, gy = np.meshgrid(grid, grid)
    pixels = np.stack([gx.ravel(), gy.ravel()], axis=1)
    d2 = ((pixels[:, None, :] - p[None, :, :]) ** 2).sum(-1).min(axis=1)
    width = rng.uniform(0.045, 0.1)
    ink = np.exp(-d2 / (2 * width ** 2)).reshape(CANVAS, CANVAS)
    small = ink.reshape(8, 2, 8, 2).mean(axis=(1, 3))
    small = small / small.max() * rng.uniform(0.8, 1.0) + rng.normal(0, 0.05, small.shape)
    return np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)


def make(n_train=1500, n_test=500, seed=8):
    """The dataset as a dict of arrays, ready for ``numpy.savez_compressed``."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_train + n_test) % 10).astype(np.uint8)
    images = np.stack([draw(int(y), rng) for y in labels])
    return {"x_train": images[:n_train], "y_train": labels[:n_train],
            "x_test": images[n_train:], "y_test": labels[n_train:],
            "image_shape": np.array([8, 8], dtype=np.int64)}


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[2] / "nnkd" / "examples" / "digits8x8.npz"
    np.savez_compressed(out, **make())
    print(f"wrote {out} ({out.stat().st_size} bytes)")
