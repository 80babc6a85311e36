"""Checks of one setting's value.  Each raises :class:`SettingError`, whose message names
the setting by its field in backticks (```student.lr` must be positive``); the command line
turns such names into its flags (``--lr``), see :mod:`nnkd.errors`."""

import math
import numbers

import numpy as np

from . import memory
from .errors import UserError

MAX_EPOCHS = 1_000_000


class SettingError(UserError):
    """A setting that cannot train; ``field`` is its name (``student.lr``, ``validation``)."""

    def __init__(self, field_name, problem):
        self.field, self.problem = field_name, problem
        super().__init__(f"`{field_name}` {problem}")


def number(name, v, lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False, hint=""):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise SettingError(name, f"must be a number, got {v!r}")
    if not math.isfinite(v):
        raise SettingError(name, f"must be a finite number, got {v}")
    if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
        lo_s = "(" if lo_open else "["
        hi_s = ")" if hi_open else "]"
        if lo == 0 and lo_open and hi == math.inf:
            raise SettingError(name, f"must be positive, got {v}{hint}")
        if lo == 0 and hi == math.inf:
            raise SettingError(name, f"must not be negative, got {v}{hint}")
        raise SettingError(name, f"is outside {lo_s}{lo:g}, {hi:g}{hi_s}: got {v}{hint}")
    _open_bound_in_float32(name, v, lo if lo_open else None, hi if hi_open else None)


def _open_bound_in_float32(name, v, lo, hi):
    """Training computes in float32: a value inside an open bound that rounds onto it there
    (Adam's beta2 0.999999999 is 1 in float32) is refused, with the nearest value it may take."""
    f = np.float32(v)
    for bound, side in ((lo, "above"), (hi, "below")):
        if bound is None or not math.isfinite(bound) or f != np.float32(bound):
            continue
        if bound == 0:
            raise SettingError(name, f"{v:g} is zero in float32, in which training computes: give a larger value")
        if side == "above":
            nearest = np.nextafter(np.float32(bound), np.float32(np.inf))
        else:
            nearest = np.nextafter(np.float32(bound), np.float32(-np.inf))
        raise SettingError(name, f"{v!r} is {bound:g} in float32, in which training computes: give a value "
                           f"{side} {bound:g} in float32 ({'at least' if side == 'above' else 'at most'} "
                           f"{float(nearest):.9g})")


def whole(name, v, lo=0, hi=MAX_EPOCHS, what="whole number"):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise SettingError(name, f"must be a {what}, got {v!r}")
    if v < lo or v > hi:
        raise SettingError(name, f"must be a {'positive ' if lo == 1 else ''}{what} from {lo} to {hi:,}, "
                                 f"got {v}")


def choice(name, v, choices):
    if v not in choices:
        raise SettingError(name, f"is {v!r}: expected one of {', '.join(choices)}")


def flag(name, v):
    if not isinstance(v, bool):
        raise SettingError(name, f"must be true or false, got {v!r}")


def float32(name, v):
    """A number that training uses in float32 must stay finite there, and a positive one
    must not round to zero."""
    f = np.float32(v) if abs(v) < 3.4e38 else np.float32(np.inf)
    if not np.isfinite(f):
        raise SettingError(name, f"{v:g} is too large for float32, in which training computes")
    if v != 0 and f == 0:
        raise SettingError(name, f"{v:g} is zero in float32, in which training computes: give a "
                           "larger value")


def check_memory(name, need, what):
    """Refuse ``need`` bytes when the machine clearly has less available."""
    problem = memory.shortfall(need, what)
    if problem:
        raise SettingError(name, problem)
