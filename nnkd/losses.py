"""Softmax at a temperature, and the losses of distillation, all taking logits.

Every loss returns ``(loss, grad)``: ``loss`` is a 0-d array on the backend
(not a Python float, so that the GPU is not synchronized every step) and
``grad`` is the gradient with respect to the logits, in closed form, with the
logits' shape and dtype.

Averaging: every loss is a **mean over the batch** of a **sum over the
classes**.  There is no hidden average over classes (the mistake of
``KLDivLoss(reduction="mean")`` in some peers, which divides the soft term by
the number of classes, 10 on MNIST).

Temperature: ``softmax(z, T) = softmax(z / T)``.  The gradient of the soft
cross-entropy at temperature T scales as ``1/T`` in the logits' differences
and as ``1/T^2`` overall, which is why the distillation objective multiplies
the soft term by ``T^2`` (Hinton et al. 2015, section 2).
"""

import numpy as np

from .backend import array_module as _xp, fused


def log_softmax(z, T=1.0):
    """``log softmax(z / T)`` along the last axis, by a max-subtracted log-sum-exp.

    z: ``(batch, classes)`` logits.  Returns an array of the same shape.
    """
    xp = _xp(z)
    if xp is not np:  # three kernels: the max, the sum of exponentials, the result
        m = z.max(axis=-1, keepdims=True)
        inv_t = z.dtype.type(1.0 / T)
        return _shifted_minus_log(z, m, inv_t, _sum_exp_shifted(z, m, inv_t)[..., None])
    s = z / z.dtype.type(T) if T != 1.0 else z
    s = s - s.max(axis=-1, keepdims=True)
    return s - xp.log(xp.exp(s).sum(axis=-1, keepdims=True))


def softmax(z, T=1.0):
    """``softmax(z / T)`` along the last axis (rows sum to 1)."""
    xp = _xp(z)
    return xp.exp(log_softmax(z, T))


def cross_entropy(z, labels, smoothing=0.0):
    """Hard-label cross-entropy ``-mean_b log softmax(z)[b, y_b]``.

    z: ``(B, C)`` logits; labels: ``(B,)`` integer class indices.
    grad: ``(softmax(z) - onehot(y)) / B``.

    ``smoothing`` eps above 0: label smoothing, the cross-entropy with the targets
    :func:`smoothed_labels` ``(1 - eps) onehot(y) + eps / C`` (PyTorch's ``label_smoothing``);
    grad ``(softmax(z) - targets) / B``.
    """
    if smoothing:
        return soft_cross_entropy(z, smoothed_labels(labels, z.shape[1], smoothing, z.dtype))
    xp = _xp(z)
    B = z.shape[0]
    logp = log_softmax(z)
    if xp is not np:  # the gradient in one kernel, no scatter
        loss = -xp.take_along_axis(logp, labels[:, None], axis=1).mean()
        return loss, _softmax_minus_onehot(logp, labels[:, None], xp.arange(z.shape[1]), z.dtype.type(B))
    rows = xp.arange(B)
    loss = -logp[rows, labels].mean()
    grad = xp.exp(logp)
    grad[rows, labels] -= 1
    grad /= B
    return loss, grad


def smoothed_labels(labels, n_classes, smoothing, dtype):
    """``(1 - smoothing) onehot(labels) + smoothing / n_classes``: ``(B, n_classes)`` rows that
    sum to 1, in ``dtype``."""
    xp = _xp(labels)
    onehot = xp.arange(n_classes) == labels[:, None]
    return (onehot * dtype.type(1.0 - smoothing) + dtype.type(smoothing / n_classes)).astype(dtype, copy=False)


def soft_cross_entropy(z, targets, T=1.0):
    """Soft-target cross-entropy at temperature T:
    ``-mean_b sum_k p[b, k] log softmax(z / T)[b, k]``.

    z: ``(B, C)`` student logits; targets: ``(B, C)`` probabilities (rows sum
    to 1).
    grad: ``(softmax(z / T) - p) / (T * B)``.  (This differs from the KL
    divergence by the targets' entropy, a constant, so gradients agree.)
    """
    xp = _xp(z)
    B = z.shape[0]
    logq = log_softmax(z, T)
    if xp is not np:
        loss = -_sum_product(targets, logq) / B
        return loss, _softmax_minus_targets(logq, targets, z.dtype.type(T * B))
    loss = -(targets * logq).sum() / B
    grad = (xp.exp(logq) - targets) / z.dtype.type(T * B)
    return loss, grad


