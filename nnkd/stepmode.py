"""Which step mode a NumPy training step runs in: chosen by measurement, once per machine.

A step on several threads can run in two modes (:mod:`nnkd.parallel`):

- ``"split"``: every large product cut by output columns over nnkd's own threads, OpenBLAS
  at one thread; large elementwise passes cut by rows;
- ``"whole"``: every operation whole, the products on OpenBLAS's own threads.

Which is faster depends on the CPU and its BLAS kernels: the split won on the AMD EPYC Zen 5
measured in docs/speed.md and lost on a 2-core Intel Xeon with AVX-512 kernels.  So the first
training on a machine times both on the `fast` preset's two networks at batch 100 (a few
seconds, interleaved, medians) and keeps the faster in the user cache folder
(:func:`cache_file`), keyed by the CPU model, the BLAS, its kernels and the thread count.
``NNKD_STEP_MODE`` (``split`` or ``whole``) forces a mode; one thread is always ``whole``.

The products' rounding depends on the mode and the thread count, so both are part of what
makes a run reproducible: the run's header names them and each checkpoint records them.
"""

import json
import os
import time

from . import files
from .errors import UserError
from .install import user_cache_folder
from .parallel import MODES, blas_config, blas_kernels, cpu_model, step_threads

ENV = "NNKD_STEP_MODE"
ROUNDS, STEPS = 7, 6     # calibration: interleaved rounds, steps timed per mode and round
BUDGET = 4.0             # seconds after which calibration stops at the end of a round
CALIBRATION_MODELS = ("student", "teacher")  # the `fast` preset's, at batch 100

ONE_THREAD, FORCED = "one thread", f"set by {ENV}"
MEASURED, MEASURED_EARLIER = "measured the faster here", "measured the faster here earlier"

_chosen = {}  # machine key -> (mode, how it was chosen), for this process


def cache_file():
    """The step-mode cache: ``step-mode.json`` in nnkd's user cache folder
    (:func:`nnkd.install.user_cache_folder`), or None without a home folder."""
    root = user_cache_folder()
    return root / "step-mode.json" if root is not None else None


def machine_key(threads):
    """What the choice depends on: the CPU model, the BLAS build, its kernels, the threads."""
    return f"{cpu_model()} | {blas_config() or 'BLAS unknown'} | {blas_kernels() or 'kernels unknown'} " \
           f"| {threads} threads"


def step_mode(backend, threads=None, calibrate=None):
    """``(mode, how)``: the mode a step on ``threads`` threads (default
    :func:`~nnkd.parallel.step_threads`) runs in, and how it was chosen (:data:`ONE_THREAD`,
    :data:`FORCED`, :data:`MEASURED` or :data:`MEASURED_EARLIER`).  ``calibrate(threads)``
    returns ``{mode: seconds}`` when a measurement is needed
    (:func:`nnkd.train.calibrate_modes`, which :func:`nnkd.train.machine_step_mode` passes)."""
    threads = step_threads(backend) if threads is None else threads
    if backend.is_gpu or threads < 2:
        return "whole", ONE_THREAD
    forced = os.environ.get(ENV)
    if forced:
        if forced not in MODES:
            raise UserError(f"{ENV}={forced!r}: give one of {', '.join(MODES)}, or unset it to let nnkd "
                            "measure which is faster on this machine")
        return forced, FORCED
    key = machine_key(threads)
    if key not in _chosen:
        _chosen[key] = _cached(key) or _measured(key, threads, calibrate)
    return _chosen[key]


def known_mode(threads):
    """The mode measured earlier on this machine for ``threads`` threads (the cache), or None."""
    return (_cached(machine_key(threads)) or (None,))[0]


def _cached(key):
    try:
        mode = json.loads(cache_file().read_text()).get(key, {}).get("mode")
    except (OSError, ValueError, AttributeError):
        return None
    return (mode, MEASURED_EARLIER) if mode in MODES else None


def _measured(key, threads, calibrate):
    seconds = calibrate(threads)
    mode = min(MODES, key=lambda m: seconds[m])
    try:
        path = cache_file()
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        known = known if isinstance(known, dict) else {}
        known[key] = {"mode": mode, "seconds": {m: round(seconds[m], 6) for m in MODES},
                      "when": time.strftime("%Y-%m-%d %H:%M")}
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_text(path, json.dumps(known, indent=1))
    except (OSError, AttributeError):
        pass  # an unwritable cache, or none: measured again by the next run
    return mode, MEASURED


def describe(mode, how, threads):
    """The run header's words for a step's threads and mode."""
    if threads < 2:
        return "steps on 1 thread"
    return f"steps on {threads} threads in {mode} mode, {how}"
