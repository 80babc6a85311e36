"""Learning-rate schedules, each a class that knows its own properties, and the momentum ramp.

A schedule is named once in :data:`SCHEDULES`; adding one is a class and a line there.
"""

import math
from types import SimpleNamespace


class Schedule:
    """A learning-rate schedule: :meth:`rate` of a 0-based epoch.  ``depends_on_length``: its
    rates are laid out over the run's ``epochs``, so a longer run is another run (``--resume``
    may not lengthen it); ``SETTINGS``: what its :meth:`from_settings` reads beside ``lr``
    and ``epochs``."""

    depends_on_length = False
    SETTINGS = ()
    help = ""

    def __init__(self, lr0, epochs=None, **kw):
        self.lr0, self.epochs = lr0, epochs

    @classmethod
    def from_settings(cls, settings):
        return cls(settings.lr, settings.epochs, **{f: getattr(settings, f) for f in cls.SETTINGS})

    def rate(self, epoch):
        raise NotImplementedError


class Exponential(Schedule):
    """``lr0 * decay**epoch`` (the paper's, decay 0.998)."""

    SETTINGS = ("lr_decay",)
    help = "lr0 * f^epoch, f the lr decay"

    def __init__(self, lr0, epochs=None, lr_decay=0.998):
        super().__init__(lr0, epochs)
        self.decay = lr_decay

    def rate(self, epoch):
        return self.lr0 * self.decay ** epoch


class Cosine(Schedule):
    """``lr0 * (1 + cos(pi * epoch / epochs)) / 2``: from lr0 to near 0 over the run."""

    depends_on_length = True
    help = "from lr0 to near 0 over the run"

    def rate(self, epoch):
        return self.lr0 * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))


class Constant(Schedule):
    """lr0 throughout."""

    help = "lr0 throughout"

    def rate(self, epoch):
        return self.lr0


class Warmup(Schedule):
    """Any schedule with a linear warm-up: for the first ``warmup_epochs`` epochs its rate times
    ``(epoch + 1) / (warmup_epochs + 1)``, then its rate as it is.  The schedule keeps its own
    clock (a cosine still ends at its run's last epoch)."""

    def __init__(self, schedule, warmup_epochs):
        self.schedule, self.warmup_epochs = schedule, warmup_epochs
        self.depends_on_length = schedule.depends_on_length

    def rate(self, epoch):
        rate = self.schedule.rate(epoch)
        if epoch < self.warmup_epochs:
            return rate * (epoch + 1) / (self.warmup_epochs + 1)
        return rate


# The schedules by the name that settings use (TrainConfig.lr_schedule).
SCHEDULES = {"exp": Exponential, "cosine": Cosine, "constant": Constant}


def make_schedule(settings):
    """The schedule that ``settings`` name (any object with ``lr_schedule``, ``lr``, ``epochs``,
    ``warmup_epochs`` and the fields its class reads, e.g. a :class:`~nnkd.config.TrainConfig`),
    with its warm-up if ``warmup_epochs`` is above 0."""
    if settings.lr_schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {settings.lr_schedule!r}")
    schedule = SCHEDULES[settings.lr_schedule].from_settings(settings)
    return Warmup(schedule, settings.warmup_epochs) if settings.warmup_epochs > 0 else schedule


def learning_rate(epoch, lr0, schedule="exp", decay=0.998, epochs=None, warmup_epochs=0):
    """Learning rate for a 0-based ``epoch`` of the schedule called ``schedule``."""
    settings = SimpleNamespace(lr_schedule=schedule, lr=lr0, lr_decay=decay, epochs=epochs,
                               warmup_epochs=warmup_epochs)
    return make_schedule(settings).rate(epoch)


def momentum_at(epoch, start=0.5, end=0.99, ramp_epochs=500):
    """Momentum rising linearly from ``start`` (epoch 0) to ``end`` (epoch ``ramp_epochs``),
    then constant.  ``ramp_epochs=0`` gives ``end`` throughout."""
    if ramp_epochs <= 0 or epoch >= ramp_epochs:
        return end
    return start + (end - start) * epoch / ramp_epochs

