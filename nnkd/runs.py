"""Run folders: the settings file, the log, and one process at a time.

A run folder (see :mod:`nnkd.pipeline`) starts with its settings file
(``run.json``, or ``sweep.json`` for a sweep), written from the validated
:class:`~nnkd.config.RunSpec` before any training, and read back by resume.
"""

import json
import os
import re
import sys
from pathlib import Path

from .config import RunSpec
from .errors import UserError
from .files import read_json, write_text
from .runlock import RunLock
from .tables import count


def silence_stdout():
    """Point file descriptor 1 at /dev/null, so that whatever is still buffered for a dead
    stdout (a closed pipe, a full disk) is dropped at exit instead of raising there."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):  # no real stdout (e.g. captured in tests)
        pass


class SafeOutput:
    """Stands in for ``sys.stdout`` while a command runs: a write that fails (the reader of
    a pipe has gone, the disk is full) turns the output off instead of raising, so a
    failing stdout never stops the work; ``error`` keeps the first failure."""

    def __init__(self, stream):
        self.stream, self.error = stream, None

    def _call(self, fn, *args):
        if self.error is None:
            try:
                fn(*args)
            except OSError as exc:
                self.error = exc
                silence_stdout()

    def write(self, text):
        self._call(self.stream.write, text)
        return len(text)

    def flush(self):
        self._call(self.stream.flush)

    def __getattr__(self, name):
        return getattr(self.stream, name)


class Log:
    """Print a line (unless ``echo`` is false) and append it to a log file.

    Lines logged before :meth:`to_file` (e.g. while the data is fetched, before the
    run folder exists) are kept and written first when the file is set.  When stdout
    fails (a closed pipe, a full disk), printing stops and the log file goes on.
    """

    def __init__(self, path=None, echo=True):
        self.path, self.echo = path, echo
        self.pending = []

    def __call__(self, line):
        if self.echo:
            try:
                print(line, flush=True)
            except OSError:
                self.echo = False
                silence_stdout()
        if self.path:
            with open(self.path, "a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(line + "\n")
        else:
            self.pending.append(line)

    def to_file(self, path):
        self.path = Path(path)
        with open(self.path, "a", encoding="utf-8", errors="surrogateescape") as f:
            f.writelines(line + "\n" for line in self.pending)
        self.pending = []


def is_empty(folder):
    """No files in ``folder`` (or no folder), but for an unheld lock file (:class:`RunLock`);
    a file in the folder's place is refused in one line."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder: choose another folder for the run")
    return not folder.exists() or all(p.name == RunLock.NAME for p in folder.iterdir())


def remove_leftover_parts(folder, log):
    """Remove the temporary files (``.NAME.*.part``, see :func:`nnkd.files.atomic_write`) that
    a process killed while writing left in ``folder`` and its subfolders; call it holding the
    folder's lock, so that no other process is writing them."""
    found = [p for pattern in (".*.part", "*/.*.part") for p in Path(folder).glob(pattern)
             if re.fullmatch(r"\..+\.[a-z0-9_]{8}\.part", p.name) and p.is_file()]
    for p in found:
        try:
            p.unlink()
        except OSError:
            pass
    if found:
        log(f"removed {count(len(found), 'temporary file')} left by a write that was "
            f"cut off: {', '.join(str(p) for p in found)}")


def write_spec(path, spec, **extra):
    write_text(path, json.dumps(dict(spec.to_dict(), **extra), indent=1))


def read_spec(path):
    """The :class:`RunSpec` saved in ``path`` (run.json or sweep.json); not yet validated."""
    return RunSpec.from_dict(read_json(path, "run settings"), where=str(path))


class RunFolder:
    """``with RunFolder(out, log, check):`` creates the folder, takes its lock (one process per
    run folder), calls ``check()`` (e.g. that the folder is still empty: another command
    may have started in it meanwhile), removes temporary files left by a killed write, and
    sends the log to ``log.txt``; the lock is released on exit."""

    def __init__(self, out, log, check=None):
        self.out, self.log, self.check = Path(out), log, check
        self.lock = None

    def _unwritable(self, exc):
        return UserError(f"cannot write the run folder {self.out} ({exc.strerror or exc}): choose "
                         "another folder")

    def __enter__(self):
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from None
        self.lock = RunLock(self.out)
        self.lock.__enter__()
        try:
            if self.check is not None:
                self.check()
            remove_leftover_parts(self.out, self.log)
            self.log.to_file(self.out / "log.txt")
        except OSError as exc:
            self.lock.__exit__(None, None, None)
            raise self._unwritable(exc) from None
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        self.lock.__exit__(*exc)
        return False
