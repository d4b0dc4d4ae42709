"""The package's imports point one way: no cycles, and no module imports a higher layer.

Every module is parsed (``ast``), so an import inside a function (a lazy one) counts like
one at the top: it runs too, only later. What does not count: imports under
``if TYPE_CHECKING:`` (they never run; naming a type from above is what they are for),
the implicit import of a parent package (importing ``server.app`` runs
``server/__init__.py``), and ``importlib.import_module`` (the package's ``__getattr__``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections import deque
from pathlib import Path

import pytest

PACKAGE = "pytaskflow_jupyter"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

# Lowest first: a module may import modules of its own layer and of the layers below.
# Names are relative to the package; "x.*" is the subpackage x (its __init__ and all its
# modules); "__init__" is the package's own __init__.py.
LAYERS = [
    ["errors", "_version"],  # the exception tree; the version
    ["model"],  # the vocabulary: workflows, tasks, executions, statuses
    ["notebook_task"],  # a notebook run in a worker (nbclient), below the kind that runs it
    # what each task type runs; event types and the bus; when schedules fire; notebook
    # functions pickled by value; results kept, spilled and passed by reference
    ["kinds", "events", "schedule", "snapshots", "results"],
    # pure logic over the model
    ["tasks", "validation", "reuse", "serialize", "transitions", "compare"],
    ["_rows"],  # the rows the store writes
    ["store"],  # the only module that talks to SQLite
    # the executor interface, then the executors (a process worker's side: _worker)
    ["_executor", "executors", "_worker", "_process", "_dask"],
    ["engine"],  # the scheduling loop
    ["runner"],  # engine + store + executor
    ["server.*", "kernel.*"],  # the Jupyter adapters
    ["__init__"],  # the public API and the extension entry points
]


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts == ("__init__",):
        return "__init__"
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(nodes: list[ast.stmt]) -> list[ast.AST]:
    """The statements that can run, all the way down (``if TYPE_CHECKING:`` bodies cut)."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = list(nodes)
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(
    name: str, path: Path, modules: set[str], package: str = PACKAGE
) -> list[tuple[str, int]]:
    """The package modules ``name`` imports at run time, with the line of each import."""
    if name == "__init__":
        here: list[str] = []
    else:
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package:
                    found.append(("__init__", node.lineno))
                elif alias.name.startswith(package + "."):
                    found.append((alias.name[len(package) + 1 :], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1] if node.level > 1 else list(here)
                dotted = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            elif node.module and (node.module + ".").startswith(package + "."):
                dotted = node.module[len(package) + 1 :]
            else:
                continue
            for alias in node.names:
                sub = f"{dotted}.{alias.name}".strip(".")
                found.append((sub if sub in modules else dotted or "__init__", node.lineno))
    return sorted(set(found))


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    paths = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    modules = set(paths)
    return {m: imports_of(m, p, modules, package) for m, p in paths.items()}


def shortest_cycle(graph: dict[str, list[tuple[str, int]]], start: str) -> list[str] | None:
    """A shortest chain of imports from ``start`` back to itself, if there is one."""
    parent: dict[str, str] = {}
    todo = deque([start])
    while todo:
        current = todo.popleft()
        for target, _ in graph.get(current, []):
            if target == start:
                chain = [current]
                while chain[-1] != start:
                    chain.append(parent[chain[-1]])
                return [start, *reversed(chain[:-1]), start]
            if target not in parent and target != start:
                parent[target] = current
                todo.append(target)
    return None


def layer_of(name: str) -> int | None:
    for index, layer in enumerate(LAYERS):
        for entry in layer:
            if name == entry or (entry.endswith(".*") and (name + ".").startswith(entry[:-1])):
                return index
    return None


def upward_imports(graph: dict[str, list[tuple[str, int]]], name: str) -> list[str]:
    own = layer_of(name)
    assert own is not None, f"{name} has no layer"
    found = []
    for target, line in graph[name]:
        layer = layer_of(target)
        if layer is None:
            found.append(f"{name}:{line} imports {target}, which has no layer")
        elif layer > own:
            found.append(f"{name}:{line} imports {target} (layer {layer} > {own})")
    return found


GRAPH = import_graph(ROOT)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_is_in_an_import_cycle(name):
    cycle = shortest_cycle(GRAPH, name)
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_imports_a_higher_layer(name):
    assert upward_imports(GRAPH, name) == []


def test_every_module_has_a_layer_and_every_layer_entry_is_a_module():
    assert [m for m in sorted(GRAPH) if layer_of(m) is None] == []
    entries = {e for layer in LAYERS for e in layer if not e.endswith(".*")}
    assert sorted(entries - set(GRAPH)) == []
    assert [e for layer in LAYERS for e in layer if e.endswith(".*") and e[:-2] not in GRAPH] == []


def test_the_checks_see_lazy_imports_and_skip_type_only_ones(tmp_path):
    # a checker that cannot see a violation would pass forever: show it one of each
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import A\n",
        "a.py": "from . import b\nA = 1\n",
        "b.py": "def f():\n    from .a import A\n    return A\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n",
        "sub/__init__.py": "",
        "sub/d.py": "import pkg.c\nfrom .. import __version__\nfrom ..sub import e\n",
        "sub/e.py": "",
    }
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    graph = import_graph(pkg, "pkg")
    assert graph["a"] == [("b", 1)]
    assert graph["b"] == [("a", 2)]
    assert graph["c"] == []
    assert sorted(graph["sub.d"]) == [("__init__", 2), ("c", 1), ("sub.e", 3)]
    assert shortest_cycle(graph, "a") == ["a", "b", "a"]
    assert shortest_cycle(graph, "c") is None
    assert shortest_cycle(graph, "__init__") is None  # it imports a cycle, is not in one


def test_importing_the_package_loads_neither_loky_nor_distributed():
    code = (
        "import sys, pytaskflow_jupyter\n"
        "from pytaskflow_jupyter.executors import EXECUTORS, make_executor\n"
        "make_executor('thread', workers=1).shutdown()\n"
        "print(sorted(m for m in ('loky', 'distributed') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"
