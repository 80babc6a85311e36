"""The names the installed CuPy serves, the list the stand-in checks every name it serves
against (``tests/cupy_standin/cupy_names.json``).  Run from the repository root with the real
``cupy`` importable (the ``cupy-cuda12x`` wheel imports without a GPU)::

    python3 -m tests.cupy_standin.record_names            # rewrite the list
    python3 -m tests.cupy_standin.record_names --check    # exit 1 if the list differs
"""

import inspect
import json
import sys
from pathlib import Path

LIST = Path(__file__).with_name("cupy_names.json")


def _signature(f):
    """``[[parameter, repr(default)], ...]`` of a callable, in order (``None`` for a parameter
    without a default)."""
    params = inspect.signature(f).parameters
    return [[n, None if p.default is p.empty else repr(p.default)] for n, p in params.items() if n != "self"]


def names():
    """What the installed ``cupy`` package serves, by namespace."""
    import cupy
    if "standin" in cupy.__version__:
        raise SystemExit("this is the stand-in, not CuPy: run without NNKD_CUPY_STANDIN on the path")
    gen = cupy.random.Generator
    return {
        "version": cupy.__version__,
        "cupy": sorted(dir(cupy)),
        "ndarray": sorted(dir(cupy.ndarray)),
        "random": sorted(dir(cupy.random)),
        "random.Generator": {n: _signature(getattr(gen, n)) for n in sorted(dir(gen))
                             if not n.startswith("_")},
        "cuda": sorted(dir(cupy.cuda)),
        "cuda.runtime": sorted(dir(cupy.cuda.runtime)),
        "cuda.memory": sorted(dir(cupy.cuda.memory)),
        "cuda.Stream": sorted(dir(cupy.cuda.Stream)),
        "cuda.Device": sorted(dir(cupy.cuda.Device)),
        "cuda.memory.OutOfMemoryError": _signature(cupy.cuda.memory.OutOfMemoryError.__init__),
    }


def main(argv):
    found = names()
    if "--check" in argv:
        same = json.loads(LIST.read_text()) == found
        print(f"{LIST}: {'matches' if same else 'differs from'} cupy {found['version']}")
        return 0 if same else 1
    LIST.write_text(json.dumps(found, indent=0, sort_keys=True) + "\n")
    print(f"wrote {LIST} from cupy {found['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
