"""The array backend: NumPy on the CPU (default) or CuPy on an NVIDIA GPU.

This is the only module that imports CuPy.  Everything else receives a
:class:`Backend` and uses ``backend.xp`` (the array module) the way Chainer
and CuPy's guide write CPU/GPU-agnostic code.  Data crosses between host and
device only at the edges: :meth:`Backend.asarray` on the way in,
:meth:`Backend.to_host` on the way out (metrics, checkpoints).
"""

import contextlib
import ctypes
import platform
import sys

import numpy as np

from .errors import UserError
from .install import extra_hint

NAMES = ("numpy", "cupy")


class Backend:
    """An array module plus the few things the training code needs from it.

    Attributes:
        name: ``"numpy"`` or ``"cupy"``.
        xp: the array module (``numpy`` or ``cupy``).
    """

    def __init__(self, name, xp):
        self.name = name
        self.xp = xp

    def __repr__(self):
        return f"Backend({self.name!r})"

    @property
    def is_gpu(self):
        return self.name == "cupy"

    def asarray(self, a, dtype=None):
        """Host (or device) array -> array on this backend."""
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a):
        """Array on this backend -> NumPy array (copies from the GPU)."""
        return a.get() if self.is_gpu else np.asarray(a)

    def synchronize(self):
        """Wait for queued device work (a no-op on NumPy); call before reading a clock."""
        if self.is_gpu:
            self.xp.cuda.get_current_stream().synchronize()

    def rng(self, seed):
        """A seeded random generator that lives where the arrays live.

        ``seed`` may be an int or a sequence of ints (e.g. ``[seed, epoch]``):
        training derives one generator per epoch so that resuming at an epoch
        boundary needs no generator state.
        """
        if self.is_gpu:
            # CuPy's Generator takes one int; fold the sequence through NumPy's SeedSequence.
            s = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0] >> 1)
            return self.xp.random.default_rng(s)
        return np.random.default_rng(seed)

    def free_memory(self):
        """(free, total) device memory in bytes, or None on NumPy."""
        if self.is_gpu:
            return self.xp.cuda.runtime.memGetInfo()
        return None

    def is_out_of_memory(self, exc):
        """Whether ``exc`` is CuPy's device out-of-memory error."""
        return self.is_gpu and isinstance(exc, self.xp.cuda.memory.OutOfMemoryError)

    def describe(self):
        """One line naming the device and library version, for logs and benchmark tables."""
        if self.is_gpu:
            dev = self.xp.cuda.Device()
            props = self.xp.cuda.runtime.getDeviceProperties(dev.id)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            return f"cupy {self.xp.__version__} on {name}"
        return f"numpy {np.__version__} on CPU"


def array_module(a):
    """``numpy`` or ``cupy``, whichever ``a`` belongs to (Chainer's ``get_array_module``).

    A CuPy array can only exist once ``cupy`` was imported by :func:`get_backend`,
    so this never imports CuPy itself.
    """
    if type(a).__module__.startswith("cupy"):
        return sys.modules["cupy"]
    return np


_FTZ_DAZ = 0x8040  # MXCSR: flush-to-zero (bit 15) and denormals-are-zero (bit 6)
_MXCSR_AT = 28     # glibc's x86-64 fenv_t: the 28-byte x87 environment, then MXCSR


