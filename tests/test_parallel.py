"""Column and row parts on several threads (nnkd.parallel): same results as whole operations."""

import threading

import numpy as np
import pytest

from nnkd import parallel
from nnkd.backend import get_backend
from nnkd.network import Network
from nnkd.parallel import SERIAL, Workers, cpu_workers
from nnkd.presets import preset
from nnkd.train import Step


@pytest.fixture
def blas_threads():
    """``(set_num_threads, get_num_threads)`` of NumPy's OpenBLAS; the count is restored after."""
    blas = parallel._openblas()
    if blas is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose threads can be set")
    before = blas[1]()
    yield blas
    blas[0](before)


@pytest.fixture
def workers():
    w = Workers(2)
    yield w
    w.close()


def test_parts_cover_the_range_once(workers):
    for n in (128, 130, 784, 1200, 10_000):
        parts = workers.parts(n)
        assert len(parts) == 2 and parts[0].start == 0 and parts[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
        assert parts[0].stop % 16 == 0  # cut on whole 64-byte lines of float32


def test_over_runs_every_part_on_two_threads(workers):
    seen = {}
    lock = threading.Lock()

    def record(part):
        with lock:
            seen[(part.start, part.stop)] = threading.get_ident()
    workers.over(record, 1200)
    assert sorted(seen) == [(0, 608), (608, 1200)]
    assert len(set(seen.values())) == 2
    seen.clear()
    workers.over(record, 100)           # too short to cut
    workers.over(record, 1200, cut=False)
    assert list(seen) == [(None, None)]


def test_an_exception_in_a_worker_reaches_the_caller(workers):
    def fail(part):
        if part.start:
            raise ValueError("in the second part")
    with pytest.raises(ValueError, match="second part"):
        workers.over(fail, 1200)
    workers.over(lambda part: None, 1200)  # still usable


def test_parts_see_the_callers_errstate(workers):
    x = np.full(2048, 1e38, dtype=np.float32)

    def overflow(part):
        x[part] * np.float32(10)
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            workers.over(overflow, 2048)


def test_closed_workers_run_operations_whole():
    w = Workers(2)
    w.close()
    parts = []
    w.over(parts.append, 1200)
    assert parts == [slice(None)]


def test_cpu_workers_sets_and_restores_blas_threads(blas_threads):
    set_threads, get_threads = blas_threads
    before = get_threads()
    with cpu_workers(get_backend("numpy"), n=2) as w:
        assert isinstance(w, Workers) and get_threads() == 1
    assert get_threads() == before and w.closed
    with cpu_workers(get_backend("numpy"), n=1) as w:
        assert w is SERIAL


@pytest.mark.parametrize("batch", [100, 1000])  # 1000: the elementwise passes are cut too
def test_network_gradients_by_parts_equal_whole_ones(workers, batch):
    be = get_backend("numpy")
    rng = np.random.default_rng(0)
    x = rng.random((batch, 300))
    g = rng.standard_normal((batch, 10))
    grads = []
    for w in (SERIAL, workers):
        net = Network([300, 400, 300, 10], be, seed=1, dropout_input=0.2, dropout_hidden=0.5,
                      dtype=np.float64)
        net.set_workers(w)
        net.set_rng(be.rng(3))
        z = net.forward(x.copy(), train=True)
        net.zero_grad()
        net.backward(g.copy())
        grads.append([z] + [p.grad.copy() for _, p in net.params])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _train_steps(workers, steps=30):
    be = get_backend("numpy")
    cfg = preset("fast")[0]["teacher"]
    cfg = cfg.__class__(**{**cfg.__dict__, "arch": "784-256-256-10"})
    rng = np.random.default_rng(0)
    X = rng.random((2000, 784), dtype=np.float32)
    Y = rng.integers(0, 10, 2000)
    net = Network.from_settings(cfg, be)
    step = Step(cfg, net, workers=workers)
    net.set_rng(be.rng(0))
    host = np.random.default_rng(1)
    for i in range(steps):
        step(X, Y, np.arange(i * 50, i * 50 + 100) % 2000, 0.05, 0.9, host)
    return [p.data.copy() for _, p in net.params] + [v.copy() for v in step.opt.velocity]


def test_training_by_parts_is_reproducible_and_matches_whole_steps():
    with cpu_workers(get_backend("numpy"), n=2) as w:
        first, again = _train_steps(w), _train_steps(w)
    whole = _train_steps(SERIAL)
    for a, b, c in zip(first, again, whole):
        assert np.array_equal(a, b)  # bit for bit with the same number of parts
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-5)  # float32 rounding of the products


def test_one_blas_thread_means_whole_operations(blas_threads):
    """OPENBLAS_NUM_THREADS=1 or a sweep worker's limit: runs side by side stay on one core each."""
    blas_threads[0](1)
    with cpu_workers(get_backend("numpy")) as w:
        assert w is SERIAL


def test_the_run_header_names_the_threads_and_mode_a_step_runs_in(blas_threads, monkeypatch):
    """The products' rounding depends on the thread count and the step mode, so each run's log
    records them."""
    from types import SimpleNamespace
    from nnkd.cli import _header
    from nnkd.config import RunSpec
    monkeypatch.setattr(parallel, "usable_cores", lambda: 2)
    args, spec = SimpleNamespace(command="train-student"), RunSpec(command="train-student")
    for n, mode, said in ((1, "split", "steps on 1 thread)"),
                          (2, "split", "steps on 2 threads in split mode, set by NNKD_STEP_MODE)"),
                          (2, "whole", "steps on 2 threads in whole mode, set by NNKD_STEP_MODE)")):
        monkeypatch.setenv("NNKD_STEP_MODE", mode)
        blas_threads[0](n)
        with cpu_workers(get_backend("numpy")) as w:
            assert w.n == n
        assert said in _header(args, spec, "runs/x", get_backend("numpy")).splitlines()[0]


def test_whole_mode_runs_the_products_on_openblas_threads(blas_threads):
    set_threads, get_threads = blas_threads
    set_threads(1)
    with cpu_workers(get_backend("numpy"), n=2, mode="whole") as w:
        assert w.mode == "whole" and w.n == 2 and get_threads() == 2
        parts = []
        w.over(parts.append, 1200)
        assert parts == [slice(None)]
    assert get_threads() == 1


def test_training_in_whole_mode_is_reproducible_and_matches_the_split():
    be = get_backend("numpy")
    with cpu_workers(be, n=2, mode="whole") as w:
        first, again = _train_steps(w), _train_steps(w)
    with cpu_workers(be, n=2, mode="split") as w:
        split = _train_steps(w)
    for a, b, c in zip(first, again, split):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("pinned, kernels, avx512, noted", [
    ("Haswell", "Haswell", True, True),     # this project's machine
    (None, "Haswell", True, False),         # OpenBLAS's own choice
    ("Haswell", "Haswell", False, False),   # the CPU has no AVX-512 anyway
    ("SkylakeX", "SkylakeX", True, False),
])
def test_kernel_note_names_a_pin_below_the_cpu(monkeypatch, pinned, kernels, avx512, noted):
    if pinned:
        monkeypatch.setenv("OPENBLAS_CORETYPE", pinned)
    else:
        monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.setattr(parallel, "blas_kernels", lambda: kernels)
    monkeypatch.setattr(parallel, "_cpu_has_avx512", lambda: avx512)
    note = parallel.kernel_note()
    assert (note is not None) == noted
    if noted:
        assert "OPENBLAS_CORETYPE=Haswell" in note and "\n" not in note
