"""A training step allocates no temporary arrays once its buffers exist: after a warm-up step,
tracemalloc's peak during a step stays far below the size of any activation or weight (what
is left is NumPy's fixed-size iteration buffers, the 10-column loss's few rows, and, with
dropout, the generator's raw draws behind the masks)."""

import tracemalloc

import numpy as np
import pytest

from nnkd.backend import get_backend
from nnkd.network import Network
from nnkd.parallel import cpu_workers
from nnkd.presets import preset
from nnkd.train import Step
from nnkd.transfer import TeacherLogits

BATCH = 400  # large enough that a temporary batch x width array (1.2 MB and up) stands out


def step_allocations(role, soft, mode, numba, monkeypatch):
    """``(peak, kept)`` bytes that tracemalloc saw allocated during the second step."""
    monkeypatch.setenv("NNKD_NUMBA", numba)
    be = get_backend("numpy")
    cfg = preset("fast")[0][role]
    rng = np.random.default_rng(0)
    X = rng.random((2 * BATCH, 784), dtype=np.float32)
    Y = rng.integers(0, 10, 2 * BATCH)
    targets = TeacherLogits(rng.standard_normal((25, 2 * BATCH, 10), dtype=np.float32), 2) if soft else None
    with cpu_workers(be, 2, mode) as workers:
        net = Network.from_settings(cfg, be)
        step = Step(cfg, net, workers=workers)
        net.set_rng(be.rng(0))
        host = np.random.default_rng(1)
        step(X, Y, np.arange(BATCH), 0.01, 0.9, host, targets)  # warm-up: buffers made, kernels compiled
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            step(X, Y, np.arange(BATCH, 2 * BATCH), 0.01, 0.9, host, targets)
            now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return peak - before, now - before


@pytest.mark.parametrize("numba", ["0", "1"])
@pytest.mark.parametrize("mode", ["split", "whole"])
@pytest.mark.parametrize("soft", [False, True])
def test_a_student_step_allocates_no_temporaries(monkeypatch, mode, soft, numba):
    peak, kept = step_allocations("student", soft, mode, numba, monkeypatch)
    activation = BATCH * 800 * 4
    assert peak < activation / 6 and kept < 4096


@pytest.mark.parametrize("mode", ["split", "whole"])
def test_a_teacher_step_allocates_only_the_dropout_draws(monkeypatch, mode):
    peak, kept = step_allocations("teacher", False, mode, "0", monkeypatch)
    draws = BATCH * 1200 * 2  # 16 bits per unit of the widest mask, as nnkd.backend draws them
    assert peak < draws + BATCH * 1200 * 4 / 6 and kept < 4096
