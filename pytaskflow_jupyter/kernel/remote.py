"""What the server runs of a workflow built in a notebook: the snapshots of its notebook
functions, and where its schedule stands.

The Jupyter server cannot call a function of a kernel. ``with_snapshots`` gives a
definition a snapshot (``snapshots.py``: pickled by value with the globals and helpers
it uses) for every task that names a notebook function, saved in the store before the
definition that names it is registered; the server's ``SnapshotResolver`` runs them.
The Python API (``Workflow.register/submit/schedule/run``) passes the builder's raw
functions, which are snapshotted again each time (an edit is a new snapshot, so a new
revision); the magics (``%taskflow submit/schedule``) start from the definition as
stored, keep the snapshots it has and take the missing ones from this kernel.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidInput, Problem
from ..kinds import KINDS
from ..snapshots import take
from .session import find_function, get_session

__all__ = ["WorkflowSchedule", "notebook_tasks", "stored_definition", "with_snapshots"]

Json = dict[str, Any]


def notebook_tasks(definition: Json) -> list[tuple[int, Json]]:
    """``(index, task)`` of the tasks of ``definition`` whose ``callable`` names a
    notebook function (no ``:``): the ones the server runs from a snapshot."""
    found = []
    for i, task in enumerate(definition.get("tasks") or []):
        ref = (task.get("params") or {}).get("callable")
        kind = KINDS.get(task.get("type") or "python")
        takes_snapshot = kind is not None and "snapshot" in kind.FIELDS  # python, branch
        if takes_snapshot and isinstance(ref, str) and ":" not in ref:
            found.append((i, task))
    return found


def stored_definition(workflow_id: str) -> tuple[Json, int]:
    """The latest definition of ``workflow_id`` as it was registered (none of the fields
    and defaults ``GET /workflows/{id}`` adds, so registering it again changes nothing
    else), and its revision; ``NotFound`` for an unknown workflow."""
    record = get_session().store.workflow(workflow_id)
    return json.loads(json.dumps(record.definition)), record.revision


def with_snapshots(
    definition: Json, functions: Mapping[str, Callable[..., Any]] | None = None
) -> Json:
    """``definition`` with ``params.snapshot`` on every task naming a notebook function,
    its snapshot saved in the store first. A task's function is ``functions[name]``
    when given (the builder's raw functions: snapshotted again each time), else the
    task keeps the snapshot it has, else this kernel's ``find_function``. Refused
    (``InvalidInput``): ``not_snapshottable`` names the function and the object that
    cannot be pickled; ``no_snapshot`` a function neither stored nor defined here."""
    functions = functions or {}
    tasks = [dict(t) for t in definition.get("tasks") or []]
    rows = []
    for i, task in notebook_tasks(definition):
        params = dict(task.get("params") or {})
        fn = functions.get(task["name"])
        if fn is None and params.get("snapshot"):
            continue
        fn = fn or find_function(params["callable"])
        if fn is None:
            detail = (
                f"notebook function {params['callable']!r} has no snapshot and is not defined "
                "in this kernel, so the server cannot run it; register the workflow from the "
                "notebook that defines it (wf.register() or wf.submit()), or run the cell "
                "that defines it here first"
            )
            raise InvalidInput(
                f"task {task['name']!r}: {detail}",
                [Problem(f"tasks[{i}].params.callable", "no_snapshot", detail)],
                code="no_snapshot",
            )
        snap = take(fn, task["name"], f"tasks[{i}]")
        rows.append(snap.row())
        tasks[i] = {**task, "params": {**params, "snapshot": snap.digest}}
    get_session().store.save_snapshots(rows)
    return {**definition, "tasks": tasks}


class WorkflowSchedule:
    """Where a workflow's schedule stands, as ``wf.schedule()``, ``pause()``,
    ``resume()`` and ``unschedule()`` leave it: ``workflow`` is the stored workflow (as
    ``GET /workflows/{id}`` shows it, also readable as ``ws["nextRunTime"]``)."""

    def __init__(self, workflow: Json) -> None:
        self.workflow = workflow
        self.workflow_id: str = workflow["id"]
        self.revision: int = workflow["revision"]
        self.schedule: Json | None = workflow.get("schedule")
        self.text: str | None = workflow.get("scheduleText")
        self.paused = bool(workflow.get("paused"))
        self.next_run_time: str | None = workflow.get("nextRunTime")
        self.last_scheduled_run: Json | None = workflow.get("lastScheduledRun")

    def __getitem__(self, key: str) -> Any:
        return self.workflow[key]

    def __repr__(self) -> str:
        head = f"<Schedule of {self.workflow_id!r} (revision {self.revision})"
        if self.schedule is None:
            return f"{head}: none>"
        state = "paused" if self.paused else f"next run {self.next_run_time}"
        last = self.last_scheduled_run
        if last:
            state += f"; last {last['scheduledFor']} {last['status']}"
        return f"{head}: {self.text}; {state}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))
