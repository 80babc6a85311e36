"""Checkpoints: one ``.npz`` of arrays (loaded with ``allow_pickle=False``) with its
metadata inside as a JSON string, and the same metadata beside it as ``.json``
for people to read.

Both files are written to a temporary name, flushed to disk and renamed into
place, so a kill or a full disk at any moment leaves the previous checkpoint
intact.  The ``.npz`` alone is authoritative: it carries the metadata, so the
two can never disagree about which epoch the arrays belong to.
"""

import json
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .version import __version__
from .errors import UserError
from .files import NPY_DAMAGE, atomic_write, check_destination, file_kind, read_npy_header
from .network import Network

FORMAT = 1
META_KEY = "__meta__"

# What reading a damaged .npz can raise, found by truncating and corrupting real checkpoints
# at every byte (besides zipfile's BadZipFile and EOFError): NotImplementedError for a
# compression method, zip version or flag bit that a flipped byte asks for, RuntimeError for
# a flipped "encrypted" flag; a member's damaged .npy header raises one of NPY_DAMAGE
# (tokenize.TokenError among them); the rest are listed for safety.
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, OSError, IndexError,
           NotImplementedError, RuntimeError) + NPY_DAMAGE

_ADVICE = "use an earlier checkpoint or train again"


def _atomic_write(path, write):
    try:
        atomic_write(path, write)
    except OSError as exc:
        raise UserError(f"could not write {path}: {exc.strerror or exc}; the previous checkpoint, "
                        "if any, is intact: free space or choose another run folder") from None


_NPZ_RULE = ("a checkpoint's name must end in .npz (its readable metadata goes beside it, to "
             "{sidecars}, and must not replace it)")


def _check_npz_name(path, doing):
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise UserError(f"cannot {doing} {path}: {_NPZ_RULE.format(sidecars=path.with_suffix('.json').name)}: "
                        f"give e.g. {path.with_suffix('.npz')}")
    return path


def save(path, arrays, meta):
    """Write ``arrays`` (name -> NumPy array) and ``meta`` (JSON-able dict) to ``path``, which
    must end in ``.npz``; the metadata is also written beside it, as ``.json``."""
    path = _check_npz_name(path, "save a checkpoint to")
    meta = dict(meta, format=FORMAT, nnkd_version=__version__)
    text = json.dumps(meta, indent=1, sort_keys=True)
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    payload[META_KEY] = np.array(text)
    _atomic_write(path, lambda f: np.savez(f, **payload))
    _atomic_write(path.with_suffix(".json"), lambda f: f.write(text.encode()))


def check_export_destination(dest, force=False, source=None):
    """Refuse, before anything is written, to export a checkpoint (``source``) to ``dest``
    when its name does not end in ``.npz``, when it is a folder, when its folder does not
    exist, when it would replace ``source`` or its sidecar, or (unless ``force``) when
    ``dest`` or its metadata sidecar ``dest.with_suffix(".json")`` already exists.
    Returns ``Path(dest)``."""
    return check_destination(dest, ".npz", _NPZ_RULE, sidecar_suffixes=[".json"],
                             sources=checkpoint_files(source), force=force)


def checkpoint_files(path):
    """The files of checkpoint ``path``: the ``.npz`` and its metadata sidecar (none for None)."""
    return () if path is None else (Path(path), Path(path).with_suffix(".json"))


def _read_npz(path):
    """All arrays of the .npz ``path``; raises one of ``_DAMAGE`` or :class:`UserError`.

    Each member's .npy header is read first: an object array (a pickle) is refused, and a
    member whose data is shorter or longer than its header says is found before any
    memory is allocated for it."""
    fmt = np.lib.format
    arrays = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with zf.open(info) as f:
                shape, dtype = read_npy_header(f)
                if dtype is None:
                    raise ValueError(f"array {name} has an .npy format version nnkd never writes")
                if dtype.hasobject:
                    raise UserError(f"checkpoint {path} is truncated or corrupted (array {name} holds "
                                    "Python objects, which nnkd never writes and will not unpickle); "
                                    + _ADVICE)
                need = math.prod(shape) * dtype.itemsize
                have = info.file_size - f.tell()
                if have != need:
                    raise ValueError(f"array {name}: {have} bytes of data where its header announces "
                                     f"{dtype}{tuple(shape)}, {need} bytes")
            with zf.open(info) as f:
                arrays[name] = fmt.read_array(f, allow_pickle=False)
    return arrays


