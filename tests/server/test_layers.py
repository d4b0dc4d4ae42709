"""``server/`` has no import cycle and its layers point one way (STYLE.md "Layers"):
``base``, ``body``, ``headers`` and ``openapi`` import nothing from ``server/``;
``handlers`` and ``websocket`` import only those; ``app`` (the composition root) imports them.

Every import counts, also one inside a function or under ``TYPE_CHECKING``: a lazy
import is how the old cycle (app <-> handlers <-> websocket) hid.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "pytaskflow_jupyter" / "server"
PACKAGE = "pytaskflow_jupyter.server"
LAYERS = {
    "base": 0,
    "body": 0,
    "headers": 0,
    "openapi": 0,
    "webhook": 0,
    "handlers": 1,
    "websocket": 1,
    "app": 2,
}


def server_imports(source: str) -> set[str]:
    """The ``server/`` modules a module of ``server/`` imports, anywhere in its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 1:
            names = (
                [f"{PACKAGE}.{node.module}"]
                if node.module
                else [f"{PACKAGE}.{a.name}" for a in node.names]
            )
        else:  # `from ..x import y`: outside server/
            continue
        for name in names:
            head, _, rest = name.partition(f"{PACKAGE}.")
            if not head and rest:
                found.add(rest.split(".")[0])
    return found


def graph() -> dict[str, set[str]]:
    return {
        path.stem: server_imports(path.read_text(encoding="utf-8"))
        for path in sorted(SERVER.glob("*.py"))
        if path.stem != "__init__"
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_server_modules_import_no_cycle():
    assert find_cycle(graph()) is None


def test_server_imports_point_down_the_layers():
    edges = graph()
    assert set(edges) == set(LAYERS), "a new module of server/ needs its layer here"
    upward = [
        f"{module} imports {target}"
        for module, targets in edges.items()
        for target in sorted(targets)
        if LAYERS[target] >= LAYERS[module]
    ]
    assert upward == []
    assert edges["base"] == set()


@pytest.mark.parametrize(
    "source",
    [
        "from .handlers import X",
        "def f():\n    from .handlers import X",
        "if TYPE_CHECKING:\n    from .handlers import X",
        "from . import handlers",
        "import pytaskflow_jupyter.server.handlers",
        "from pytaskflow_jupyter.server.handlers import X",
        "from pytaskflow_jupyter.server import handlers",
    ],
)
def test_the_parser_sees_every_form_of_import(source):
    """Controls: each way of writing the old cycle's lazy import is found."""
    assert server_imports(source) == {"handlers"}
    assert server_imports("from ..runner import Runner\nimport json") == set()


def test_the_cycle_check_can_fail():
    """Control: the old shape (handlers <-> websocket, app -> both) is a cycle."""
    old = {"app": {"handlers", "websocket"}, "handlers": {"websocket"}, "websocket": {"handlers"}}
    assert set(find_cycle(old) or ()) == {"handlers", "websocket"}
