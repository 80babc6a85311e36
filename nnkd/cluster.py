"""A sweep's cells as tasks on a Dask distributed cluster (the ``dask`` extra).

:class:`SweepCluster` connects to a running scheduler (``dask scheduler``, with workers
started by ``dask worker ADDRESS``), or starts a ``LocalCluster`` of single-threaded worker
processes on this machine.  Workers read and write the sweep folder themselves (the
teacher's logits, each cell's checkpoints and ``summary.json``), so the folder must be on a
filesystem that every worker sees at the same path: each worker is asked before any cell is
submitted.  Each worker loads the dataset from its own cache and checks its checksum.

A cell is idempotent: it resumes from its own checkpoint, so a task that Dask runs again
after its worker died loses at most the epoch in progress (the scheduler reschedules the
tasks of a lost worker; a task that raised is retried ``RETRIES`` times).  A cell that fails
for a reason the user can fix (a diverged loss, a damaged file) is not retried: its
:class:`~nnkd.errors.UserError` comes back as a value and ends the sweep.  When the sweep
ends early (Ctrl-C, SIGTERM, a failed cell) the client writes ``.stop`` into the folder; every
running cell sees it within a second and stops after its current step, keeping its last
checkpoint; then the client is closed and a local cluster shut down.
"""

import logging
import os
import signal
import threading
import time
import uuid
from concurrent.futures import CancelledError
from pathlib import Path

from .errors import Interrupted, TrainingDiverged, UserError
from .install import extra_hint
from .tables import count
from .version import __version__

RETRIES = 2                 # more tries of a task that raised (a worker's lost ones: the scheduler's)
CONNECT_TIMEOUT = "5s"      # to reach a scheduler
WAIT_FOR_WORKERS_S = 60     # for a first worker to join a scheduler that has none
STOP_WAIT_S = 15            # for running cells to stop when the sweep ends early
STOP_FILE = ".stop"
# Dask's defaults wake a worker's event loop every 10 ms to sample the running task's stack
# (the profiler) and every 20 ms to time itself, and set MALLOC_TRIM_THRESHOLD_: each wake-up
# takes the GIL from the training loop; together they cost a cell 6% of its speed on an idle
# 2-core machine and 11% beside two other runs (docs/speed.md, "Sweeps on Dask").  A
# local cluster's workers run without them; `dask worker`s can be told so by environment.
QUIET_WORKERS = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                 "distributed.admin.system-monitor.interval": "5s"}
MARKER = "sweep.json"       # a worker that sees this file sees the sweep folder


def wanted(grid):
    """Whether a :class:`~nnkd.config.SweepGrid` runs on Dask (else in this process)."""
    return grid.jobs > 1 or bool(grid.scheduler)


def require_dask():
    try:
        import distributed  # noqa: F401
        import threadpoolctl  # noqa: F401
    except ImportError:
        raise UserError("a sweep with `sweep.jobs` above 1 or a `sweep.scheduler` runs on Dask, which "
                        f"is not installed: {extra_hint('dask')}") from None


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _probe(marker):
    """Run on each worker: does it see the sweep folder, how many CPUs, which nnkd."""
    return {"sees": os.path.exists(marker), "cpus": os.cpu_count() or 1, "nnkd": __version__}


class _FileStop:
    """A :class:`~nnkd.train.StopFlag` set once ``path`` exists (looked for at most once a second)."""

    def __init__(self, path):
        self.path, self.signal, self.next = path, None, 0.0

    def __bool__(self):
        if self.signal is None and time.monotonic() >= self.next:
            self.next = time.monotonic() + 1.0
            if os.path.exists(self.path):
                self.signal = "the sweep's client"
        return self.signal is not None


