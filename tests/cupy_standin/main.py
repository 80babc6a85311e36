"""nnkd's command line with the CuPy stand-in as ``cupy`` (for CI on machines without a GPU)::

    python3 -m tests.cupy_standin.main distill --backend cupy --preset smoke

It prints the stand-in's counts at the end, to standard error."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cupy  # noqa: E402  (the stand-in, from the path above)
from nnkd.cli import main  # noqa: E402

if __name__ == "__main__":
    try:
        status = main()
    finally:
        c = cupy._standin.counts
        print(f"CuPy stand-in: {c.launches} kernel launches, {c.syncs} host syncs, "
              f"{c.d2h} device-to-host and {c.h2d} host-to-device transfers", file=sys.stderr)
    sys.exit(status)
