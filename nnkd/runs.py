"""Run folders: the settings file, the log, and one process at a time.

A run folder (see :mod:`nnkd.pipeline`) starts with its settings file
(``run.json``, or ``sweep.json`` for a sweep), written from the validated
:class:`~nnkd.config.RunSpec` before any training, and read back by resume.
"""

import json
from pathlib import Path

from .config import RunSpec
from .errors import UserError
from .files import RunLock, read_json, write_text


class Log:
    """Print a line (unless ``echo`` is false) and append it to a log file.

    Lines logged before :meth:`to_file` (e.g. while the data is fetched, before the
    run folder exists) are kept and written first when the file is set.
    """

    def __init__(self, path=None, echo=True):
        self.path, self.echo = path, echo
        self.pending = []

    def __call__(self, line):
        if self.echo:
            print(line, flush=True)
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        else:
            self.pending.append(line)

    def to_file(self, path):
        self.path = Path(path)
        with open(self.path, "a") as f:
            f.writelines(line + "\n" for line in self.pending)
        self.pending = []


def is_empty(folder):
    folder = Path(folder)
    return not folder.exists() or not any(folder.iterdir())


def write_spec(path, spec, **extra):
    write_text(path, json.dumps(dict(spec.to_dict(), **extra), indent=1))


def read_spec(path):
    """The :class:`RunSpec` saved in ``path`` (run.json or sweep.json); not yet validated."""
    return RunSpec.from_dict(read_json(path, "run settings"), where=str(path))


class RunFolder:
    """``with RunFolder(out, log):`` creates the folder, takes its lock (one process per
    run folder) and sends the log to ``log.txt``; the lock is released on exit."""

    def __init__(self, out, log):
        self.out, self.log = Path(out), log
        self.lock = None

    def __enter__(self):
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot write the run folder {self.out} ({exc.strerror or exc}): choose "
                            "another folder") from None
        self.lock = RunLock(self.out)
        self.lock.__enter__()
        try:
            self.log.to_file(self.out / "log.txt")
        except OSError as exc:
            self.lock.__exit__(None, None, None)
            raise UserError(f"cannot write the run folder {self.out} ({exc.strerror or exc}): choose "
                            "another folder") from None
        return self

    def __exit__(self, *exc):
        self.lock.__exit__(*exc)
        return False
