"""Small workflow builders and helpers for unit tests."""

from __future__ import annotations

import time
from typing import Any


def wf(*tasks: dict[str, Any], name: str = "wf", **extra: Any) -> dict[str, Any]:
    """A definition from task dicts."""
    return {"name": name, "tasks": list(tasks), **extra}


def task(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    """A task dict; ``code=`` and ``next=`` go into params."""
    params = dict(fields.pop("params", {}))
    for key in ("code", "callable", "next", "kwargs"):
        if key in fields:
            params[key] = fields.pop(key)
    return {
        "name": name,
        "type": fields.pop("type", "python"),
        "params": params,
        "dependencies": list(deps),
        **fields,
    }


def statuses(execution: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["status"] for t in execution["tasks"]}


def reasons(execution: dict[str, Any]) -> dict[str, str | None]:
    return {t["name"]: t["reason"] for t in execution["tasks"]}


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.02):
    """Poll ``predicate`` until truthy; fail loudly instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def stored_execution(store: Any, execution_id: str, *, detail: bool = False) -> dict[str, Any]:
    """An execution as REST shows it, read straight from a store (no runner)."""
    from pytaskflow_jupyter.serialize import execution_json

    row = store.execution_row(execution_id)
    wf = store.load_workflow(row["workflow_id"], row["revision"])
    return execution_json(row, wf, store.task_runs(execution_id), detail=detail)


def stored_executions(store: Any, workflow_id: str) -> list[dict[str, Any]]:
    """The executions of a workflow as ``GET /executions`` shows them, newest first."""
    rows, _ = store.list_executions(workflow_id=workflow_id, limit=1000)
    return [stored_execution(store, row["id"]) for row in rows]
