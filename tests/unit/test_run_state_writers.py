"""Only the state machine changes run state (issue 10, "one state machine").

Read from the package's source with ``ast``: a batch of run-state changes
(``transitions.Changes``) is built only in ``transitions.py``; it reaches the database only
through ``RunStore.commit``, called only by the engine (``engine.py``: the loop and
``settle``); and no SQL of the package writes a task's or an execution's status other
than ``Store.commit``'s (creating an execution, claiming, heartbeats and cancel
*requests* are not transitions: they write owner, heartbeat and flag columns).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytaskflow_jupyter"


def _modules() -> dict[str, ast.Module]:
    return {
        str(p.relative_to(PACKAGE)): ast.parse(p.read_text(), str(p))
        for p in sorted(PACKAGE.rglob("*.py"))
    }


def _calls(tree: ast.Module) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_changes_are_built_only_by_the_state_machine():
    builders = {
        name
        for name, tree in _modules().items()
        for call in _calls(tree)
        if isinstance(call.func, ast.Name) and call.func.id == "Changes"
    }
    assert builders == {"transitions.py"}


def test_changes_are_committed_only_by_the_engine():
    committers = {
        name
        for name, tree in _modules().items()
        for call in _calls(tree)
        if isinstance(call.func, ast.Attribute) and call.func.attr == "commit"
    }
    assert committers == {"engine.py"}


def test_no_other_sql_writes_a_status():
    writes = re.compile(r"(UPDATE\s+(executions|task_runs)\s+SET[^;]*\bstatus\s*=)", re.I)
    found = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.extend([name] if writes.search(node.value) else [])
    assert found == []  # Store.commit builds its UPDATE from the columns it is handed
    store = (PACKAGE / "store.py").read_text()
    assert store.count("INSERT OR REPLACE INTO task_runs") == 0  # statements live in _rows
