"""The transfer set: the teacher's logits for every image a distilled student sees.

One type holds them, :class:`TeacherLogits`, in one layout: ``(shifts, N, C)``, where
row ``[k, i]`` is the teacher's output for training image ``i`` moved by shift ``k``
of :func:`nnkd.batches.shifts` (``shifts`` is 1 when the transfer set is not
jittered).  They are stored by sample index, never by batch position, so any
shuffling pairs each image with its own logits.  They stay logits: the
distillation loss softens them at the student's temperature, in one place
(:func:`nnkd.losses.distillation_loss`).

On disk (``teacher_logits.npy``) the array is ``(N, C)`` without jitter and
``(shifts, N, C)`` with it.
"""

import time
from pathlib import Path

import numpy as np

from .backend import array_module
from .batches import shift_into, shifts
from .errors import Interrupted, UserError
from .files import atomic_write, read_array


class TeacherLogits:
    """The teacher's logits on the transfer set.

    Args:
        logits: ``(N, C)`` or ``(shifts, N, C)`` float array (NumPy or CuPy).
        max_shift: the transfer set's jitter in pixels; ``shifts`` must be
            ``(2 * max_shift + 1) ** 2``.

    Raises :class:`UserError` for any other shape, a non-float dtype, or values that
    are not finite.
    """

    def __init__(self, logits, max_shift=0):
        xp = array_module(logits)
        if not hasattr(logits, "ndim") or logits.ndim not in (2, 3) or logits.dtype.kind != "f":
            raise UserError(f"teacher logits must be a float array (N, classes) or (shifts, N, classes), "
                            f"got {_describe(logits)}")
        if logits.ndim == 2:
            logits = logits[None]
        n_shifts = (2 * max_shift + 1) ** 2
        if logits.shape[0] != n_shifts:
            raise UserError(f"teacher logits hold {logits.shape[0]} shift(s) per image, but a transfer set "
                            f"jittered by up to {max_shift} px needs {n_shifts}: compute them with the "
                            "same `student.transfer_jitter`")
        if not bool(xp.isfinite(logits).all()):
            raise UserError("the teacher's logits hold NaN or infinite values: compute them again "
                            "from an undamaged teacher")
        if bool((logits >= 0).all()) and bool(xp.allclose(logits.sum(axis=-1), 1, atol=1e-3)):
            raise UserError("the teacher's logits look like probabilities (every row sums to 1): give "
                            "logits, or np.log(probabilities), which softmax turns back into them")
        self.logits = xp.ascontiguousarray(logits)
        self.max_shift = max_shift

    @property
    def n_images(self):
        return self.logits.shape[1]

    @property
    def n_classes(self):
        return self.logits.shape[2]

    def check_against(self, n_images, n_classes):
        """Refuse logits for another number of images or classes than the data's."""
        if (self.n_images, self.n_classes) != (n_images, n_classes):
            raise UserError(f"the teacher's logits are for {self.n_images} images x {self.n_classes} classes, "
                            f"but the transfer set has {n_images} images x {n_classes} classes: compute them "
                            "on the same training images")

    def rows(self, idx, k=None):
        """``(B, C)`` logits of images ``idx`` (on the backend), moved by shifts ``k`` (a host
        ``(B,)`` array from :func:`nnkd.batches.jitter`, or None: unmoved)."""
        if k is None:
            return self.logits[0][idx]
        xp = array_module(self.logits)
        flat = self.logits.reshape(-1, self.n_classes)
        return flat[xp.asarray(k) * self.n_images + idx]

    def restrict(self, keep):
        """The logits of images ``keep`` (backend indices) only, in that order."""
        return TeacherLogits(self.logits[:, keep], self.max_shift)

    def on_disk(self):
        """The array as ``teacher_logits.npy`` holds it."""
        return self.logits if self.max_shift else self.logits[0]


def _describe(a):
    shape = getattr(a, "shape", None)
    return f"{type(a).__name__} {getattr(a, 'dtype', '')}{tuple(shape) if shape is not None else ''}"


