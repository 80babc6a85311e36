"""nnkd: knowledge distillation from scratch on NumPy and CuPy.

The names below are the Python API (README.md, "Python API"); the command line is
:mod:`nnkd.cli`.
"""

from .version import __version__
from .backend import get_backend
from .config import RunSpec, TrainConfig
from .install import ShippedModel, example_data, shipped_model_list
from .losses import softmax
from .train import train


def load_model(path, backend="numpy"):
    """The network saved in checkpoint ``path`` (a ``checkpoint.npz`` written by nnkd, an
    exported one, or the name of a shipped model such as ``"public-teacher"``: see
    :func:`shipped_models`), on ``backend`` (``"numpy"``, ``"cupy"`` or a backend from
    :func:`get_backend`).  Its ``predict_logits(X)`` gives the logits and ``predict(X)`` the
    class of each row of ``X``: float32 features on that backend (pixels / 255 for MNIST).
    A missing, damaged or foreign file, and rows of ``X`` holding NaN or infinity, raise
    ``UserError`` with a one-line message."""
    import os
    from .checkpoint import load_model as load
    from .errors import UserError
    from .install import find_model
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise UserError(f"path is {path!r}: give the path of a checkpoint.npz written by nnkd, or "
                        "the name of a shipped model")
    net, _ = load(find_model(path), get_backend(backend))
    return net


def shipped_models():
    """The models nnkd ships, a list of :class:`ShippedModel` (``name``, ``test_errors``,
    ``recipe``, ``bytes``, ``sha256``, ``path``): what ``nnkd teachers`` prints.  Each name is
    accepted by :func:`load_model`, ``--teacher``, ``nnkd evaluate`` and ``nnkd export``."""
    return shipped_model_list()


__all__ = ["RunSpec", "ShippedModel", "TrainConfig", "example_data", "get_backend", "load_model", "shipped_models", "softmax", "train",
           "__version__"]
