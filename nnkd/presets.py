"""Named sets of training settings: ``paper``, ``fast`` (the default) and ``smoke``.

Each preset gives a :class:`~nnkd.train.TrainConfig` for the teacher and one
for the student.  The baseline student and the distilled student use the
*same* student settings (optimizer, schedule, epochs, seed); only the loss
differs, so the gap between them is distillation's doing.
"""

from dataclasses import replace

from .errors import UserError
from .config import TrainConfig

TEACHER_ARCH = "784-1200-1200-10"
STUDENT_ARCH = "784-800-800-10"

# Appendix A.1 of Srivastava/Hinton 2012 as RECIPE.md reads it, and section 3 of Hinton 2015.
_PAPER = dict(epochs=3000, batch_size=100, lr=10.0, lr_schedule="exp", lr_decay=0.998,
              momentum_start=0.5, momentum_end=0.99, momentum_epochs=500, momentum_form="paper",
              init_std=0.01)

PRESETS = {
    "paper": {
        "teacher": TrainConfig(arch=TEACHER_ARCH, dropout_input=0.2, dropout_hidden=0.5, jitter=2,
                               max_norm=15.0, max_norm_squared=True, **_PAPER),
        # The student is unregularized; a max-norm-free paper schedule with the same lr0.
        "student": TrainConfig(arch=STUDENT_ARCH, temperature=20.0, soft_weight=1.0, hard_weight=0.0,
                               **dict(_PAPER, lr=1.0)),
    },
    "fast": {
        "teacher": TrainConfig(arch=TEACHER_ARCH, dropout_input=0.2, dropout_hidden=0.5, jitter=2,
                               max_norm=15.0, max_norm_squared=True, epochs=125, batch_size=100,
                               lr=0.05, lr_schedule="cosine", momentum_start=0.9, momentum_end=0.9,
                               momentum_form="classic", eval_every=5),
        # The distilled student sees the transfer set jittered like the teacher's training set,
        # with the teacher's logits computed once for every shift of every image.
        "student": TrainConfig(arch=STUDENT_ARCH, epochs=60, batch_size=100, lr=0.035,
                               lr_schedule="cosine", momentum_start=0.9, momentum_end=0.9,
                               momentum_form="classic", temperature=20.0, soft_weight=1.0,
                               hard_weight=0.1, transfer_jitter=2),
    },
    # Seconds: a 5,000-image training set, where the dropout/jitter teacher generalizes
    # much better than a plain student, so distillation shows a clear gain.
    "smoke": {
        "teacher": TrainConfig(arch="784-256-256-10", dropout_input=0.2, dropout_hidden=0.5, jitter=2,
                               max_norm=15.0, epochs=20, batch_size=100, lr=0.1, lr_schedule="cosine",
                               init_std=0.05),
        "student": TrainConfig(arch="784-64-64-10", epochs=20, batch_size=100, lr=0.05,
                               lr_schedule="cosine", init_std=0.05, temperature=8.0,
                               soft_weight=1.0, hard_weight=0.1),
        "train_limit": 5000,
    },
}


def preset(name):
    """``({"teacher": TrainConfig, "student": TrainConfig}, train_limit)`` for a preset name
    (fresh copies); ``train_limit`` is the number of training images used (None: all)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
    p = PRESETS[name]
    return {role: replace(p[role]) for role in ("teacher", "student")}, p.get("train_limit")
