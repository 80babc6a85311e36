"""The step mode (nnkd.stepmode): forced by NNKD_STEP_MODE, else measured once per machine and
kept in the user cache.  The measurement is injected here: no test depends on timing."""

import importlib
import json

import pytest

from nnkd import stepmode
from nnkd.backend import get_backend
from nnkd.errors import UserError
from nnkd.train import training_conditions

train = importlib.import_module("nnkd.train")  # the module (nnkd.train is also the package's function)

NUMPY = get_backend("numpy")


@pytest.fixture
def measuring(monkeypatch, tmp_path):
    """No NNKD_STEP_MODE, an empty user cache, nothing chosen yet in this process; yields the
    list of thread counts the injected calibration was called with."""
    monkeypatch.delenv("NNKD_STEP_MODE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(stepmode, "_chosen", {})
    calls = []
    monkeypatch.setattr(train, "calibrate_modes", lambda threads: calls.append(threads) or
                        {"split": 2.0, "whole": 1.0})
    return calls


def test_the_suite_never_measures():
    import os
    assert os.environ.get("NNKD_STEP_MODE") in stepmode.MODES  # tests/conftest.py


def test_the_environment_forces_a_mode(monkeypatch):
    monkeypatch.setenv("NNKD_STEP_MODE", "whole")
    assert stepmode.step_mode(NUMPY, 2, calibrate=pytest.fail) == ("whole", stepmode.FORCED)
    monkeypatch.setenv("NNKD_STEP_MODE", "fastest")
    with pytest.raises(UserError, match="NNKD_STEP_MODE='fastest': give one of split, whole"):
        train.machine_step_mode(NUMPY, 2)


def test_one_thread_is_whole_without_measuring(measuring):
    assert train.machine_step_mode(NUMPY, 1) == ("whole", stepmode.ONE_THREAD)
    assert measuring == []


def test_the_faster_mode_is_measured_once_and_cached(measuring):
    assert train.machine_step_mode(NUMPY, 2) == ("whole", stepmode.MEASURED)
    assert train.machine_step_mode(NUMPY, 2) == ("whole", stepmode.MEASURED)
    assert measuring == [2]
    cached = json.loads(stepmode.cache_file().read_text())
    assert cached[stepmode.machine_key(2)]["mode"] == "whole"
    stepmode._chosen.clear()  # a later process on the same machine reads the cache
    assert train.machine_step_mode(NUMPY, 2) == ("whole", stepmode.MEASURED_EARLIER)
    assert measuring == [2]
    assert stepmode.step_mode(NUMPY, 3, calibrate=lambda n: {"split": 1.0, "whole": 2.0}) == \
        ("split", stepmode.MEASURED)  # another thread count is another key
    assert set(json.loads(stepmode.cache_file().read_text())) == {stepmode.machine_key(n) for n in (2, 3)}


def test_the_key_names_cpu_blas_kernels_and_threads(monkeypatch):
    monkeypatch.setattr(stepmode, "cpu_model", lambda: "Intel Xeon (family 6, model 85)")
    monkeypatch.setattr(stepmode, "blas_config", lambda: "OpenBLAS 0.3.31 DYNAMIC_ARCH")
    monkeypatch.setattr(stepmode, "blas_kernels", lambda: "SkylakeX")
    key = stepmode.machine_key(2)
    assert key == "Intel Xeon (family 6, model 85) | OpenBLAS 0.3.31 DYNAMIC_ARCH | SkylakeX | 2 threads"
    monkeypatch.setattr(stepmode, "blas_kernels", lambda: "Haswell")
    assert stepmode.machine_key(2) != key


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"KEY": {"mode": "fastest"}}', '{"KEY": 3}'])
def test_a_damaged_cache_is_measured_again(measuring, content):
    path = stepmode.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(content.replace("KEY", stepmode.machine_key(2)))
    assert train.machine_step_mode(NUMPY, 2) == ("whole", stepmode.MEASURED)
    assert json.loads(path.read_text())[stepmode.machine_key(2)]["mode"] == "whole"


def test_an_unwritable_cache_still_gives_the_measured_mode(measuring, monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # a file where a folder must be
    assert train.machine_step_mode(NUMPY, 2) == ("whole", stepmode.MEASURED)


def test_training_runs_in_the_chosen_mode(measuring):
    from nnkd import parallel
    if parallel._openblas() is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose threads can be set")
    with training_conditions(NUMPY, 2) as workers:
        assert (workers.n, workers.mode) == (2, "whole")
    with training_conditions(NUMPY, 2, mode="split") as workers:
        assert (workers.n, workers.mode) == (2, "split")


def test_calibration_times_both_modes():
    seconds = train.calibrate_modes(2, rounds=1, steps=1)
    assert set(seconds) == set(stepmode.MODES) and min(seconds.values()) > 0
