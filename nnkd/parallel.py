"""Splitting the large array operations of a step over the CPU's cores (NumPy only).

NumPy runs elementwise work (the optimizer, masks, ReLU) on the calling thread
alone, and OpenBLAS's own threads split a product with 100 rows less well than
cutting it by output columns (docs/speed.md).  So while training on NumPy,
large operations are cut into parts, one per core, that run on that many
threads with OpenBLAS held at one thread; NumPy releases the GIL inside
products and ufunc loops, so the parts run at the same time.  Products are cut
by output columns; elementwise passes by rows (contiguous blocks: a pass over
column slices was measured twice as slow as the whole pass), and only when the
array is large enough to pay for the hand-off (about 15 us).

A part writes only its own slice and nothing else touches it meanwhile, so the
layers need no locks.  The results depend on the number of parts only through
the products' rounding (a product cut by columns need not round like the whole
one): a run is bit-for-bit reproducible for a given number of cores.

:class:`Serial` runs every operation whole (``over(fn, n)`` is just ``fn(slice(None))``), the
products on the BLAS's own threads: step mode ``"whole"``, which on some CPUs is faster than
the parts (:mod:`nnkd.stepmode` measures which, once per machine).  :data:`SERIAL` is its
one-thread instance (CuPy, one core, or a BLAS whose threads cannot be set).
"""

import contextlib
import contextvars
import ctypes
import functools
import os
import platform
import threading

from .backend import flush_subnormals

MIN_WIDTH = 128          # a range shorter than this is not cut
MIN_ELEMENTWISE = 2 ** 18  # elements below which an elementwise pass is not cut (1 MB of float32)
MAX_THREADS = 8          # measured on 2 cores only; more parts mean smaller products
MODES = ("split", "whole")  # how a step uses its threads (nnkd.stepmode chooses)


def large(a):
    """Whether an elementwise pass over ``a`` is worth cutting into parts."""
    return a.size >= MIN_ELEMENTWISE


class Serial:
    """Every operation whole, called on the calling thread: the products on the BLAS's own
    ``n`` threads (step mode ``"whole"``), the elementwise passes on the calling thread."""

    mode = "whole"

    def __init__(self, n=1):
        self.n = n

    def over(self, fn, n, cut=True):
        fn(slice(None))


SERIAL = Serial()


class Workers:
    """``n`` threads (the caller is one of them) that run the parts of an operation.

    ``over(fn, n)`` calls ``fn(part)`` for each slice ``part`` of ``range(n)`` (the
    columns or rows of the arrays ``fn`` works on), concurrently, and returns when
    all are done; with ``cut=False`` or a short range it calls ``fn(slice(None))``.
    The first exception raised by a part is raised here.  The parts see the caller's
    context (NumPy's ``errstate``); the worker threads flush subnormals like
    the training thread.  Not re-entrant: one caller at a time.
    """

    mode = "split"

    def __init__(self, n):
        self.n = n
        self.closed = False
        self._parts = {}
        self._threads = [_Worker() for _ in range(n - 1)]
        for t in self._threads:
            t.start()

    def parts(self, n):
        """``self.n`` contiguous slices of ``range(n)`` of near-equal length, cut at multiples
        of 16 (whole 64-byte lines of float32 columns)."""
        if n not in self._parts:
            cuts = [min(n, round(n * i / self.n / 16) * 16) for i in range(self.n + 1)]
            cuts[-1] = n
            self._parts[n] = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
        return self._parts[n]

    def over(self, fn, n, cut=True):
        if not cut or n < MIN_WIDTH or self.closed:
            fn(slice(None))
            return
        first, *rest = self.parts(n)
        context = contextvars.copy_context()
        for worker, part in zip(self._threads, rest):
            worker.give(context, fn, part)
        try:
            fn(first)
        finally:
            errors = [e for e in (w.wait() for w in self._threads[:len(rest)]) if e is not None]
        if errors:
            raise errors[0]

    def close(self):
        """Stop the threads; from then on every operation runs whole on the calling thread."""
        self.closed = True
        for t in self._threads:
            t.give(None, None, None)
            t.join()


class _Worker(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True, name="nnkd-worker")
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task, self._error = None, None

    def give(self, context, fn, part):
        self._task = (context, fn, part)
        self._go.release()

    def wait(self):
        self._done.acquire()
        return self._error

    def run(self):
        with flush_subnormals():
            while True:
                self._go.acquire()
                context, fn, part = self._task
                if fn is None:
                    return
                self._error = None
                try:
                    context.run(fn, part)
                except BaseException as exc:  # handed to the caller by wait()
                    self._error = exc
                self._done.release()