def _task(fn, job, folder, threads):
    """One cell on a worker: ``fn(job, stop=, where=)`` with the worker's share of BLAS threads.
    Returns ``{"summary": ...}``, or ``{"error": (class, message)}`` for a UserError."""
    from distributed import get_worker
    from threadpoolctl import threadpool_limits
    address = get_worker().address
    n = threads.get(address, 1)
    where = f"Dask worker {address} (pid {os.getpid()}, {count(n, 'BLAS thread')})"
    try:
        if not os.path.exists(os.path.join(folder, MARKER)):
            raise UserError(f"{where} cannot see the sweep folder {folder}: it must be on a filesystem "
                            "that every worker shares, at the same path")
        with threadpool_limits(limits=n):
            return {"summary": fn(job, stop=_FileStop(os.path.join(folder, STOP_FILE)), where=where)}
    except UserError as exc:  # sent as a value: SettingError and the like do not unpickle
        kind = next(c for c in (TrainingDiverged, Interrupted, UserError) if isinstance(exc, c))
        return {"error": (kind, str(exc))}


class SweepCluster:
    """``with SweepCluster(scheduler, jobs, log) as c: c.run(fn, jobs, folder, report)``.

    ``scheduler``: the address of a running Dask scheduler; None starts a ``LocalCluster``
    of ``jobs`` worker processes with one thread each, shut down on exit.
    """

    def __init__(self, scheduler=None, jobs=2, log=print):
        self.scheduler, self.jobs, self.log = scheduler, jobs, log
        self.client = self.local = self.config = None
        self.threads = {}

    def __enter__(self):
        require_dask()
        # A lost scheduler is said in one line (run), not by the client's log with tracebacks.
        self.client_log = logging.getLogger("distributed.client")
        self.client_log_level = self.client_log.level
        self.client_log.setLevel(logging.CRITICAL)
        try:
            self._open()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open(self):
        from distributed import Client, LocalCluster
        if self.scheduler:
            scheme = self.scheduler.partition("://")[0] if "://" in self.scheduler else "tcp"
            if scheme != "tcp":
                raise UserError(f"the Dask scheduler address {self.scheduler} uses {scheme}://, which nnkd "
                                "does not support: give tcp://HOST:PORT")
            try:
                self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {self.scheduler} ({_one_line(exc)}): "
                                "is it running? start one with: dask scheduler") from None
            return
        # A terminal's Ctrl-C reaches the workers too: they ignore it (dask_setup below) and
        # this process stops the cells.  The settings stay while the cluster lives: a worker
        # restarted after a crash reads them again.
        import dask
        environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
                   if k != "MALLOC_TRIM_THRESHOLD_"}
        self.config = dask.config.set(QUIET_WORKERS, **{"distributed.nanny.pre-spawn-environ": environ})
        self.local = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=True,
                                  dashboard_address=None, memory_limit=0, preload=[__name__])
        self.client = Client(self.local, set_as_default=False)

    def __exit__(self, *exc):
        try:
            if self.client is not None:
                self.client.close()
        finally:
            try:
                if self.local is not None:
                    self.local.close()
            finally:
                self.client_log.setLevel(self.client_log_level)
                if self.config is not None:
                    self.config.__exit__(None, None, None)
                    self.config = None
        return False

    def describe(self):
        n = len(self.client.nthreads())
        if self.local is not None:
            return f"a local Dask cluster of {n} single-threaded worker processes"
        return f"the Dask cluster at {self.scheduler} ({count(n, 'worker')} now)"

    def check_workers(self, folder):
        """Every worker must see ``folder`` and run this nnkd; sets each one's BLAS threads
        (the CPUs of its machine shared among the worker threads there)."""
        client = self.client
        if not client.nthreads():
            self.log(f"waiting up to {WAIT_FOR_WORKERS_S} s for a worker to join {self.scheduler}")
            try:
                client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
            except (TimeoutError, OSError):
                raise UserError(f"no Dask worker joined the scheduler at {self.scheduler} within "
                                f"{WAIT_FOR_WORKERS_S} s: start some with: dask worker {self.scheduler}") from None
        try:
            seen = client.run(_probe, str(Path(folder) / MARKER))
        except Exception as exc:  # e.g. a worker without nnkd cannot unpickle _probe
            raise UserError(f"the Dask workers cannot run nnkd ({type(exc).__name__}: {_one_line(exc)}): "
                            f"install it on every worker: {extra_hint('dask')}") from None
        blind = sorted(a for a, p in seen.items() if not p["sees"])
        if blind:
            raise UserError(f"the sweep folder {folder} is not visible to the Dask worker(s) "
                            f"{', '.join(blind)}: a sweep's folder must be on a filesystem that every "
                            "worker shares, at the same path")
        other = sorted(f"{a} ({p['nnkd']})" for a, p in seen.items() if p["nnkd"] != __version__)
        if other:
            raise UserError(f"the Dask worker(s) {', '.join(other)} run another nnkd than this one "
                            f"({__version__}): install the same on every worker")
        from distributed.comm import get_address_host
        nthreads = client.nthreads()
        host = {a: get_address_host(a) for a in seen}
        slots = {}
        for a in seen:
            slots[host[a]] = slots.get(host[a], 0) + nthreads.get(a, 1)
        self.threads = {a: max(1, p["cpus"] // slots[host[a]]) for a, p in seen.items()}

    def run(self, fn, jobs, folder, report):
        """Run ``fn(job, stop=, where=)`` for every job as a task; ``report(summary)`` as each
        finishes.  Raises a cell's UserError, or :class:`Interrupted` on Ctrl-C or SIGTERM."""
        from distributed import KilledWorker, as_completed
        folder = Path(folder)
        stop = folder / STOP_FILE
        stop.unlink(missing_ok=True)
        self.check_workers(folder)
        tag = uuid.uuid4().hex[:8]
        futures = [self.client.submit(_task, fn, job, str(folder), self.threads, retries=RETRIES,
                                      key=f"nnkd-{job['name']}-{tag}", pure=False) for job in jobs]
        on_main = threading.current_thread() is threading.main_thread()
        stopped = []

        def on_signal(signum, frame):
            # Not KeyboardInterrupt: Dask's waiting code may swallow it.  The flag ends the loop
            # at the next result, and the file makes the running cells stop (and return) within
            # a second, so a result is never far off.
            stopped.append(signal.Signals(signum).name)
            try:
                stop.touch()
            except OSError:
                pass
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if on_main else {}
        done = 0
        try:
            for future in as_completed(futures, loop=self.client.loop):
                out = future.result()
                if stopped:
                    raise KeyboardInterrupt
                if "error" in out:
                    kind, message = out["error"]
                    raise kind(message)
                report(out["summary"])
                done += 1
        except CancelledError as exc:  # not by us: we cancel only after this loop
            raise UserError(f"lost the Dask scheduler {self.scheduler or '(local)'} ({_one_line(exc)}); "
                            "finished cells and every cell's last checkpoint are kept: run the same "
                            "command again once it is back") from None
        except KilledWorker as exc:
            raise UserError(f"a cell's Dask workers died each time it ran ({_one_line(exc)}): out of "
                            "memory? the finished cells are kept") from None
        except KeyboardInterrupt:
            self.log("stopping: each running cell stops after its current step")
            raise Interrupted("sweep stopped; finished cells and every cell's last checkpoint are "
                              "kept") from None
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            if done < len(futures):
                self._stop(stop, futures)

    def _stop(self, stop, futures):
        """Stop the cells still running (they see ``stop``), and drop those not started."""
        try:  # a file: it reaches the workers even when the scheduler is gone
            stop.touch()
        except OSError:
            pass
        pending = [f for f in futures if not f.done()]
        try:
            busy = {k for keys in self.client.processing().values() for k in keys}
            self.client.cancel([f for f in pending if f.key not in busy])
            deadline = time.monotonic() + STOP_WAIT_S
            while time.monotonic() < deadline and not all(f.done() for f in pending if f.key in busy):
                time.sleep(0.1)
            self.client.cancel(pending)
        except Exception:  # the scheduler is gone: nothing more to cancel
            pass


def dask_setup(worker):
    """Preload of a local cluster's workers (``preload=["nnkd.cluster"]``): ignore SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