def file_shape(n_images, n_classes, max_shift):
    """The shape of ``teacher_logits.npy`` for a transfer set."""
    n_shifts = (2 * max_shift + 1) ** 2
    return (n_shifts, n_images, n_classes) if max_shift else (n_images, n_classes)


def read(path, backend, n_images, n_classes, max_shift):
    """:class:`TeacherLogits` from a ``.npy`` file, checked against the transfer set."""
    host = read_array(path, "teacher logits", shape=file_shape(n_images, n_classes, max_shift),
                      dtype=np.float32)
    return TeacherLogits(backend.asarray(host), max_shift)


def compute(net, data, path, max_shift=0, log=print, stop=None, chunk=10000, progress_every=10.0):
    """The teacher ``net``'s logits on ``data["x_train"]`` in evaluation mode, for every
    shift up to ``max_shift`` pixels; cached in ``path`` (read back when it exists).

    ``stop`` (a :class:`nnkd.train.StopFlag`) is checked before each call of the teacher,
    and a progress line is logged every ``progress_every`` seconds; the file is written whole
    at the end or not at all.  ``net`` is an nnkd network, or anything with its ``sizes``,
    ``backend`` and ``predict_logits`` (:class:`nnkd.teachers.OnnxTeacher`).  A call covers
    ``net.rows_per_call`` images where the teacher has it (an ONNX model: one onnxruntime
    batch, so a stop is seen within one batch), else ``chunk`` (an nnkd network: 10,000
    images, the batch its logits have always been computed in, in about 0.4 s for the paper
    teacher on 2 cores).
    """
    path = Path(path)
    chunk = getattr(net, "rows_per_call", chunk)
    X = data["x_train"]
    n, C = X.shape[0], net.sizes[-1]
    if path.exists():
        cached = read(path, net.backend, n, C, max_shift)
        log(f"teacher logits: cached in {path}")
        return cached
    t0 = last = time.perf_counter()
    xp = net.backend.xp
    moves = shifts(max_shift)
    z = xp.empty((len(moves), n, C), dtype=np.float32)
    side = data.get("image_shape", (28, 28))[0] if max_shift else None
    moved = xp.empty_like(X) if max_shift else None  # no copy of the images when nothing moves
    for k, (dy, dx) in enumerate(moves):
        if max_shift:
            shift_into(X.reshape(n, side, -1), moved.reshape(n, side, -1), dy, dx)
        images = moved if max_shift else X  # evaluation mode reads its input, never writes it
        for i in range(0, n, chunk):
            if stop:
                raise Interrupted(f"stopped by {stop.signal} while computing the teacher's logits "
                                  f"(shift {k + 1} of {len(moves)}); nothing of them was written")
            z[k, i:i + chunk] = net.predict_logits(images[i:i + chunk])
            if time.perf_counter() - last >= progress_every:
                last = time.perf_counter()
                done, total = k * n + min(i + chunk, n), len(moves) * n
                left = (last - t0) * (total - done) / done
                log(f"teacher logits: {done:,} of {total:,} images (shift {k + 1} of {len(moves)}), "
                    f"{last - t0:.0f} s, about {left:.0f} s left")
    logits = TeacherLogits(z, max_shift)  # checks that every value is finite
    atomic_write(path, lambda f: np.save(f, net.backend.to_host(logits.on_disk())))
    log(f"teacher logits: {len(moves)} x {n} images in {time.perf_counter() - t0:.1f} s -> {path}")
    return logits


def without_classes(data, teacher, absent, backend):
    """The students' data and the teacher's logits without the training images of the
    ``absent`` classes (the logits were computed on all of them, by sample index)."""
    y = backend.to_host(data["y_train"])
    keep = np.flatnonzero(~np.isin(y, absent))
    if keep.size == 0:
        raise UserError("the transfer set would hold no images: keep at least one class")
    idx = backend.asarray(keep)
    data = dict(data, x_train=data["x_train"][idx], y_train=data["y_train"][idx])
    return data, teacher.restrict(idx)
