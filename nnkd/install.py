"""How nnkd was installed, and the files it ships.

nnkd runs either from a source checkout (``python main.py``, the package folder beside
``setup.cfg`` and ``main.py``) or as an installed package (the ``nnkd`` command).  Advice in
messages names the command and the install line that fit the case at hand.  The shipped
files (pretrained models under ``nnkd/pretrained/<name>/``, example data under
``nnkd/examples/``) are package data, found from the package itself; nnkd never writes there.
"""

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

PACKAGE = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE.parent  # the checkout, when nnkd runs from one


def user_cache_folder():
    """nnkd's folder in the user cache: ``$XDG_CACHE_HOME/nnkd`` (when that is an absolute
    path) or ``~/.cache/nnkd``; None where no home folder can be found."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "nnkd"
    try:
        return Path.home() / ".cache" / "nnkd"
    except RuntimeError:
        return None

def in_checkout():
    """Whether this nnkd is a source checkout (editable installs included), not an installed copy."""
    return (SOURCE_ROOT / "setup.cfg").is_file() and (SOURCE_ROOT / "main.py").is_file()


def command_name():
    """The command line as the user runs it: ``nnkd``, ``python -m nnkd``, or ``python main.py``
    in a checkout."""
    if sys.argv[0] == "python -m nnkd":  # set by nnkd/__main__.py
        return sys.argv[0]
    if Path(sys.argv[0]).name == "nnkd" or not in_checkout():
        return "nnkd"
    return "python main.py"


def extra_hint(extra):
    """The install line that adds an extra (``onnx``, ``dask``, ``plot``, ``cupy``...)."""
    return f'pip install -e ".[{extra}]"' if in_checkout() else f'pip install "nnkd[{extra}]"'


def shipped_models():
    """The names of the models nnkd ships: the folders of ``nnkd/pretrained/`` with a checkpoint."""
    return sorted(p.parent.name for p in (PACKAGE / "pretrained").glob("*/checkpoint.npz"))


DEFAULT_TEACHER = "public-teacher"  # the shipped teacher `distill` distills from without --teacher


def shipped_checkpoint(name):
    """Where the shipped model ``name`` has its checkpoint (whether or not nnkd ships it)."""
    return PACKAGE / "pretrained" / name / "checkpoint.npz"


def pretrained(name=DEFAULT_TEACHER):
    """The checkpoint of the shipped model ``name``, checked against its SHA-256, or None
    when nnkd ships no such model."""
    path = shipped_checkpoint(name)
    if not path.is_file():
        return None
    expected = (path.parent / "SHA256SUMS").read_text().split()[0]
    if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        fix = "restore it with `git checkout nnkd/pretrained/`" if in_checkout() else \
            "reinstall nnkd (pip install --force-reinstall nnkd)"
        raise UserError(f"the shipped {name} {path} fails its SHA-256 check: {fix}, or train one "
                        "with --retrain-teacher")
    return path


def is_model_name(text):
    """Whether ``text`` reads as the name of a model (``public-teacher``), not a path."""
    return bool(text) and not any(c in text for c in "./\\~") and not Path(text).exists()


def find_model(model, what="model"):
    """The checkpoint ``model`` names: a path as given, or the checkpoint of the shipped model of
    that name (checked against its SHA-256).  A bare name nnkd does not ship is one line."""
    text = str(model)
    if not is_model_name(text):
        return Path(text).expanduser()
    path = pretrained(text)
    if path is None:
        raise UserError(f"{what} {text}: no such file, and nnkd ships no model of that name (it ships "
                        f"{', '.join(shipped_models()) or 'none'}); give a file's path or one of those names")
    return path


@dataclass(frozen=True)
class ShippedModel:
    """One model nnkd ships: its name (what ``--teacher``, ``load_model``, ``evaluate`` and
    ``export`` take), its test errors on MNIST at its final epoch, its training settings in a line, the
    size and SHA-256 of its ``checkpoint.npz``, and where that file is."""
    name: str
    test_errors: int
    recipe: str
    bytes: int
    sha256: str
    path: Path


def _final_test_errors(metrics):
    """The test errors of the last line of a ``metrics.jsonl`` that has them."""
    for line in reversed(metrics.read_text().splitlines()):
        row = json.loads(line) if line.strip() else {}
        if "test_errors" in row:
            return row["test_errors"]
    return None


def _recipe(cfg):
    """A model's training settings in one line, from its checkpoint's config."""
    schedule = {"exp": f"x {cfg['lr_decay']:g}^epoch", "cosine": "cosine", "constant": "constant"}
    max_norm = f"max-norm {cfg['max_norm']:g}" if cfg["max_norm"] else "no max-norm"
    return (f"{cfg['arch']}, {cfg['epochs']} epochs, batch {cfg['batch_size']}, {cfg.get('optimizer', 'sgd')} lr0 "
            f"{cfg['lr']:g} {schedule.get(cfg['lr_schedule'], cfg['lr_schedule'])}, dropout "
            f"{cfg['dropout_input']:g}/{cfg['dropout_hidden']:g}, jitter {cfg['jitter']}, {max_norm}, "
            f"{cfg.get('inputs', 'unit')} inputs")


def shipped_model_list():
    """The models nnkd ships, as :class:`ShippedModel` (what ``nnkd teachers`` prints)."""
    models = []
    for name in shipped_models():
        folder = PACKAGE / "pretrained" / name
        models.append(ShippedModel(
            name=name, test_errors=_final_test_errors(folder / "metrics.jsonl"),
            recipe=_recipe(json.loads((folder / "checkpoint.json").read_text())["config"]),
            bytes=(folder / "checkpoint.npz").stat().st_size,
            sha256=(folder / "SHA256SUMS").read_text().split()[0], path=folder / "checkpoint.npz"))
    return models


def example_data(name="digits8x8"):
    """The path of an example dataset shipped with nnkd, an ``.npz`` file with ``x_train``,
    ``y_train``, ``x_test``, ``y_test`` (``digits8x8``: 8x8 uint8 digit images, labels 0-9;
    also usable as ``--dataset npz:PATH``)."""
    path = PACKAGE / "examples" / f"{name}.npz"
    if not path.is_file():
        shipped = sorted(p.stem for p in (PACKAGE / "examples").glob("*.npz"))
        raise UserError(f"no example dataset {name!r}: nnkd ships {', '.join(shipped) or 'none'}")
    return path
