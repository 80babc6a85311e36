"""The CuPy stand-in (tests/cupy_standin) refuses what CuPy refuses and counts what a card would
run; these tests run where it is the ``cupy`` of the process (``NNKD_CUPY_STANDIN=1``, .ci/run)."""

import subprocess
import sys

import numpy as np
import pytest

from .conftest import ROOT, STANDIN

pytestmark = [pytest.mark.standin,
              pytest.mark.skipif(not STANDIN, reason="needs NNKD_CUPY_STANDIN=1 (the stand-in as cupy)")]


@pytest.fixture
def cp():
    import cupy
    assert cupy.__version__.endswith("+standin")
    cupy._standin.counts.reset()
    return cupy


def counts(cp):
    return cp._standin.counts.snapshot()


@pytest.mark.parametrize("convert", [np.asarray, np.array, lambda x: np.ascontiguousarray(x),
                                     lambda x: np.float32(1) + np.zeros(3) * x.get() + np.zeros(3) + x,
                                     lambda x: np.zeros(3) + x, lambda x: x * np.ones(3),
                                     lambda x: np.linalg.norm(x), lambda x: np.multiply(x, np.ones(3))])
def test_refuses_every_implicit_conversion_to_numpy(cp, convert):
    x = cp.arange(3, dtype=cp.float32)
    with pytest.raises(TypeError):
        convert(x)


def test_refuses_numpy_arrays_as_arguments(cp):
    x = cp.arange(3, dtype=cp.float32)
    for call in (lambda: cp.multiply(np.ones(3), x), lambda: cp.take(x, np.arange(2)),
                 lambda: cp.matmul(x, np.ones(3)), lambda: cp.multiply(x, x, out=np.empty(3))):
        with pytest.raises(TypeError):
            call()


def test_numpy_functions_reach_it_where_cupy_has_them(cp):
    x = cp.arange(4, dtype=cp.float32)
    for r in (np.sum(x), np.exp(x), np.maximum(x, 1), np.count_nonzero(x)):
        assert isinstance(r, cp.ndarray)
    assert float(np.sum(x)) == 6.0 and x.sum().ndim == 0  # a 0-d device array, as CuPy returns


def test_refuses_names_cupy_lacks(cp):
    with pytest.raises(AttributeError, match="no such name"):
        cp.not_a_cupy_function
    with pytest.raises(AttributeError, match="no such name"):
        cp.cuda.runtime.notARuntimeCall
    with pytest.raises(AttributeError):
        cp.arange(3).not_a_method
    with pytest.raises(AttributeError):
        cp.arange(3).__index__  # CuPy arrays are no indices (no range(x), no list[x])
    rng = cp.random.default_rng(0)
    with pytest.raises(AttributeError):
        rng.bit_generator  # NumPy's Generator has it, CuPy's does not
    with pytest.raises(AttributeError):
        rng.normal(0, 1, 3)  # NumPy's Generator has it, CuPy's does not
    with pytest.raises(TypeError):
        rng.random((2,), dtype=cp.float32, not_a_parameter=1)


def test_a_name_cupy_has_but_the_stand_in_lacks_says_so(cp):
    with pytest.raises(AttributeError, match="exists in CuPy but the CuPy stand-in does not implement"):
        cp.ElementwiseKernel


def test_every_served_name_is_checked_at_import(cp):
    with pytest.raises(AssertionError, match="which CuPy .* lacks"):
        cp._standin.check_name("cupy", "not_a_cupy_function")
    public = [n for n in dir(cp) if not n.startswith("_")]
    assert public and all(n in cp._standin.NAMES["cupy"] for n in public)


def test_generator_defaults_are_cupys(cp):
    rng = cp.random.default_rng(0)
    assert rng.random((2,)).dtype == np.float64 and rng.random((2,), dtype=cp.float32).dtype == np.float32
    assert rng.integers(0, 5, 3).dtype == np.int64
    with pytest.raises(TypeError):
        cp.random.default_rng([0, 1])  # CuPy's default_rng takes one int


