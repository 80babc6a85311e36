"""The shape of the package, read from the source with ``ast``: small modules, no import
cycles, and an engine that never imports the command line."""

import ast

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "nnkd"
MAX_LINES = 400


def modules():
    """{module name: path} of every module under nnkd/ (packages by their __init__)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _runtime_nodes(tree):
    """Every node, except inside ``if TYPE_CHECKING:`` (annotations only, never imported)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def imports(name, path):
    """The nnkd modules that module ``name`` imports anywhere in its source (lazy ones too)."""
    mods = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # "from .pkg import name": name may be a submodule
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def test_no_module_is_over_400_lines():
    long = {n: len(p.read_text().splitlines()) for n, p in modules().items()
            if len(p.read_text().splitlines()) > MAX_LINES}
    assert not long, long


def test_no_import_cycles():
    graph = {n: imports(n, p) for n, p in modules().items()}
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for m in sorted(graph[n]):
            if state.get(m) == "open":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m, stack + [m])
        state[n] = "done"
    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_only_the_command_line_imports_it():
    entry_points = {"nnkd.__main__"}  # `python -m nnkd`, the command line itself
    users = [n for n, p in modules().items() if not n.startswith("nnkd.cli") and n not in entry_points
             and any(m.startswith("nnkd.cli") for m in imports(n, p))]
    assert users == []


def test_the_import_reader_sees_imports():
    """The checks above would pass vacuously if the reader found nothing."""
    graph = {n: imports(n, p) for n, p in modules().items()}
    assert "nnkd.checkpoint" in graph["nnkd.train"] and "nnkd.layers" in graph["nnkd.network"]
    assert "nnkd.commands" in graph["nnkd.cli"] and "nnkd.pipeline" in graph["nnkd.commands"]


def test_the_training_commands_load_nothing_themselves():
    """The command line's training commands parse flags into a spec and call nnkd.commands,
    which loads the data and the teacher and checks the run folder."""
    mods = modules()
    below = imports("nnkd.cli", mods["nnkd.cli"]) & {"nnkd.data", "nnkd.teachers", "nnkd.checkpoint",
                                                     "nnkd.pipeline", "nnkd.sweep", "nnkd.runlock"}
    assert below == set()


CORE = {"nnkd.backend", "nnkd.layers", "nnkd.losses", "nnkd.optim", "nnkd.network", "nnkd.gradcheck"}
# What the core may build on: errors, the version, threads, and how nnkd was installed (for
# advice such as the pip command that installs CuPy); each imports at most nnkd.errors.
BELOW_CORE = {"nnkd.errors", "nnkd.version", "nnkd.parallel", "nnkd.install", "nnkd.cpu_kernels"}


def test_the_numerical_core_imports_nothing_above_it():
    """The core (arrays, layers, losses, optimizers, networks, gradient checks) knows no
    settings module, no data, no files and no command line: it reads settings as attributes."""
    mods = modules()
    above = {n: sorted(imports(n, mods[n]) - CORE - BELOW_CORE) for n in CORE}
    assert {n: a for n, a in above.items() if a} == {}
    assert imports("nnkd.parallel", mods["nnkd.parallel"]) <= {"nnkd.errors", "nnkd.version", "nnkd.backend"}
    assert imports("nnkd.install", mods["nnkd.install"]) <= {"nnkd.errors"}
