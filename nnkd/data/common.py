"""What every part of :mod:`nnkd.data` shares: the error types and small helpers."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..errors import UserError
from ..files import atomic_write
from ..install import command_name

GZIP_MAGIC = b"\x1f\x8b"
REFETCH = f"delete it and run `{command_name()} data` to fetch a verified copy"


class DataError(UserError):
    """A data file or source is missing, corrupt or unusable; the message is one line."""


class SourceFailed(Exception):
    """Internal: one source could not supply the files; the message says why (one line)."""


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def show(path: Path | str) -> str:
    """A path as the user would type it: relative to the working folder when inside it.
    Symbolic links are not followed, so a link is named as it was given."""
    path = Path(path)
    try:
        return str(Path(os.path.abspath(path)).relative_to(Path.cwd()))
    except (ValueError, OSError):  # OSError: the working folder is gone
        return str(path)


def sha256_hex(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def read_bytes(path: Path) -> bytearray:
    """The whole file in one writable buffer (so arrays over it need no copy)."""
    with open(path, "rb") as f:
        buf = bytearray(os.fstat(f.fileno()).st_size)
        n = f.readinto(buf)
        rest = f.read()
    return buf[:n] + rest if n != len(buf) or rest else buf


def write_atomically(path: Path, data: bytes | bytearray) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place; a failure
    is one :class:`DataError` naming ``path`` (the temporary file is removed)."""
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as exc:
        what = "it is a folder" if Path(path).is_dir() else (exc.strerror or str(exc))
        raise DataError(f"cannot write {show(path)} in the dataset cache ({what}): remove it or make "
                        "the cache folder writable (NNKD_DATA moves the cache)") from None
