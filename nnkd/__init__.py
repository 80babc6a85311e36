"""nnkd: knowledge distillation from scratch on NumPy and CuPy.

The names below are the Python API (README, "Python API"); the command line is
:mod:`nnkd.cli`.
"""

__version__ = "0.1.0"

from .backend import get_backend  # noqa: E402
from .config import RunSpec, TrainConfig  # noqa: E402
from .losses import softmax  # noqa: E402
from .train import train  # noqa: E402

__all__ = ["RunSpec", "TrainConfig", "get_backend", "softmax", "train", "__version__"]