def entropy(p):
    """``-mean_b sum_k p log p`` of probability rows (0 log 0 = 0)."""
    xp = _xp(p)
    if xp is not np:
        return -_sum_p_log_p(p) / p.shape[0]
    return -(p * xp.log(xp.where(p > 0, p, 1))).sum() / p.shape[0]


def distillation_loss(z, labels, teacher_logits, T, soft_weight=1.0, hard_weight=0.0, report_kl=True,
                      label_smoothing=0.0):
    """The distillation objective of Hinton et al. (2015):

        L = soft_weight * T^2 * CE(softmax(t / T), softmax(z / T)) + hard_weight * CE(y, softmax(z))

    (the hard term with ``label_smoothing``, see :func:`cross_entropy`)

    with ``t`` the teacher's logits, softened here at the student's temperature
    (the one place the temperature meets the teacher), both cross-entropies
    averaged over the batch and summed over classes.

    Mapping to peers' ``alpha``:
      - torchdistill ``KDLoss``: ``alpha * CE_hard + (1 - alpha) * T^2 * KL``, so
        ``hard_weight = alpha``, ``soft_weight = 1 - alpha``;
      - haitongli/knowledge-distillation-pytorch: ``alpha * T^2 * KL + (1 - alpha) * CE_hard``,
        so ``soft_weight = alpha``, ``hard_weight = 1 - alpha`` (but its KL is also
        averaged over the 10 classes: multiply its alpha by 1/10 to compare).
    KL and soft CE differ by a constant (the targets' entropy), so their
    gradients are equal.  With ``report_kl`` (the default) the returned loss
    uses ``T^2 * KL`` for the soft term, which goes to 0 as the student matches
    the teacher (the soft CE at T = 20 stays near ``T^2 log 10`` ~ 920 and hides
    progress); the gradient is the same either way.

    z, teacher_logits: ``(B, C)``; labels: ``(B,)``.  Returns ``(loss, grad)`` with grad ``(B, C)``.
    """
    targets = softmax(teacher_logits, T)
    loss_s, grad = soft_cross_entropy(z, targets, T)
    if report_kl:
        loss_s = loss_s - entropy(targets)
    scale = z.dtype.type(soft_weight * T * T)
    loss = scale * loss_s
    grad *= scale
    if hard_weight:
        loss_h, grad_h = cross_entropy(z, labels, label_smoothing)
        w = z.dtype.type(hard_weight)
        loss = loss + w * loss_h
        grad += w * grad_h
    return loss, grad


class Objective:
    """What a training step minimizes, set up from a model's settings (any object with the
    fields in ``SETTINGS``, e.g. a :class:`~nnkd.config.TrainConfig`): called with the teacher's
    logits, :func:`distillation_loss`; without, the hard-label :func:`cross_entropy`; the hard
    term label-smoothed by ``label_smoothing`` either way."""

    SETTINGS = ("temperature", "soft_weight", "hard_weight", "label_smoothing")

    def __init__(self, temperature=1.0, soft_weight=1.0, hard_weight=0.0, label_smoothing=0.0):
        self.temperature, self.soft_weight, self.hard_weight = temperature, soft_weight, hard_weight
        self.label_smoothing = label_smoothing

    @classmethod
    def from_settings(cls, settings):
        return cls(**{f: getattr(settings, f) for f in cls.SETTINGS})

    def __call__(self, z, labels, teacher_logits=None):
        """z ``(B, C)``, labels ``(B,)``, teacher_logits ``(B, C)`` or None; ``(loss, grad)``."""
        if teacher_logits is None:
            return cross_entropy(z, labels, self.label_smoothing)
        return distillation_loss(z, labels, teacher_logits, self.temperature, self.soft_weight,
                                 self.hard_weight, label_smoothing=self.label_smoothing)


# The CuPy path's kernels (cupy.fuse): elementwise work, each ending in at most one reduction.

@fused
def _sum_exp_shifted(z, m, inv_t):
    """``sum(exp((z - m) / T))`` along the last axis."""
    xp = _xp(z)
    return xp.sum(xp.exp((z - m) * inv_t), axis=-1)


@fused
def _shifted_minus_log(z, m, inv_t, total):
    return (z - m) * inv_t - _xp(z).log(total)


@fused
def _softmax_minus_onehot(logp, labels, classes, B):
    p = _xp(logp).exp(logp)
    return _xp(logp).where(classes == labels, p - 1, p) / B


@fused
def _softmax_minus_targets(logq, targets, scale):
    return (_xp(logq).exp(logq) - targets) / scale


@fused
def _sum_product(a, b):
    return _xp(a).sum(a * b)


@fused
def _sum_p_log_p(p):
    xp = _xp(p)
    return xp.sum(p * xp.log(xp.where(p > 0, p, 1)))