def test_counts_launches_syncs_and_transfers(cp):
    x = cp.asarray(np.arange(6, dtype=np.float32))      # 1 host-to-device copy
    assert counts(cp) == {"launches": 0, "syncs": 0, "d2h": 0, "h2d": 1}
    y = x * 2 + 1                                        # 2 elementwise kernels
    s = y.sum()                                          # 1 reduction
    y[1:3] = 0                                           # 1 copy kernel; slicing is free
    assert counts(cp)["launches"] == 4 and counts(cp)["syncs"] == 0
    float(s), int(s), bool(s), s.item(), y.get(), cp.asnumpy(y)
    cp.cuda.get_current_stream().synchronize()
    assert counts(cp) == {"launches": 4, "syncs": 7, "d2h": 6, "h2d": 1}


def test_a_fused_kernel_is_one_launch_and_cannot_sync(cp):
    @cp.fuse()
    def relu_scale(x, s):
        return cp.maximum(x, 0) * s + 1

    x = cp.asarray(np.array([-1.0, 2.0], dtype=np.float32))
    cp._standin.counts.reset()
    r = relu_scale(x, np.float32(3))
    assert counts(cp)["launches"] == 1 and r.get().tolist() == [1.0, 7.0]

    @cp.fuse()
    def reads_the_host(x):
        return x * float(x.sum())
    with pytest.raises(TypeError, match="fused kernel"):
        reads_the_host(x)
    with pytest.raises(TypeError):
        relu_scale(np.ones(2), 1.0)

    @cp.fuse()
    def two_reductions(x):
        return cp.sum(x) + cp.max(x)
    with pytest.raises(TypeError, match="second reduction"):
        two_reductions(x)

    @cp.fuse()
    def a_method(x):
        return x.sum()
    with pytest.raises(TypeError, match="fused kernel"):
        a_method(x)


def test_out_of_memory_hook_and_card_memory(cp):
    from nnkd.backend import get_backend
    be = get_backend("cupy")
    free, total = be.free_memory()
    x = cp.empty((1024, 1024), dtype=cp.float32)
    assert be.free_memory()[0] == free - x.nbytes
    cp._standin.fail_next_allocation()
    with pytest.raises(cp.cuda.memory.OutOfMemoryError, match="Out of memory allocating 400 bytes") as e:
        cp.zeros(100, dtype=cp.float32)
    assert be.is_out_of_memory(e.value)
    with pytest.raises(cp.cuda.memory.OutOfMemoryError):
        cp.empty(total // 4 + 1, dtype=cp.float32)
    cp.zeros(100, dtype=cp.float32)  # the hook fails one allocation only
    assert "stand-in" in be.describe()


def test_names_list_matches_the_installed_cupy():
    if subprocess.run([sys.executable, "-c", "import cupy"], capture_output=True, cwd="/").returncode:
        pytest.skip("CuPy is not installed here")
    r = subprocess.run([sys.executable, "-m", "tests.cupy_standin.record_names", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _launch_count():
    import importlib.util
    spec = importlib.util.spec_from_file_location("launch_count", ROOT / "benchmarks" / "launch_count.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Half the launches a step made before its elementwise chains were fused (docs/speed.md).
LAUNCH_BUDGET = {"teacher": 80, "student": 42, "distilled student": 86}


@pytest.mark.parametrize("model", list(LAUNCH_BUDGET))
def test_training_steps_never_wait_for_the_card_and_stay_within_their_launch_budget(cp, model, tmp_path):
    from nnkd.backend import get_backend
    from nnkd.presets import preset
    lc = _launch_count()
    be = get_backend("cupy")
    rng = np.random.default_rng(0)
    cfg = preset("fast")[0]["teacher" if model == "teacher" else "student"]
    data = {"x_train": be.asarray(rng.random((1000, 784), dtype=np.float32)),
            "y_train": be.asarray(rng.integers(0, 10, 1000)),
            "x_test": be.asarray(rng.random((100, 784), dtype=np.float32)),
            "y_test": be.asarray(rng.integers(0, 10, 100))}
    teacher = None
    if model == "distilled student":
        s = cfg.transfer_jitter
        from nnkd.transfer import TeacherLogits
        teacher = TeacherLogits(be.asarray(rng.standard_normal(((2 * s + 1) ** 2, 1000, 10), dtype=np.float32)), s)
    step = lc.per_step(lc.narrow(cfg, 32), be, data, teacher, steps=3)
    assert step["syncs"] == 0 and step["d2h"] == 0, step
    assert step["launches"] <= LAUNCH_BUDGET[model], step
    epoch = lc.per_epoch(lc.narrow(cfg, 32), be, data, teacher, tmp_path / "s")
    assert epoch["syncs_in_steps"] == 1, epoch  # the loss's finiteness, read after the last step only