def _sniff(path):
    """Refuse files that are plainly not an .npz, naming what they are."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise UserError(f"cannot read checkpoint {path}: {exc.strerror or exc}; check its permissions") from None
    if not head:
        raise UserError(f"checkpoint {path} is empty: it was cut off while being written; {_ADVICE}")
    kind = file_kind(head)
    if kind == "npy":
        raise UserError(f"{path} is a single .npy array, not an nnkd checkpoint (.npz): give a "
                        "checkpoint.npz written by nnkd")
    if kind == "json":
        beside = path.with_suffix(".npz")
        raise UserError(f"{path} is JSON (the readable copy of a checkpoint's metadata?), give the .npz "
                        f"beside it{f' ({beside})' if beside != path and beside.is_file() else ''}")
    if kind != "npz":
        raise UserError(f"checkpoint {path} is truncated or corrupted, or another kind of file: it is "
                        "not an .npz archive; give a checkpoint.npz written by nnkd")


def _check_meta(path, meta, require):
    def bad(what):
        return UserError(f"checkpoint {path} has metadata that {what}: it was not written by nnkd or is "
                         f"damaged; {_ADVICE}")
    if not isinstance(meta, dict):
        raise bad(f"is a JSON {type(meta).__name__}, not an object")
    if meta.get("format") != FORMAT:
        raise UserError(f"checkpoint {path} has format {meta.get('format')!r}; this nnkd "
                        f"({__version__}) reads format {FORMAT}")
    if "config" in meta and not isinstance(meta["config"], dict):
        raise bad(f"holds a config that is a JSON {type(meta['config']).__name__}, not an object")
    if "epoch" in meta and not (type(meta["epoch"]) is int and meta["epoch"] >= 0):
        raise bad(f"holds epoch {meta['epoch']!r}, not a whole number >= 0")
    if "seconds" in meta and not (type(meta["seconds"]) in (int, float) and math.isfinite(meta["seconds"])
                                  and meta["seconds"] >= 0):
        raise bad(f"holds seconds {meta['seconds']!r}, not a number >= 0")
    if "config" in meta and "epoch" not in meta:
        raise bad("has a config but no epoch")
    for key in require:
        if key not in meta:
            raise UserError(f"checkpoint {path} has no {key!r} in its metadata: it is not a trained nnkd "
                            f"model; give a checkpoint.npz written by nnkd")


def load(path, expected=None, require=()):
    """Read a checkpoint: returns ``(arrays, meta)``.

    Args:
        expected: optional ``{name: (shape, dtype)}``; every name must be present
            with that shape and dtype (a checkpoint of another architecture is
            refused here).
        require: metadata keys that must be present (e.g. ``("config", "epoch")``).

    Raises :class:`UserError`, one line naming the file, for a missing, empty,
    truncated, corrupted or foreign file (a single .npy array, JSON such as the
    ``.json`` sidecar, any other file), metadata of the wrong shape, and arrays
    holding NaN or infinite values.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint {path} does not exist: give the path of a checkpoint.npz "
                        "written by nnkd")
    if path.is_dir():
        inside = path / "checkpoint.npz"
        raise UserError(f"checkpoint {path} is a folder: give the checkpoint.npz "
                        + (f"inside it ({inside})" if inside.is_file() else "written by nnkd"))
    _sniff(path)
    try:
        arrays = _read_npz(path)
    except _DAMAGE as exc:
        why = str(exc) or type(exc).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupted ({why}); {_ADVICE}") from None
    if META_KEY not in arrays:
        raise UserError(f"{path} is not an nnkd checkpoint (no metadata inside: another program's .npz, "
                        "or damaged): give a checkpoint.npz written by nnkd")
    text = arrays.pop(META_KEY)
    if text.dtype.kind != "U" or text.ndim != 0:
        raise UserError(f"checkpoint {path} has unreadable metadata ({text.dtype}{text.shape}, not text); "
                        f"it is corrupted: {_ADVICE}")
    try:
        meta = json.loads(str(text))
    except (ValueError, RecursionError):
        raise UserError(f"checkpoint {path} has unreadable metadata; it is corrupted: {_ADVICE}") from None
    _check_meta(path, meta, require)
    for name, (shape, dtype) in (expected or {}).items():
        if name not in arrays:
            raise UserError(f"checkpoint {path} has no array {name!r}: it was written for another "
                            "model or by another version")
        a = arrays[name]
        if tuple(a.shape) != tuple(shape) or a.dtype != np.dtype(dtype):
            raise UserError(f"checkpoint {path}: {name} is {a.dtype}{tuple(a.shape)}, expected "
                            f"{np.dtype(dtype)}{tuple(shape)}: it belongs to another architecture")
    for name, a in arrays.items():
        if a.dtype.kind not in "biufc":
            raise UserError(f"checkpoint {path}: array {name} holds {a.dtype} values, not numbers: it was "
                            f"not written by nnkd or is damaged; {_ADVICE}")
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise UserError(f"checkpoint {path}: array {name} holds NaN or infinite values: the model "
                            f"diverged before it was saved, or the file is damaged; {_ADVICE}")
    return arrays, meta


