"""The stand-in's own state, which real CuPy does not have: the names CuPy serves, the
counters, the simulated card's memory, and the hooks tests use.

Counters (:data:`counts`):
  - ``launches``: kernels (each elementwise operation, reduction, matrix product, copy, fill,
    random draw and fused kernel counts 1; allocation, views and reshapes count 0);
  - ``syncs``: host synchronizations (``.get()``, ``.item()``, ``int``/``float``/``bool`` of a
    device array, ``asnumpy``, ``synchronize``, anything that must know a device value);
  - ``d2h``: device-to-host transfers (each of those that returns data);
  - ``h2d``: host-to-device copies (``asarray``/``array`` of host data, a host index).
"""

import json
import weakref
from pathlib import Path

NAMES = json.loads((Path(__file__).resolve().parent.parent / "cupy_names.json").read_text())
DEVICE_NAME = "CuPy stand-in (NumPy on the CPU)"
TOTAL_MEMORY = 80 * 2 ** 30  # the simulated card's memory, an H100's 80 GiB


class Counts:
    FIELDS = ("launches", "syncs", "d2h", "h2d")

    def __init__(self):
        self.reset()

    def reset(self):
        for f in self.FIELDS:
            setattr(self, f, 0)

    def snapshot(self):
        return {f: getattr(self, f) for f in self.FIELDS}


counts = Counts()
fusing = 0           # > 0 while a fused kernel's body runs (its operations count as one launch)
fused_reductions = 0  # reductions in the fused kernel that runs
allocated = 0        # bytes held by live device arrays
_fail_next = False


def check_name(namespace, name):
    """Refuse, at import, to serve a name the installed CuPy lacks."""
    if name not in NAMES[namespace]:
        raise AssertionError(f"the stand-in serves {namespace}.{name}, which CuPy "
                             f"{NAMES['version']} lacks")


def missing(namespace, name):
    """The AttributeError for a name the stand-in does not serve, saying whether CuPy has it."""
    where = "cupy" if namespace == "cupy" else f"cupy.{namespace}"
    if name in NAMES[namespace]:
        return AttributeError(f"{where}.{name} exists in CuPy but the CuPy stand-in does not "
                              f"implement it: add it to tests/cupy_standin")
    return AttributeError(f"module '{where}' has no attribute '{name}' (CuPy "
                          f"{NAMES['version']} has no such name)")


def launch(n=1):
    if not fusing:
        counts.launches += n


def reduce_in_fusion(name):
    """A reduction: in a fused kernel, one at most (CuPy fuses elementwise work and one reduction)."""
    global fused_reductions
    if fusing:
        fused_reductions += 1
        if fused_reductions > 1:
            raise TypeError(f"a second reduction (cupy.{name}) inside a fused kernel: cupy.fuse "
                            "makes one kernel of elementwise work and at most one reduction")


def sync(what):
    """A host synchronization; refused inside a fused kernel, as a kernel cannot wait on the host."""
    if fusing:
        raise TypeError(f"{what} inside a fused kernel: a kernel cannot synchronize with the host")
    counts.syncs += 1


def fail_next_allocation():
    """Make the next device allocation raise ``cupy.cuda.memory.OutOfMemoryError``."""
    global _fail_next
    _fail_next = True


def free_memory():
    return TOTAL_MEMORY - allocated


def allocate(nbytes):
    """Check an allocation of ``nbytes`` against the simulated card (before it is made)."""
    global _fail_next
    from .cuda.memory import OutOfMemoryError
    if _fail_next or nbytes > free_memory():
        _fail_next = False
        raise OutOfMemoryError(nbytes, allocated)


def track(a):
    """Count a freshly allocated host buffer ``a`` (standing for device memory) until it dies."""
    global allocated
    allocated += a.nbytes
    weakref.finalize(a, _release, a.nbytes)


def _release(nbytes):
    global allocated
    allocated -= nbytes