def usable_cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def step_threads(backend):
    """How many threads a training step on ``backend`` runs on by default: the threads OpenBLAS
    may use now (all cores, unless ``OPENBLAS_NUM_THREADS`` or a sweep's worker limits it), at
    most the usable cores and :data:`MAX_THREADS`; 1 on CuPy or where OpenBLAS's threads cannot
    be set."""
    blas = _openblas() if backend.name == "numpy" else None
    return 1 if blas is None else min(blas[1](), usable_cores(), MAX_THREADS)


@contextlib.contextmanager
def cpu_workers(backend, n=None, mode="split"):
    """Within the block, a step on ``n`` threads (default :func:`step_threads`) in step
    ``mode``: ``"split"``, :class:`Workers` for ``n`` threads with OpenBLAS at one thread;
    ``"whole"``, ``Serial(n)`` with OpenBLAS at ``n`` threads; for one thread, :data:`SERIAL`
    with OpenBLAS at one thread.  OpenBLAS's thread count is restored on exit.  :data:`SERIAL`
    on CuPy or where OpenBLAS's threads cannot be set."""
    if mode not in MODES:
        raise ValueError(f"step mode must be one of {', '.join(MODES)}, got {mode!r}")
    blas = _openblas() if backend.name == "numpy" else None
    if blas is None:
        yield SERIAL
        return
    n = step_threads(backend) if n is None else n
    set_threads, get_threads = blas
    before = get_threads()
    set_threads(1 if mode == "split" else n)
    workers = Workers(n) if mode == "split" and n > 1 else Serial(n) if n > 1 else SERIAL
    try:
        yield workers
    finally:
        if isinstance(workers, Workers):
            workers.close()
        set_threads(before)


_SET = ("openblas_set_num_threads", "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")
_GET = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_")
_CORENAME = ("openblas_get_corename", "scipy_openblas_get_corename64_", "openblas_get_corename64_")
_CONFIG = ("openblas_get_config", "scipy_openblas_get_config64_", "openblas_get_config64_")
AVX512_KERNELS = ("SkylakeX", "Cooperlake", "SapphireRapids")  # OpenBLAS's core names


@functools.cache
def _openblas():
    """``(set_num_threads, get_num_threads)`` of the OpenBLAS that NumPy loaded, or None
    (another BLAS, or not Linux: the step then runs whole)."""
    lib = _openblas_library()
    found = [_function(lib, names) for names in (_SET, _GET)] if lib else [None]
    if None in found:
        return None
    set_threads, get_threads = found
    set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
    get_threads.argtypes, get_threads.restype = [], ctypes.c_int
    return set_threads, get_threads


def blas_kernels():
    """The name of the kernels NumPy's OpenBLAS runs (``"Haswell"``, ``"SkylakeX"``, ...), or None."""
    corename = _function(_openblas_library(), _CORENAME)
    if corename is None:
        return None
    corename.argtypes, corename.restype = [], ctypes.c_char_p
    return corename().decode(errors="replace").strip()


def blas_config():
    """OpenBLAS's own description of its build (version, target, kernels), or None."""
    config = _function(_openblas_library(), _CONFIG)
    if config is None:
        return None
    config.argtypes, config.restype = [], ctypes.c_char_p
    return config().decode(errors="replace").strip()


def cpu_model():
    """The CPU's model name with its family and model numbers from /proc/cpuinfo (``"AMD EPYC
    (family 26, model 2)"``), or what the platform module says."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not key.strip():
                    break  # the first processor's block is enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or "unknown CPU"
    numbers = ", ".join(f"{k.split()[-1]} {fields[k]}" for k in ("cpu family", "model") if k in fields)
    return fields["model name"] + (f" ({numbers})" if numbers else "")


def kernel_note():
    """One line for the log when ``OPENBLAS_CORETYPE`` holds OpenBLAS to kernels without
    AVX-512 on a CPU that has it (as this project's machine is set up), else None."""
    pinned, kernels = os.environ.get("OPENBLAS_CORETYPE"), blas_kernels()
    if not pinned or not kernels or kernels.lower() in (k.lower() for k in AVX512_KERNELS) \
            or not _cpu_has_avx512():
        return None
    return (f"note: OPENBLAS_CORETYPE={pinned} holds OpenBLAS to its {kernels} kernels on a CPU with "
            "AVX-512; unset it for OpenBLAS's own choice (products about twice as fast on the machine "
            "measured in docs/speed.md)")


def _cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


@functools.cache
def _openblas_library():
    """The OpenBLAS library NumPy loaded (``ctypes.CDLL``), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths, key=lambda p: "numpy" not in p):  # NumPy's own first (SciPy may bring another)
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if _function(lib, _SET) is not None:
            return lib
    return None


def _function(lib, names):
    """The first of ``names`` that ``lib`` exports (None if none, or no lib)."""
    return next((getattr(lib, name) for name in names if hasattr(lib, name)), None) if lib else None
