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
from .batches import n_shifts, shift_into, shifts
from .errors import Interrupted, UserError
from .files import atomic_write, read_array


class TeacherLogits:
    """The teacher's logits on the transfer set.

    Args:
        logits: ``(N, C)`` or ``(shifts, N, C)`` float array (NumPy or CuPy).
        max_shift: the transfer set's jitter in pixels; ``shifts`` must be
            :func:`nnkd.batches.n_shifts` of it.

    Raises :class:`UserError` for any other layout (:func:`check_layout`), or values that
    are not finite or look like probabilities.
    """

    def __init__(self, logits, max_shift=0):
        xp = array_module(logits)
        if not hasattr(logits, "ndim"):
            raise UserError(f"teacher logits must be a float array (N, classes) or (shifts, N, classes), "
                            f"got {_describe(logits)}")
        check_layout(logits.shape, logits.dtype, max_shift)
        if logits.ndim == 2:
            logits = logits[None]
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
        check_layout(self.logits.shape, self.logits.dtype, self.max_shift, n_images, n_classes)

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
    return (n_shifts(max_shift), n_images, n_classes) if max_shift else (n_images, n_classes)


def check_layout(shape, dtype, max_shift, n_images=None, n_classes=None, where="the array of teacher logits"):
    """The contract of teacher logits, checked in this one place: floats, ``(N, C)`` or
    ``(shifts, N, C)``, :func:`~nnkd.batches.n_shifts` shifts for a jitter of ``max_shift`` px,
    and, where they are given, ``n_images`` training images of ``n_classes`` classes.  ``where``
    names them in the one-line :class:`UserError` (a file, or the teacher's logits)."""
    want = list(file_shape(n_images if n_images is not None else "N",
                           n_classes if n_classes is not None else "classes", max_shift))
    if dtype.kind != "f":
        raise UserError(f"{where} holds {dtype} values: teacher logits are floats")
    if len(shape) not in (2, 3):
        raise UserError(f"{where} holds an array of shape {list(shape)}: teacher logits are {want}")
    got, need = (shape[0] if len(shape) == 3 else 1), n_shifts(max_shift)
    if got != need:
        what = "one" if need == 1 else f"{need}, in the order of nnkd.batches.shifts({max_shift})"
        raise UserError(f"{where} holds logits for {got} shift(s) of each image (shape {list(shape)}), "
                        f"but `student.transfer_jitter` {max_shift} needs {what}: shape {want}")
    if n_images is not None and shape[-2] != n_images:
        raise UserError(f"{where} holds logits for {shape[-2]} images, but the transfer set has {n_images} "
                        "training images (after `train_limit` and `validation`)")
    if n_classes is not None and shape[-1] != n_classes:
        raise UserError(f"{where} holds logits for {shape[-1]} classes, but the data has {n_classes}")


def read(path, backend, n_images, n_classes, max_shift,
         advice="delete it and it will be written again"):
    """:class:`TeacherLogits` of the ``.npy`` file ``path`` (the run's cache, or logits computed
    elsewhere: any float dtype, taken as float32), checked against the transfer set from its
    header before any data is read; on ``backend``, or on the host when it is None."""
    def check(shape, dtype):
        check_layout(shape, dtype, max_shift, n_images, n_classes, where=str(path))

    a = read_array(path, "teacher logits", advice=advice, check_header=check)
    check(a.shape, a.dtype)
    z = a.astype(np.float32, copy=False)
    if not np.isfinite(z).all():
        raise UserError(f"{path} holds values beyond float32's range: teacher logits are float32")
    return TeacherLogits(z if backend is None else backend.asarray(z), max_shift)


def cached(path, make, backend, n_images, n_classes, max_shift, log=print):
    """The transfer set's logits from the cache ``path`` (``teacher_logits.npy``) when it exists;
    else ``make()``'s :class:`TeacherLogits`, written there whole (or not at all)."""
    path = Path(path)
    if path.exists():
        logits = read(path, backend, n_images, n_classes, max_shift)
        log(f"teacher logits: cached in {path}")
        return logits
    t0 = time.perf_counter()
    logits = make()
    logits.check_against(n_images, n_classes)
    atomic_write(path, lambda f: np.save(f, backend.to_host(logits.on_disk())))
    log(f"teacher logits: {n_shifts(max_shift)} x {n_images} images in {time.perf_counter() - t0:.1f} s "
        f"-> {path}")
    return logits


def run(predict, data, n_classes, backend, max_shift=0, log=print, stop=None, chunk=10000,
        progress_every=10.0):
    """:class:`TeacherLogits` of ``predict`` (backend images ``(n, F)`` -> logits ``(n, C)``) on
    ``data["x_train"]``, for every shift up to ``max_shift`` pixels, ``chunk`` images a call.

    ``stop`` (a :class:`nnkd.train.StopFlag`) is checked before each call, and a progress line
    is logged every ``progress_every`` seconds."""
    X = data["x_train"]
    n = X.shape[0]
    t0 = last = time.perf_counter()
    xp = backend.xp
    moves = shifts(max_shift)
    z = xp.empty((len(moves), n, n_classes), dtype=np.float32)
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
            z[k, i:i + chunk] = predict(images[i:i + chunk])
            if time.perf_counter() - last >= progress_every:
                last = time.perf_counter()
                done, total = k * n + min(i + chunk, n), len(moves) * n
                left = (last - t0) * (total - done) / done
                log(f"teacher logits: {done:,} of {total:,} images (shift {k + 1} of {len(moves)}), "
                    f"{last - t0:.0f} s, about {left:.0f} s left")
    return TeacherLogits(z, max_shift)  # checks that every value is finite


def compute(net, data, path, max_shift=0, log=print, stop=None, chunk=10000, progress_every=10.0):
    """The nnkd network ``net``'s logits on the transfer set (:func:`run`, 10,000 images a
    call: about 0.4 s for the paper teacher on 2 cores), cached in ``path`` (:func:`cached`)."""
    def make():
        return run(net.predict_logits, data, net.sizes[-1], net.backend, max_shift, log, stop, chunk,
                   progress_every)
    return cached(path, make, net.backend, data["x_train"].shape[0], net.sizes[-1], max_shift, log)


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
