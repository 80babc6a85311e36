"""Shared fixtures: every backend test runs on NumPy, and on CuPy where a GPU is usable."""

import numpy as np
import pytest

from nnkd.backend import get_backend
from nnkd.errors import UserError


def _cupy_or_reason():
    try:
        return get_backend("cupy"), None
    except UserError as exc:
        return None, str(exc)


_CUPY, _CUPY_REASON = _cupy_or_reason()


@pytest.fixture(params=["numpy", "cupy"])
def backend(request):
    if request.param == "cupy":
        if _CUPY is None:
            pytest.skip(f"CuPy backend unavailable: {_CUPY_REASON}")
        return _CUPY
    return get_backend("numpy")


@pytest.fixture
def cupy_backend():
    if _CUPY is None:
        pytest.skip(f"CuPy backend unavailable: {_CUPY_REASON}")
    return _CUPY


def gpu_available():
    return _CUPY is not None


def host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)
