"""Which results of an earlier execution a new one may reuse ("resume from failure").

Pure planning over two definitions and the earlier execution's task rows; the
``Runner`` calls it for ``retry`` (REST and notebook alike) and for ``wf.run(reuse=...)``.

A task is *tainted* -- it must run again -- when it is named in ``rerun``, when its
definition entry changed, when the caller says its code changed, when it did not end
``completed`` or ``skipped`` in the earlier execution (it failed, was cancelled, never
ran), or when any of its dependencies is tainted. Every completed task that is not
tainted is reused. The last rule is the one that matters for correctness: a task that
ran on an upstream outcome which is about to change (``A`` failed, ``B`` with
``trigger_rule: all_done`` completed on A's missing result) runs again with it.

Skipped tasks are not tainted: their upstream outcomes are reused, so the engine
decides them the same way again (a reused branch replays its selection).

A mapped task (SPEC 11) that must run again only because it did not complete -- its
definition, code and every dependency unchanged -- reuses its completed *instances*
(``Reuse.instances_of``): its list is the same, so only the instances that failed or
never ran run again.
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from .errors import InvalidInput
from .model import TaskRun, TaskStatus, Workflow

__all__ = ["Reuse", "plan_reuse"]


class Reuse(NamedTuple):
    """What a new execution carries over: completed task rows by name, and the mapped
    tasks whose completed instances it keeps."""

    rows: dict[str, TaskRun]
    instances_of: list[str]


def plan_reuse(
    before: Workflow,
    rows: Mapping[str, TaskRun],
    after: Workflow,
    *,
    rerun: Iterable[str] = (),
    changed: Callable[[str], bool] | None = None,
) -> Reuse:
    """The completed rows of the earlier execution (of ``before``) that a new execution
    of ``after`` reuses, by task name, and the mapped tasks whose completed instances it
    reuses (see the module docstring)."""
    if before.id != after.id:
        raise InvalidInput(
            f"the earlier execution ran workflow {before.id!r}, not {after.id!r}; "
            "cannot reuse its results"
        )
    forced = set(rerun)
    unknown = sorted(forced - {t.name for t in after.tasks})
    if unknown:
        raise InvalidInput(
            f"rerun names unknown task(s) {unknown!r} of workflow {after.id!r}",
            code="unknown_task",
        )
    old = before.task_map
    graph = {t.name: t.dependencies for t in after.tasks}
    specs = after.task_map
    tainted: set[str] = set()
    instances_of: list[str] = []
    for name in graphlib.TopologicalSorter(graph).static_order():
        row = rows.get(name)
        status = row.status if row is not None else TaskStatus.PENDING
        if (
            name in forced
            or old.get(name) != specs[name]
            or (changed is not None and changed(name))
            or not tainted.isdisjoint(graph[name])
        ):
            tainted.add(name)
        elif status not in (TaskStatus.COMPLETED, TaskStatus.SKIPPED):
            tainted.add(name)
            if specs[name].map_over is not None:
                instances_of.append(name)
    reused = {
        name: row
        for name, row in rows.items()
        if name in specs and name not in tainted and row.status == TaskStatus.COMPLETED
    }
    return Reuse(reused, instances_of)