def load_model(path, backend, data_checksum=None, dataset=None):
    """The network saved in checkpoint ``path``, on ``backend``: returns ``(net, meta)``.

    The one way nnkd loads a trained model (a teacher to distill from, a model to
    evaluate or plot).  ``data_checksum``: refuse a model trained on other data
    (``dataset`` names that data in the message).
    """
    from .checks import SettingError
    from .config import TrainConfig
    arrays, meta = load(path, require=("config", "epoch"))
    cfg = TrainConfig.from_dict(meta["config"], where=f"checkpoint {path}: its config")
    try:
        sizes = cfg.sizes()
    except UserError as exc:
        raise UserError(f"checkpoint {path}: {exc}") from None
    if data_checksum and meta.get("data_checksum") not in (None, data_checksum):
        raise UserError(f"{path} was trained on other data than {dataset or 'this dataset'}: give a "
                        "teacher trained on it, or train one")
    try:
        net = Network.from_settings(cfg, backend)
    except (SettingError, ValueError, TypeError) as exc:  # TypeError: a value of the wrong kind
        raise UserError(f"checkpoint {path}: its config cannot build a network ({exc})") from None
    for name, p in net.params:
        a = arrays.get(name)
        if a is None or a.shape != p.data.shape:
            got = "missing" if a is None else f"{a.dtype}{a.shape}"
            raise UserError(f"checkpoint {path}: array {name} is {got}, but its config "
                            f"{'-'.join(map(str, sizes))} needs {p.data.shape}: the file is damaged")
    net.load_state(arrays)
    return net, meta


def is_weight(name):
    """Whether a checkpoint array is a network parameter (``W0``, ``b0``...), not optimizer state."""
    return len(name) > 1 and name[0] in "Wb" and name[1:].isdigit()


def export_weights(src, dst, force=False, **extra_meta):
    """Write the weights of checkpoint ``src`` (no optimizer state) to ``dst``, keeping its
    metadata: the form in which a trained model is shared (e.g. the shipped teacher).

    The weights are those of the plain network (:meth:`Network.plain_layers`): a ``relu(x @ W
    + b)`` chain on the features as given computes the model's logits, with any input mapping
    and the paper's dropout scaling folded in; the exported config says so (``inputs`` "unit",
    ``dropout_scaling`` "train", the folded settings in ``folded``).

    ``dst`` must end in ``.npz``; when ``dst`` or its sidecar ``dst.with_suffix(".json")``
    exists, nothing is written and :class:`UserError` is raised, unless ``force``."""
    from .backend import get_backend
    dst = check_export_destination(dst, force=force, source=src)
    net, meta = load_model(src, get_backend("numpy"))
    weights = {}
    for i, (W, b) in enumerate(net.plain_layers()):
        weights[f"W{i}"], weights[f"b{i}"] = W.astype(np.float32), b.astype(np.float32)
    meta = {k: v for k, v in meta.items() if k not in ("format", "nnkd_version")}
    plain = {"inputs": "unit", "dropout_scaling": "train"}
    folded = {k: meta["config"].get(k) for k in plain if meta["config"].get(k, plain[k]) != plain[k]}
    if folded:
        meta = dict(meta, config=dict(meta["config"], **plain), folded=folded)
    save(dst, weights, dict(meta, weights_only=True, **extra_meta))