def _libm():
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        return ctypes.CDLL("libm.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def flush_subnormals():
    """Within the block, float arithmetic on this thread treats subnormal inputs as zero and
    flushes subnormal results to zero; yields whether it could.

    Why: a unit that stops receiving gradient (a dead ReLU, a border pixel that jitter
    rarely reaches) has its velocity decay geometrically through the subnormal range
    (below 1.2e-38 in float32), and many x86 CPUs take a microcode assist on every
    subnormal operand, which can make a step many times slower (docs/speed.md).
    Values that small move no weight, so nothing is lost.  On x86-64 Linux this sets the
    MXCSR bits FTZ and DAZ through glibc's fegetenv/fesetenv and restores them on exit;
    elsewhere it does nothing.  It covers NumPy's elementwise work, which runs on the
    calling thread (the optimizer, max-norm, masks), not BLAS's own threads.
    """
    libm = _libm()
    env = (ctypes.c_ubyte * 32)()
    if libm is None or libm.fegetenv(ctypes.byref(env)) != 0:
        yield False
        return
    before = _set_mxcsr_bits(libm, env, _FTZ_DAZ)
    try:
        yield True
    finally:
        libm.fegetenv(ctypes.byref(env))  # keeps the exception flags raised meanwhile
        _set_mxcsr_bits(libm, env, before & _FTZ_DAZ)


def _set_mxcsr_bits(libm, env, bits):
    """Set MXCSR's FTZ/DAZ bits in ``env`` (a fetched fenv_t) to ``bits`` and load it; returns
    the MXCSR value it had."""
    old = int.from_bytes(bytes(env[_MXCSR_AT:_MXCSR_AT + 4]), "little")
    env[_MXCSR_AT:_MXCSR_AT + 4] = list((old & ~_FTZ_DAZ | bits).to_bytes(4, "little"))
    libm.fesetenv(ctypes.byref(env))
    return old


def dropout_uniforms(rng, shape, xp):
    """The random draws behind a dropout mask of ``shape``: float32 uniforms on CuPy; on
    NumPy 16-bit integers cut from the generator's raw 64-bit output, about three times
    cheaper than float32 uniforms (measured in docs/speed.md), which resolves the
    keep probability to 1/65536."""
    if xp is not np:
        return rng.random(shape, dtype=xp.float32)
    size = int(np.prod(shape))
    return rng.bit_generator.random_raw((size + 3) // 4).view(np.uint16)[:size].reshape(shape)


def mask_from_uniforms(u, keep, out, scale=None):
    """``out = (u < keep) * scale`` for draws ``u`` from :func:`dropout_uniforms` (any slice of
    them, with the matching slice of ``out``); ``scale`` defaults to ``1 / keep`` (inverted
    dropout)."""
    xp = array_module(out)
    threshold = int(round(keep * 65536)) if u.dtype == np.uint16 else keep
    scale = out.dtype.type(1.0 / keep if scale is None else scale)
    if xp is not np:
        return xp.multiply(u < threshold, scale, out=out)
    np.less(u, threshold, out=out)  # 0 or 1, then times scale: the same numbers, no boolean temporary
    out *= scale
    return out


def fused(body):
    """``body`` (elementwise operations on arrays and scalars, ending in at most one reduction;
    results returned or written in place into its arguments) as one CuPy kernel,
    ``cupy.fuse(body)``, made at the first call; for CuPy arrays only (the NumPy path keeps its own
    operations, whose rounding the docs' figures rest on).  ``__wrapped__`` is ``body``
    (``tests/cupy_standin/trace_fused.py`` has CuPy trace it without a GPU)."""
    kernel = []

    def call(*args):
        if not kernel:
            kernel.append(sys.modules["cupy"].fuse(kernel_name=body.__name__)(body))
        return kernel[0](*args)
    call.__name__, call.__wrapped__ = body.__name__, body
    return call


def get_backend(name="numpy"):
    """Return the :class:`Backend` called ``name`` (a :class:`Backend` given is returned as it is).

    Raises :class:`UserError` with one sentence naming the cause and the fix
    when the name is unknown, CuPy is not installed, or CuPy finds no usable
    CUDA device (for example ``cudaErrorInsufficientDriver`` on a machine with
    the wheels but no GPU driver).
    """
    if isinstance(name, Backend):
        return name
    if not isinstance(name, str):
        raise UserError(f"backend is a {type(name).__name__}: give get_backend('numpy') or its "
                        "name, 'numpy'")
    if name == "numpy":
        return Backend("numpy", np)
    if name != "cupy":
        raise UserError(f"unknown backend {name!r}: expected one of {', '.join(NAMES)}")
    try:
        import cupy
    except ImportError as exc:
        raise UserError(
            f"`backend` cupy needs CuPy, which is not installed ({exc}): "
            f"install it with `{extra_hint('cupy')}` (CUDA 12) or `{extra_hint('cupy-cuda13')}` (CUDA 13), "
            "or use `backend` numpy") from None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device found")
        # A tiny kernel proves the driver, runtime and compiler all work.
        (cupy.arange(4, dtype=cupy.float32) * 2).sum().item()
    except Exception as exc:  # CUDARuntimeError, CompileException, ...
        cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"`backend` cupy: CuPy is installed but no usable CUDA GPU was found ({cause}); "
            "run on a machine with an NVIDIA GPU and driver, or use `backend` numpy") from None
    return Backend("cupy", cupy)
