"""Each setting of a model declared once, as a dataclass field with a :class:`Setting`.

A :class:`Setting` says what a value may be (a number in a range, a whole number, one of a few
words, true or false), who owns it (``model``: every model; ``optimizer``: how the weights
move; ``student``: a student learning from a teacher), its help text and its flag, and whether
``--resume`` may change it.  From that one declaration come the checks of a value
(:func:`check`), the command line's flags and help (:mod:`nnkd.cli.parser`) and the flag named
in an error message.  A value is checked against the declaration alone: no check here reads the
machine (its memory is checked where a run starts, :func:`nnkd.config.check_run_memory`).

Declare a field with :func:`setting`::

    lr: float = setting(0.1, "optimizer", "initial learning rate lr0", number(0, lo_open=True))
"""

import math
from dataclasses import dataclass, field, fields

from .checks import MAX_EPOCHS, SettingError, choice, flag, float32, number as check_number, whole as check_whole

OWNERS = ("model", "optimizer", "student")
GROUP_TITLES = {"model": "the network and its data", "optimizer": "the optimizer and its schedules",
                "student": "distillation (the student learning from the teacher)"}


@dataclass(frozen=True)
class Rule:
    """What a value may be.  ``kind``: ``number`` (in ``[lo, hi]``, either end open;
    ``in_float32``: also finite and not zero in float32), ``whole`` (a whole number in
    ``[lo, hi]``), ``choice`` (a key of ``choices``, a dict of value -> what it means), ``flag``
    (true or false, written on the command line as one of ``words``: ``{word: value}``),
    ``pixels`` (a whole number of pixels below the image's side) or ``text``."""

    kind: str
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    in_float32: bool = False
    choices: dict = field(default_factory=dict)
    words: dict = field(default_factory=dict)
    hint: str = ""


def number(lo=-math.inf, hi=math.inf, lo_open=False, hi_open=False, in_float32=False, hint=""):
    return Rule("number", lo, hi, lo_open, hi_open, in_float32, hint=hint)


def whole(lo=0, hi=MAX_EPOCHS):
    return Rule("whole", lo, hi)


def one_of(choices):
    """One of ``choices``: a dict of value -> what it means (or a sequence of values)."""
    return Rule("choice", choices=dict(choices) if isinstance(choices, dict) else dict.fromkeys(choices, ""))


def true_or_false(words):
    return Rule("flag", words=dict(words))


PIXELS = Rule("pixels")
TEXT = Rule("text")


@dataclass(frozen=True)
class Setting:
    """One field's declaration: its owner (one of :data:`OWNERS`), help text, :class:`Rule`,
    flag (None: the default ``--field-name``; ``""``: no flag of its own), whether ``--resume``
    may change it (``resumable``), and the value above which it trains badly (``warn_above``,
    with ``warning``, the end of that warning's line)."""

    owner: str
    help: str
    rule: Rule
    flag: str | None = None
    resumable: bool = False
    warn_above: float | None = None
    warning: str = ""


def setting(default, owner, help, rule, **kw):
    """A dataclass field holding ``default``, declared by a :class:`Setting`."""
    assert owner in OWNERS, owner
    return field(default=default, metadata={"setting": Setting(owner, help, rule, **kw)})


def declared(cls):
    """``[(field name, Setting)]`` of a dataclass, in the order of its fields."""
    return [(f.name, f.metadata["setting"]) for f in fields(cls) if "setting" in f.metadata]


def flag_name(name, s):
    """The flag of field ``name`` declared by ``s`` (``--lr-schedule``), or None."""
    if s.flag == "":
        return None
    return s.flag or "--" + name.replace("_", "-")


def help_text(s):
    """The flag's help: its text, then the values it takes and what each means."""
    rule = s.rule
    if rule.kind == "choice":
        meanings = [f"{v} ({m})" if m else v for v, m in rule.choices.items()]
        return f"{s.help}: {', '.join(meanings[:-1])} or {meanings[-1]}" if len(meanings) > 1 else s.help
    if rule.kind == "flag":
        return f"{s.help}: {' or '.join(rule.words)}"
    return s.help


def check(name, value, s, image_side=None):
    """Raise :class:`~nnkd.checks.SettingError` naming ``name`` if ``value`` breaks ``s``'s rule.
    ``image_side``: the images' shorter side, the bound of a ``pixels`` rule (None: the data has
    no image shape, and the value must be 0)."""
    rule = s.rule
    if rule.kind == "number":
        check_number(name, value, rule.lo, rule.hi, rule.lo_open, rule.hi_open, hint=rule.hint)
        if rule.in_float32:
            float32(name, value)
    elif rule.kind == "whole":
        check_whole(name, value, rule.lo, rule.hi)
    elif rule.kind == "choice":
        choice(name, value, tuple(rule.choices))
    elif rule.kind == "flag":
        flag(name, value)
    elif rule.kind == "pixels":
        if not image_side and value != 0:
            raise SettingError(name, "must be 0: jitter shifts images, and this dataset has no "
                               "image shape (give image_shape in the .npz)")
        check_whole(name, value, 0, max((image_side or 1) - 1, 0),
                    what="whole number of pixels below the image size")
