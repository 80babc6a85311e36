"""How much memory a run needs, and whether this machine has it: checked before any work."""

import os

FLOAT32 = 4


def available_memory():
    """Bytes of memory this process could still use (MemAvailable on Linux), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def parameters(sizes):
    """Weights and biases of dense layers of widths ``sizes``."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def training_bytes(sizes, batch_size):
    """Training a network of layer widths ``sizes``: parameters, their gradients, two optimizer
    buffers and scratch, plus the activations of a batch (evaluation runs batches of 10,000)."""
    batch = max(batch_size, 10000)
    return FLOAT32 * (4 * parameters(sizes) + 4 * batch * sum(sizes))


def logits_bytes(shifts, n_images, n_classes):
    """The teacher's logits on every shift of every transfer image."""
    return FLOAT32 * shifts * n_images * n_classes


def _gib(n):
    return f"{n / 2**30:,.1f} GiB" if n < 2**40 else f"{n / 2**40:,.0f} TiB"


def shortfall(need, what):
    """A sentence when ``need`` bytes clearly exceed what this machine has, else None."""
    have = available_memory()
    if have is not None and need > have:
        return (f"needs about {_gib(need)} of memory for {what}; this machine has {_gib(have)} "
                "available: choose smaller settings")
    return None
