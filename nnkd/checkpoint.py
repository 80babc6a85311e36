"""Checkpoints: one ``.npz`` of arrays (loaded with ``allow_pickle=False``) with its
metadata inside as a JSON string, and the same metadata beside it as ``.json``
for people to read.

Both files are written to a temporary name, flushed to disk and renamed into
place, so a kill or a full disk at any moment leaves the previous checkpoint
intact.  The ``.npz`` alone is authoritative: it carries the metadata, so the
two can never disagree about which epoch the arrays belong to.
"""

import json
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from .errors import UserError
from .files import atomic_write

FORMAT = 1
META_KEY = "__meta__"


def _atomic_write(path, write):
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise UserError(f"could not write {path}: {exc.strerror or exc}; the previous checkpoint, "
                        "if any, is intact: free space or choose another --out") from None


def save(path, arrays, meta):
    """Write ``arrays`` (name -> NumPy array) and ``meta`` (JSON-able dict) to ``path``."""
    meta = dict(meta, format=FORMAT, nnkd_version=__version__)
    text = json.dumps(meta, indent=1, sort_keys=True)
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    payload[META_KEY] = np.array(text)
    _atomic_write(path, lambda f: np.savez(f, **payload))
    _atomic_write(Path(path).with_suffix(".json"), lambda f: f.write(text.encode()))


def load(path, expected=None):
    """Read a checkpoint: returns ``(arrays, meta)``.

    Args:
        expected: optional ``{name: (shape, dtype)}``; every name must be present
            with that shape and dtype (a checkpoint of another architecture is
            refused here).

    Raises :class:`UserError` naming the file for a missing, truncated,
    corrupted or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist: give the path of a checkpoint.npz "
                        "written by nnkd")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"checkpoint {path} is truncated or corrupted ({exc}); use an earlier "
                        "checkpoint or train again") from None
    if META_KEY not in arrays:
        raise UserError(f"{path} is not an nnkd checkpoint (no metadata inside)")
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except ValueError:
        raise UserError(f"checkpoint {path} has unreadable metadata; it is corrupted") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} has format {meta.get('format')!r}; this nnkd "
                        f"({__version__}) reads format {FORMAT}")
    for name, (shape, dtype) in (expected or {}).items():
        if name not in arrays:
            raise UserError(f"checkpoint {path} has no array {name!r}: it was written for another "
                            "model or by another version")
        a = arrays[name]
        if tuple(a.shape) != tuple(shape) or a.dtype != np.dtype(dtype):
            raise UserError(f"checkpoint {path}: {name} is {a.dtype}{tuple(a.shape)}, expected "
                            f"{np.dtype(dtype)}{tuple(shape)}: it belongs to another architecture")
    return arrays, meta
