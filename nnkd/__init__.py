"""nnkd: knowledge distillation from scratch on NumPy and CuPy.

The names below are the Python API (README, "Python API"); the command line is
:mod:`nnkd.cli`.
"""

from .version import __version__
from .backend import get_backend
from .config import RunSpec, TrainConfig
from .losses import softmax
from .train import train

__all__ = ["RunSpec", "TrainConfig", "get_backend", "softmax", "train", "__version__"]
