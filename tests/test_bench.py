"""benchmarks/bench_train.py and benchmarks/torch_peers.py on tiny settings, so that they
keep running as nnkd changes (a few seconds; the PyTorch parts skip without torch)."""

import importlib.util
from dataclasses import replace

import numpy as np
import pytest

from nnkd.backend import get_backend
from tests.conftest import ROOT


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load("bench_train")


def test_step_flops():
    # 784-800-800-10: forward 2*(784*800 + 800*800 + 800*10), twice, plus the input gradients
    # of the two upper layers.
    fwd = 2 * (784 * 800 + 800 * 800 + 800 * 10)
    assert bench.step_flops([784, 800, 800, 10]) == 2 * fwd + 2 * (800 * 800 + 800 * 10)


def test_configs_name_every_model():
    cfgs = bench.configs()
    assert {"teacher", "student", "distill", "paper-teacher"} <= set(cfgs)
    assert cfgs["distill"][1] and not cfgs["student"][1]


@pytest.mark.parametrize("role", ["teacher", "distill"])
def test_nnkd_step_bench(role):
    cfg, soft = bench.configs()[role]
    ex = bench.bench_nnkd(get_backend("numpy"), replace(cfg, batch_size=32), soft, 32, 0.05)
    assert ex > 0


def test_teacher_logits_are_laid_out_like_the_pipelines():
    cfg, _ = bench.configs()["distill"]
    s = cfg.transfer_jitter
    t = bench.random_teacher_logits(get_backend("numpy"), cfg, 50)
    assert t.logits.shape == ((2 * s + 1) ** 2, 50, 10) and t.logits.dtype == np.float32


@pytest.mark.parametrize("role", ["student", "distill"])
def test_measure_epoch_runs_the_training_loop(role):
    be = get_backend("numpy")
    cfg, soft = bench.configs()[role]
    cfg = replace(cfg, batch_size=100)
    data = bench.mnist_sized_data(be, n_train=300, n_test=100)
    targets = bench.random_teacher_logits(be, cfg, 300) if soft else None
    assert bench.measure_epoch(be, cfg, data, targets) > 0


@pytest.mark.parametrize("kind", ["peer", "plain"])
@pytest.mark.parametrize("role", ["teacher", "distill"])
def test_torch_steps(kind, role):
    pytest.importorskip("torch")
    cfg, soft = bench.configs()[role]
    assert bench.bench_torch(kind, "cpu", replace(cfg, batch_size=32), soft, 32, 0.05) > 0


def test_peer_jitter_moves_images():
    pytest.importorskip("torch")
    cfg, _ = bench.configs()["distill"]
    x, y, t = bench.torch_peers._peer_batches(cfg, True, 64, "cpu")()
    assert x.shape == (64, 784) and y.shape == (64,) and t.shape == (64, 10)
    # Random images in [0, 1) have no zero border; a shifted one has a zero row or column
    # (24 of the 25 shifts).
    img = x.view(64, 28, 28)
    edges = [img[:, 0, :], img[:, -1, :], img[:, :, 0], img[:, :, -1]]
    shifted = sum(int(any(bool((e[i] == 0).all()) for e in edges)) for i in range(64))
    assert shifted >= 40


def test_a_failing_compile_leaves_the_column_empty(monkeypatch):
    torch = pytest.importorskip("torch")

    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here\nsecond line")

    monkeypatch.setattr(torch, "compile", broken)
    cfg, soft = bench.configs()["student"]
    ex, why = bench.bench_compiled("cpu", replace(cfg, batch_size=32), soft, 32, 0.05)
    assert ex is None and why == "RuntimeError: no compiler here"


def test_the_compiled_column_stops_at_its_budget_and_at_a_failure(monkeypatch):
    calls = []

    def fake(device, cfg, soft, batch, seconds):
        calls.append(batch)
        return (None, "RuntimeError: boom") if batch == 99 else (1000.0, 50.0)

    monkeypatch.setattr(bench, "bench_compiled", fake)
    cfg, soft = bench.configs()["student"]
    compiler = bench.Compiler(budget=60)
    got = [compiler.cell("cuda", "student", cfg, soft, b, 0.1) for b in (1, 2, 3)]
    assert got == [1000.0, 1000.0, None] and calls == [1, 2] and "budget" in compiler.off
    compiler = bench.Compiler(budget=60)
    got = [compiler.cell("cuda", "student", cfg, soft, b, 0.1) for b in (99, 1)]
    assert got == [None, None] and calls == [1, 2, 99] and "boom" in compiler.off


def test_step_table_rows_have_every_column(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(bench, "gemm_ceiling", lambda xp, sync: 1e11)
    monkeypatch.setattr(bench, "bench_compiled", lambda *a: (1000.0, 1.0))
    be = get_backend("numpy")
    for device, compiler, columns in ((None, None, 5), ("cpu", None, 9), ("cpu", bench.Compiler(60), 11)):
        lines = bench.step_table(be, bench.configs(), ["distill"], [32], 0.05, device, compiler)
        head, row = [line for line in lines if line.startswith("| ")]
        assert head.count("|") == row.count("|") == columns + 1
        assert row.startswith("| distill | 32 |")


def test_step_parts_runs_every_variant_once_and_judges_the_targets(monkeypatch):
    parts = _load("bench_step_parts")
    monkeypatch.setattr(parts, "torch_peers", None)
    monkeypatch.setenv(parts.cpu_kernels.ENV, "1")  # time_variant sets it: put it back afterwards
    be, specs = parts.variants(["distillation"], 2, None)
    times = {}
    for name, spec in specs.items():
        times[name] = [parts.time_variant(be, name, spec, 2, None, 0.001)]
    assert {n.split()[1] for n in specs} == {"step", "update", "products"}
    monkeypatch.setattr(parts.stepmode, "known_mode", lambda threads: "split")
    extra = "numba" if parts.cpu_kernels._INSTALLED else "numpy"
    times.update({f"distillation step split {extra}": [2.0], "distillation products split openblas": [1.6],
                  f"distillation update split {extra}": [0.2]})
    [head, _, line] = parts.targets(["distillation"], times, specs, 2)
    assert "split, this machine's calibration" in head
    assert "1.25x its products alone" in line and "not met" in line and "1.12x the products" in line
    times[f"distillation step split {extra}"] = [1.8]
    assert "1.12x its products alone" in parts.targets(["distillation"], times, specs, 2)[2]
    assert "target at most 1.15: met" in parts.targets(["distillation"], times, specs, 2)[2]


def test_step_ab_times_both_trees_in_every_round(capsys, monkeypatch):
    ab = _load("step_ab")
    trees = [str(ROOT), str(ROOT / "tests" / "..")]  # one tree under two names
    monkeypatch.setattr("sys.argv", ["step_ab.py", *trees, "--rounds", "1", "--steps", "2"])
    ab.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| student") or
            line.startswith("| teacher")]
    assert len(rows) == 4 and all(float(cell) > 0 for row in rows for cell in row.split("|")[2:4])
