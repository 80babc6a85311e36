"""The files nnkd reads and writes, outside checkpoints (see checkpoint.py).

* :func:`atomic_write`: a kill or a full disk at any moment leaves the old file intact.
* :func:`read_json`, :func:`read_metrics`, :func:`read_array`: one reader per kind of
  file.  Whatever is wrong with the file (missing, empty, cut off, damaged, of another
  kind or shape) ends in one :class:`~nnkd.errors.UserError` whose one-line message
  names the file, says what is wrong with it and what to do.
* :func:`check_destination`: where an export may write, checked before it writes.
* :func:`write_metrics`, :func:`append_metrics`: ``metrics.jsonl``, written so that a
  stopped run can only tear its last line, which :func:`read_metrics` drops.

:class:`~nnkd.runlock.RunLock` (one process per run folder) is in :mod:`nnkd.runlock`.
"""

import contextlib
import json
import os
import tempfile
import tokenize
import warnings
from pathlib import Path

import numpy as np

from .errors import UserError

def atomic_write(path, write):
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then rename
    it over ``path``.  On any failure the temporary file is removed and ``path`` is
    untouched; the exception propagates (an ``OSError`` naming ``path``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename:  # a full disk: name the file being written
            exc.filename = str(path)
        raise


def write_text(path, text):
    """``atomic_write`` of a string (UTF-8, whatever the locale; a file name's undecodable bytes
    are written back as they were): settings, results, summaries."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8", "surrogateescape")))


def check_destination(dest, suffix, name_rule, sidecar_suffixes=(), sources=(), force=False):
    """Refuse, before anything is written, to export to ``dest`` when it is a folder, when it
    or one of its sidecars (``dest`` with each of ``sidecar_suffixes``, written beside it)
    would replace one of ``sources`` (the files exported from), when its name does not end in
    ``suffix`` (``name_rule`` says why it must; ``{sidecars}`` in it names the sidecars), when a
    sidecar is a folder, when its folder does not exist, or, unless
    ``force``, when it or a sidecar exists.  Returns ``Path(dest)``."""
    dest = Path(dest)
    if not dest.name or dest.is_dir():  # ".", "/", "..", an existing folder
        raise UserError(f"cannot export to {dest}: it is a folder; give a file name ending in {suffix}")
    written = [dest, *(dest.with_suffix(x) for x in sidecar_suffixes)]
    for p in written:
        for q in map(Path, sources):
            if p.exists() and q.exists() and p.samefile(q):
                raise UserError(f"cannot export {sources[0]} onto itself ({dest} would replace {q}): "
                                "the run could no longer resume; give another destination")
    if dest.suffix.lower() != suffix:
        rule = name_rule.format(sidecars=", ".join(p.name for p in written[1:]))
        raise UserError(f"cannot export to {dest}: {rule}: give e.g. {dest.with_suffix(suffix)}")
    for p in written[1:]:
        if p.is_dir():
            raise UserError(f"cannot export to {dest}: {p} is a folder; give a file name ending in {suffix}")
    if not dest.parent.is_dir():
        raise UserError(f"cannot export to {dest}: the folder {dest.parent} does not exist; create it "
                        "or choose another destination")
    if not force:
        for p in written:
            if p.exists() or p.is_symlink():
                to = "" if p == dest else f" to {dest}"
                raise UserError(f"{p} already exists and exporting{to} would replace it: choose another "
                                "destination, or allow overwriting with `force`")
    return dest


def why(exc):
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def _read_bytes(path, what, advice):
    """The whole file, or one line saying why it cannot be read."""
    if not path.exists():
        raise UserError(f"{path} ({what}) does not exist: {advice}")
    if path.is_dir():
        raise UserError(f"{path} ({what}) is a folder, not a file: {advice}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path} ({what}): {why(exc)}; check its permissions") from None


_TYPE_NAMES = {dict: "an object ({...})", list: "a list ([...])", str: "a string", bool: "true or false",
               int: "a number", float: "a number", type(None): "null"}


def _json_type(value):
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def read_json(path, what, kind=dict, advice="restore it, or start again in a new run folder"):
    """Parse the JSON file ``path`` (``what`` says what it holds, e.g. "run settings") and
    return it; it must be of type ``kind`` (a type or tuple of types).

    Raises :class:`UserError`, one line naming the file, when it is missing, empty, not
    UTF-8 text, not valid JSON (e.g. cut off while being written) or of another type.
    ``advice`` is the end of those lines: what the user should do.
    """
    path = Path(path)
    raw = _read_bytes(path, what, advice)
    if not raw.strip():
        raise UserError(f"{path} ({what}) is empty: it was cut off while being written; {advice}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} ({what}) is not text: byte {exc.start} is not UTF-8, so the file is "
                        f"damaged or of another kind; {advice}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(text.rstrip())
        raise UserError(f"{path} ({what}) is not valid JSON ({exc.msg} at line {exc.lineno} column "
                        f"{exc.colno}): it is {'cut off' if cut else 'damaged'}; {advice}") from None
    except (RecursionError, ValueError) as exc:
        raise UserError(f"{path} ({what}) is not valid JSON ({exc}); {advice}") from None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
        raise UserError(f"{path} ({what}) holds {_json_type(value)} where "
                        f"{_TYPE_NAMES.get(kinds[0], kinds[0].__name__)} is "
                        f"expected: it was not written by nnkd or is damaged; {advice}")
    return value


def read_metrics(path, log=print):
    """The rows of a ``metrics.jsonl`` (one JSON object per line, each with an integer
    ``"epoch"``), as a list of dicts; a missing file has none.

    A last line that is not valid JSON was torn by a run stopped while writing it: it
    is dropped, with one line to ``log``.  Any other bad line raises :class:`UserError`.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    raw = _read_bytes(path, "training metrics", "restore it or delete it")
    lines = raw.split(b"\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip(b" \t\r")), default=-1)
    rows = []
    for i, line in enumerate(lines[:last + 1]):
        if not line.strip(b" \t\r"):
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError too
            if i == last:
                log(f"{path}: dropped a torn last line (a run stopped while writing it)")
                break
            raise UserError(f"{path}: line {i + 1} is not valid JSON ({exc}); only the last line can be "
                            "torn by a stopped run, so the file is damaged: delete that line, or the "
                            "file (the checkpoint does not need it)") from None
        if not (isinstance(row, dict) and type(row.get("epoch")) is int):
            raise UserError(f"{path}: line {i + 1} is not a row of training metrics (a JSON object "
                            "with an integer \"epoch\"): it was not written by nnkd or is damaged; "
                            "delete that line, or the file (the checkpoint does not need it)")
        rows.append(row)
    return rows


def _metrics_line(row):
    return (json.dumps(row) + "\n").encode()


def write_metrics(path, rows):
    """Replace ``path`` with ``rows``, one JSON line each, atomically."""
    path = Path(path)
    data = b"".join(_metrics_line(r) for r in rows)
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as exc:
        raise UserError(f"could not write {path}: {why(exc)}; its previous content is intact: free "
                        "space or check the run folder's permissions") from None


def append_metrics(path, row):
    """Append ``row`` as one JSON line to ``path`` with a single write, then flush it to
    disk: a run stopped meanwhile can only tear this last line."""
    path = Path(path)
    data = _metrics_line(row)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            n = os.write(fd, data)
            if n != len(data):
                raise OSError(f"wrote {n} of {len(data)} bytes (disk full?)")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UserError(f"could not write {path}: {why(exc)}; free space or check the run "
                        "folder's permissions, then resume the run") from None


# What NumPy raises on a damaged .npy header, found by setting each header byte to every
# value and by 100000 random edits: ValueError mostly, tokenize.TokenError (an unclosed
# bracket or quote), SyntaxError, TypeError (e.g. comparing bytes and str); the rest for safety.
NPY_DAMAGE = (ValueError, EOFError, tokenize.TokenError, SyntaxError, TypeError, KeyError, OverflowError,
              RecursionError, MemoryError)


def read_npy_header(f):
    """``(shape, dtype)`` from the .npy header at the start of the binary file ``f``, leaving
    ``f`` at the first byte of data; ``(None, None)`` for a format version nnkd never writes
    (3.0).  Raises one of :data:`NPY_DAMAGE` for a damaged header."""
    fmt = np.lib.format
    with warnings.catch_warnings():  # a damaged header is parsed as Python: no SyntaxWarning noise
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            return None, None
    return shape, dtype


def size_text(n):
    """Bytes as people read them: ``8.0 GB``-style binary units, ``14.6 TiB``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"


def memory_problem(shape, dtype):
    """A phrase when an array of ``shape`` and ``dtype``, as a header claims it, cannot be held
    in the memory this machine has available, else None: checked before reading its data."""
    from .memory import available_memory
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = available_memory()
    if have is not None and need > have:
        return f"claims {size_text(need)} ({dtype}{_shape_text(shape)}), more than the {size_text(have)} of " \
               "memory available"
    return None


def file_kind(head):
    """``"npy"``, ``"npz"``, ``"json"`` or None: what a file looks like from its first bytes
    (the one place nnkd tells its file formats apart)."""
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK"):
        return "npz"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[", b'"'):
        return "json"
    return None


_NOT_NPY = {"npz": "an .npz archive (a checkpoint or several arrays), not a single .npy array",
            "json": "JSON text, not an .npy array",
            None: "not an .npy array (no NumPy header: another kind of file, or damaged)"}


def _shape_text(shape):
    return "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def npy_header(f, size):
    """``(shape, dtype, problem)`` of the .npy array that the binary file (or archive member) ``f``
    of ``size`` bytes holds, from its header alone, ``f`` left at its first byte of data: the one
    place nnkd judges an .npy header.  ``problem`` is None, or a phrase saying why the array
    cannot be read: it holds Python objects, or it is cut off (or longer than its header says);
    whether memory can hold it is :func:`memory_problem`'s.  ``(None, None, None)`` for a format
    version nnkd never writes (3.0).  A damaged header raises one of :data:`NPY_DAMAGE`."""
    shape, dtype = read_npy_header(f)
    if dtype is None:
        return None, None, None
    if dtype.hasobject:
        return shape, dtype, f"holds Python objects ({dtype}), which nnkd never writes and will not unpickle"
    need, held = int(np.prod(shape, dtype=object)) * dtype.itemsize, size - f.tell()
    claim = f"{size_text(need)} ({dtype}{_shape_text(shape)})"
    if held < need:
        return shape, dtype, f"claims {claim} but holds {size_text(held)}: it is cut off or damaged"
    if held > need:
        return shape, dtype, f"is longer than its header says: it claims {claim} but holds {size_text(held)}"
    return shape, dtype, None


def _header_of(path, what, advice):
    """``(shape, dtype)`` from the header of the .npy file ``path``, refusing in one line what
    :func:`npy_header` finds wrong, an empty file, another kind of file or a damaged header."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            f.seek(0)
            try:
                shape, dtype, problem = npy_header(f, path.stat().st_size)
            except NPY_DAMAGE as exc:
                if not head:
                    raise UserError(f"{path} ({what}) is empty: it was cut off while being written; "
                                    f"{advice}") from None
                if file_kind(head) != "npy":
                    raise UserError(f"{path} ({what}) is {_NOT_NPY[file_kind(head)]}; {advice}") from None
                raise UserError(f"{path} ({what}) has a damaged or cut-off .npy header ({exc}); "
                                f"{advice}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path} ({what}): {why(exc)}; check its permissions") from None
    if problem:
        raise UserError(f"{path} ({what}) {problem}; {advice}")
    return shape, dtype


def read_array(path, what, shape=None, dtype=None, advice="delete it and it will be written again",
               check_header=None):
    """Read the ``.npy`` file ``path`` (``what`` says what it holds, e.g. "teacher logits")
    without pickle.

    Args:
        shape: optional expected shape; ``None`` entries mean any size.
        dtype: optional expected dtype (or a tuple of accepted dtypes).
        advice: the end of the error lines: what the user should do.
        check_header: optional ``f(shape, dtype)`` called with the header's shape and dtype
            before any data is read (it raises to refuse the file).

    Raises :class:`UserError`, one line naming the file, when it is missing, empty, cut off,
    not an .npy file (an .npz, JSON, random bytes), holds Python objects, has another shape
    or dtype, or holds NaN or infinite values.
    """
    path = Path(path)
    if path.is_file():
        hshape, hdtype = _header_of(path, what, advice)
        if hdtype is not None:
            _check_shape(path, what, hshape, shape, advice)
            _check_dtype(path, what, hdtype, dtype, advice)
            if check_header:
                check_header(hshape, hdtype)
            problem = memory_problem(hshape, hdtype)
            if problem:
                raise UserError(f"{path} ({what}) {problem}; {advice}")
    elif path.exists() and not path.is_dir():
        raise UserError(f"{path} ({what}) is not a regular file: {advice}")
    else:
        _read_bytes(path, what, advice)  # raises: missing, a folder
    try:
        a = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise UserError(f"cannot read {path} ({what}): {why(exc)}; check its permissions") from None
    except NPY_DAMAGE as exc:
        raise UserError(f"{path} ({what}) is damaged ({exc}); {advice}") from None
    _check_shape(path, what, a.shape, shape, advice)
    _check_dtype(path, what, a.dtype, dtype, advice)
    if a.dtype.kind not in "biufc":
        raise UserError(f"{path} ({what}) holds {a.dtype} values, not numbers; {advice}")
    if a.dtype.kind in "fc" and not np.isfinite(a).all():
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise UserError(f"{path} ({what}) holds {bad} NaN or infinite values: it was computed from a "
                        f"diverged model or is damaged; {advice}")
    return a


def _check_shape(path, what, got, shape, advice):
    if shape is not None and (len(got) != len(shape) or any(s is not None and n != s for n, s in zip(got, shape))):
        raise UserError(f"{path} ({what}) has shape {_shape_text(got)}, expected "
                        f"{_shape_text(tuple(shape))}: it belongs to other data or another model; {advice}")


def _check_dtype(path, what, got, dtype, advice):
    if dtype is not None:
        accepted = [np.dtype(d) for d in (dtype if isinstance(dtype, (tuple, list)) else (dtype,))]
        if got not in accepted:
            raise UserError(f"{path} ({what}) holds {got} values, expected "
                            f"{' or '.join(map(str, accepted))}; {advice}")
