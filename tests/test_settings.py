"""Settings declared once (nnkd.settings): checks, flags, help and --resume derive from the
declaration; schedules are objects that know their own properties."""

from dataclasses import fields

import pytest

from nnkd import memory
from nnkd.checks import SettingError
from nnkd.cli.parser import DISTILL_OVERRIDES, OVERRIDES, RESUMABLE, build_parser, flag_of
from nnkd.config import RunSpec, TrainConfig
from nnkd.optim import OPTIMIZERS, SCHEDULES, Constant, Cosine, Exponential, make_schedule
from nnkd.settings import OWNERS, declared, help_text


def test_every_field_is_declared_with_an_owner_and_help():
    names = [f.name for f in fields(TrainConfig)]
    assert [n for n, _ in declared(TrainConfig)] == names
    for name, s in declared(TrainConfig):
        assert s.owner in OWNERS and s.help, name


def test_the_flags_come_from_the_declaration():
    flags = {f.field: f.flag for f in OVERRIDES + DISTILL_OVERRIDES}
    assert flags["lr_schedule"] == "--lr-schedule" and flags["max_norm_squared"] == "--max-norm-on"
    assert "seed" not in flags  # --seed is a flag of its own, for every model of the command
    assert {f.field for f in DISTILL_OVERRIDES} == {"temperature", "soft_weight", "hard_weight", "transfer_jitter"}
    assert RESUMABLE == ["epochs"]
    assert flag_of("student.lr_decay", "distill") == "--lr-decay"
    assert flag_of("teacher.lr_decay", "distill") == "--teacher-lr-decay"
    assert flag_of("teacher.temperature", "distill") is None  # a teacher has no temperature flag
    assert flag_of("student.lr", "train-teacher") is None and flag_of("teacher.lr", "train-teacher") == "--lr"


def test_the_help_of_a_choice_lists_what_its_registry_holds():
    """A schedule or an optimizer added to its registry appears in --help with its own words."""
    s = dict(declared(TrainConfig))
    for field, registry in (("lr_schedule", SCHEDULES), ("optimizer", OPTIMIZERS)):
        text = help_text(s[field])
        for name, cls in registry.items():
            assert f"{name} ({cls.help})" in text
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["distill"]
    titles = [g.title for g in sub._action_groups]
    assert "students: the optimizer and its schedules" in titles
    assert "teacher (with --retrain-teacher): the network and its data" in titles


def test_validate_reads_no_machine_state(monkeypatch):
    """A saved config is valid or not whatever the machine; its memory is checked where a run starts."""
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)
    cfg = TrainConfig()
    cfg.validate()
    spec = RunSpec(command="train-student", student=cfg)
    spec.validate(n_available=60000)
    with pytest.raises(SettingError, match="needs about .* of memory"):
        cfg.check_memory()
    with pytest.raises(SettingError, match="`student.arch` needs about"):
        spec.check_memory(60000)


def test_a_rule_names_the_field():
    with pytest.raises(SettingError, match=r"`teacher.momentum_epochs` must be a whole number from 0"):
        TrainConfig(momentum_epochs=-1).validate(prefix="teacher.")
    with pytest.raises(SettingError, match="`lr_schedule` is 'step': expected one of exp, cosine, constant"):
        TrainConfig(lr_schedule="step").validate()


# ---- schedules -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls, depends", [("exp", Exponential, False), ("cosine", Cosine, True),
                                                ("constant", Constant, False)])
def test_schedules_know_whether_they_depend_on_the_runs_length(name, cls, depends):
    schedule = make_schedule(TrainConfig(lr_schedule=name))
    assert type(schedule) is cls and schedule.depends_on_length is depends
