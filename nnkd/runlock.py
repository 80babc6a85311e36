"""One process per run folder: :class:`RunLock`, an exclusive ``flock`` on ``FOLDER/.lock``."""

import json
import os
import socket
import time
from pathlib import Path

from .errors import UserError
from .files import why

try:
    import fcntl
except ImportError:  # Windows: no flock; RunLock is then a no-op (see there)
    fcntl = None


class RunLock:
    """``with RunLock(folder):`` -- this process is the only one working in ``folder``.

    Takes an exclusive ``flock`` on ``folder/.lock`` (creating the folder if needed) and
    writes the holder's PID, start time and host into it.  A second holder, in another
    process or in this one, gets a :class:`UserError` naming the first one's PID.  The
    kernel releases a flock when its process dies, so a lock file left by ``kill -9`` is
    simply taken over (with one line to ``log`` when given).  Released on exit; the
    file stays, emptied.
    """

    NAME = ".lock"

    def __init__(self, folder, log=None):
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self.log = log
        self.fd = None

    def _unwritable(self, exc):
        return UserError(f"cannot write the run folder {self.folder}: {why(exc)}; choose a folder "
                         "you can write to")

    def _holder(self, fd):
        """The holder's record, as written by :meth:`acquire` (None when unreadable)."""
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
            return info if isinstance(info, dict) and type(info.get("pid")) is int else None
        except (OSError, ValueError):
            return None

    def acquire(self):
        if fcntl is None:
            # No flock on this system (Windows): the folder is not protected against a second
            # process; nnkd's atomic writes still keep every file whole.
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not os.access(self.folder, os.W_OK | os.X_OK):
                os.close(fd)
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = None
                for _ in range(20):  # the holder writes its record just after taking the lock
                    holder = self._holder(fd)
                    if holder:
                        break
                    time.sleep(0.05)
                who = (f"process {holder['pid']} (started {holder.get('started', 'at an unknown time')}"
                       + (f", on {holder['host']}" if holder.get("host") not in (None, socket.gethostname())
                          else "") + ")") if holder else "another process"
                raise UserError(f"{self.folder} is in use by {who}: wait for it to finish or stop it; "
                                "one process per run folder") from None
            except OSError as exc:
                raise UserError(f"cannot lock the run folder {self.folder}: {why(exc)}; use a folder on "
                                "a local disk") from None
            stale = self._holder(fd)
            if stale and self.log:
                self.log(f"{self.path}: taking over the lock of process {stale['pid']}, which has ended")
            record = json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "host": socket.gethostname()}).encode() + b"\n"
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, record, 0)
            except OSError as exc:
                raise self._unwritable(exc) from None
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def release(self):
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # while still held: a new holder's record is never erased
        except OSError:
            pass
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
