"""Two executions of one workflow side by side: what differs (issue 14, run comparison).

Pure shaping over two executions as REST shows them (``serialize.execution_json`` with
detail): their parameters side by side, and per task its status, duration, attempts,
result and error in each, with the fields that differ named. The ``Runner`` serves it as
``GET /executions/{a}/compare/{b}``; ``Run.compare`` turns it into rows (a pandas
``DataFrame`` when pandas is installed).

What "differs" means: any inequality of status, attempts, result or error; for
durations, a change of more than 20 % *and* more than 0.1 s (two runs of the same code
never take exactly as long). Tasks come in the definition order of ``b``, then those only
``a`` has (the two may be of different revisions).
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidInput

__all__ = ["compare_executions", "rows"]

Json = dict[str, Any]

FIELDS = ("status", "duration", "attempts", "result", "error")
DURATION_RATIO, DURATION_SECONDS = 0.2, 0.1


def _head(execution: Json) -> Json:
    keys = ("id", "workflowId", "revision", "status", "params", "startTime", "endTime")
    return {k: execution.get(k) for k in keys}


def _durations_differ(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is not b
    gap = abs(a - b)
    return gap > DURATION_SECONDS and gap > DURATION_RATIO * max(a, b)


def _task_differs(a: Json | None, b: Json | None) -> list[str]:
    if a is None or b is None:
        return ["missing"]
    out = []
    for field in FIELDS:
        if field == "duration":
            if _durations_differ(a.get("duration"), b.get("duration")):
                out.append(field)
        elif a.get(field) != b.get(field):
            out.append(field)
    return out


def compare_executions(a: Json, b: Json) -> Json:
    """``a`` and ``b`` (executions of one workflow, with task detail) side by side."""
    if a["workflowId"] != b["workflowId"]:
        raise InvalidInput(
            f"execution {a['id']!r} ran workflow {a['workflowId']!r} and {b['id']!r} ran "
            f"{b['workflowId']!r}: only executions of one workflow can be compared",
            code="not_comparable",
        )
    pa, pb = a.get("params") or {}, b.get("params") or {}
    names = list(pb) + [n for n in pa if n not in pb]
    params = [
        {"name": n, "a": pa.get(n), "b": pb.get(n), "differs": pa.get(n) != pb.get(n)}
        for n in names
    ]
    ta = {t["name"]: t for t in a["tasks"]}
    tb = {t["name"]: t for t in b["tasks"]}
    order = list(tb) + [n for n in ta if n not in tb]
    tasks = []
    for name in order:
        sides = [
            None if t is None else {f: t.get(f) for f in FIELDS}
            for t in (ta.get(name), tb.get(name))
        ]
        tasks.append({"name": name, "a": sides[0], "b": sides[1], "differs": _task_differs(*sides)})
    return {
        "a": _head(a),
        "b": _head(b),
        "params": params,
        "tasks": tasks,
        "differs": {
            "params": [p["name"] for p in params if p["differs"]],
            "tasks": [t["name"] for t in tasks if t["differs"]],
        },
    }


def rows(comparison: Json) -> list[Json]:
    """The comparison as flat rows (``what``, ``name``, ``field``, ``a``, ``b``,
    ``differs``): one per parameter, one per task and field."""
    out = [
        {"what": "param", "name": p["name"], "field": "value", "a": p["a"], "b": p["b"],
         "differs": p["differs"]}
        for p in comparison["params"]
    ]  # fmt: skip
    for task in comparison["tasks"]:
        a, b, differs = task["a"] or {}, task["b"] or {}, task["differs"]
        for field in FIELDS:
            out.append(
                {"what": "task", "name": task["name"], "field": field, "a": a.get(field),
                 "b": b.get(field), "differs": field in differs or "missing" in differs}
            )  # fmt: skip
    return out
