"""Settings declared once (nnkd.settings): checks, flags, help and --resume derive from the
declaration; schedules are objects that know their own properties; the warm-up."""

import json
import math
from dataclasses import fields

import pytest

from nnkd import memory
from nnkd.checks import SettingError
from nnkd.errors import UserError
from nnkd.cli.parser import DISTILL_OVERRIDES, OVERRIDES, RESUMABLE, build_parser, flag_of
from nnkd.config import RunSpec, TrainConfig
from nnkd.optim import OPTIMIZERS
from nnkd.schedules import SCHEDULES, Constant, Cosine, Exponential, Warmup, learning_rate, make_schedule
from nnkd.settings import OWNERS, declared, help_text

from .test_train import small_cfg, synthetic


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
    assert flag_of("student.warmup_epochs", "distill") == "--warmup-epochs"
    assert flag_of("teacher.warmup_epochs", "distill") == "--teacher-warmup-epochs"
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
    with pytest.raises(SettingError, match=r"`teacher.warmup_epochs` must be a whole number from 0"):
        TrainConfig(warmup_epochs=-1).validate(prefix="teacher.")
    with pytest.raises(SettingError, match="`lr_schedule` is 'step': expected one of exp, cosine, constant"):
        TrainConfig(lr_schedule="step").validate()


# ---- schedules -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, cls, depends", [("exp", Exponential, False), ("cosine", Cosine, True),
                                                ("constant", Constant, False)])
def test_schedules_know_whether_they_depend_on_the_runs_length(name, cls, depends):
    schedule = make_schedule(TrainConfig(lr_schedule=name))
    assert type(schedule) is cls and schedule.depends_on_length is depends
    warm = make_schedule(TrainConfig(lr_schedule=name, warmup_epochs=3))
    assert isinstance(warm, Warmup) and warm.depends_on_length is depends


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_no_warmup_is_the_schedule_exactly(name):
    cfg = TrainConfig(lr=0.07, lr_schedule=name, lr_decay=0.99, epochs=9)
    expected = {"exp": lambda e: 0.07 * 0.99 ** e, "constant": lambda e: 0.07,
                "cosine": lambda e: 0.07 * 0.5 * (1.0 + math.cos(math.pi * e / 9))}[name]
    assert [make_schedule(cfg).rate(e) for e in range(9)] == [expected(e) for e in range(9)]  # exactly


def test_warmup_rises_linearly_then_follows_the_schedule():
    assert [learning_rate(e, 2.0, "constant", warmup_epochs=3) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    cosine = [learning_rate(e, 1.0, "cosine", epochs=10) for e in range(10)]
    warm = [learning_rate(e, 1.0, "cosine", epochs=10, warmup_epochs=4) for e in range(10)]
    assert warm[:4] == pytest.approx([cosine[e] * (e + 1) / 5 for e in range(4)], rel=1e-15)
    assert warm[4:] == cosine[4:]
    assert learning_rate(3, 1.0, "exp", decay=0.5, warmup_epochs=1) == 0.125


def test_training_uses_the_warmup(tmp_path):
    from nnkd.backend import get_backend
    from nnkd.train import train
    be = get_backend()
    cfg = small_cfg(jitter=0, lr_schedule="constant", lr=0.1, warmup_epochs=2, epochs=4)
    train(cfg, be, synthetic(be), tmp_path / "s", log=lambda s: None)
    rows = [json.loads(l) for l in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1, 0.1], rel=1e-15)


def test_a_warmed_up_constant_run_may_be_lengthened_on_resume(tmp_path):
    """--resume lengthens a run unless its schedule depends on the run's length, warm-up or not."""
    from nnkd.backend import get_backend
    from nnkd.train import train
    be = get_backend()
    cfg = small_cfg(jitter=0, lr_schedule="constant", warmup_epochs=1, epochs=2)
    train(cfg, be, synthetic(be), tmp_path / "s", log=lambda s: None)
    _, summary = train(small_cfg(jitter=0, lr_schedule="constant", warmup_epochs=1, epochs=3), be,
                       synthetic(be), tmp_path / "s", log=lambda s: None)
    assert summary["epochs"] == 3
    train(small_cfg(jitter=0, lr_schedule="cosine", warmup_epochs=1, epochs=2), be, synthetic(be),
          tmp_path / "c", log=lambda s: None)
    with pytest.raises(UserError, match="another configuration"):
        train(small_cfg(jitter=0, lr_schedule="cosine", warmup_epochs=1, epochs=3), be, synthetic(be),
              tmp_path / "c", log=lambda s: None)
