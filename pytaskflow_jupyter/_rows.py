"""How a task run and an event become a row of the store, and back.

``Store`` (``store.py``) talks to the database; this module only shapes what it writes
and reads: a result's JSON text, and the statement and values for each task run
(``model.TaskRun``) and event (``events.Event``). The engine writes two task rows and
two events per task, by the thousand, so the common shapes have statements of their
own (see ``_EVENT_SQL``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from .events import DETAIL_FIELDS, Event
from .model import TaskRun, TaskStatus

__all__ = [
    "encode_result",
    "event_from_row",
    "event_row",
    "loads",
    "read_history",
    "task_writes",
]

_COMPLETED = TaskStatus.COMPLETED.value

Json = dict[str, Any]


# An event's common fields and ``attempt`` and ``duration`` have columns; the other
# optional fields (``events.DETAIL_FIELDS``) go to ``extra``, a JSON object, usually NULL.
# Binding None costs CPython's sqlite3 about 0.5 us a value (it looks for an adapter
# first), and most rows the engine writes are half NULLs: the common shapes have their
# own statements, with NULL written in the SQL; any other row binds every column.
_EVENT_SQL = (
    "INSERT INTO events (seq, execution_id, workflow_id, event, task, timestamp, "
    "status, attempt, duration, extra) VALUES ({})"
)
_EVENT_FULL = _EVENT_SQL.format(",".join("?" * 10))
_EVENT_STARTED = _EVENT_SQL.format("?,?,?,?,?,?,?,?,NULL,NULL")  # an attempt, no duration
_EVENT_ENDED = _EVENT_SQL.format("?,?,?,?,?,?,?,?,?,NULL")  # an attempt and its duration
_EVENT_REASON = _EVENT_SQL.format("?,?,?,?,?,?,?,NULL,NULL,?")  # task_skipped: its reason
_REASON_EXTRA: dict[str, str] = {}  # reason -> the extra JSON of a task_skipped event


def event_row(e: Event) -> tuple[str, tuple[Any, ...]]:
    """The statement and the values after ``seq`` that store ``e``, chosen by which of
    its fields are set (the shapes the engine writes by the thousand have their own)."""
    if (
        e.error is None
        and e.delay is None
        and e.selected is None
        and e.progress is None
        and e.map_index is None
    ):
        if e.reason is None:
            if e.attempt is not None:
                if e.duration is None:  # task_started
                    return _EVENT_STARTED, (
                        e.execution_id,
                        e.workflow,
                        e.event,
                        e.task,
                        e.timestamp,
                        e.status,
                        e.attempt,
                    )
                return _EVENT_ENDED, (  # task_completed
                    e.execution_id,
                    e.workflow,
                    e.event,
                    e.task,
                    e.timestamp,
                    e.status,
                    e.attempt,
                    e.duration,
                )
        elif e.attempt is None and e.duration is None:  # task_skipped
            extra = _REASON_EXTRA.get(e.reason)
            if extra is None:
                extra = _REASON_EXTRA[e.reason] = json.dumps({"reason": e.reason})
            return _EVENT_REASON, (
                e.execution_id,
                e.workflow,
                e.event,
                e.task,
                e.timestamp,
                e.status,
                extra,
            )
    detail = {k: v for k in DETAIL_FIELDS if (v := getattr(e, k)) is not None}
    return _EVENT_FULL, (
        e.execution_id,
        e.workflow,
        e.event,
        e.task,
        e.timestamp,
        e.status,
        e.attempt,
        e.duration,
        json.dumps(detail) if detail else None,
    )


_PAYLOAD_FIELDS = frozenset(f.name for f in fields(Event))  # what a schema-1 row may hold


def event_from_row(row: tuple[Any, ...]) -> Event:
    """An event as published, from ``SELECT seq, execution_id, workflow_id, event, task,
    timestamp, status, attempt, duration, extra, payload`` (``payload``: the JSON
    document of a row written by schema 1)."""
    seq, execution_id, workflow, name, task, timestamp, status, attempt, duration, extra = row[:10]
    if row[10] is not None:
        old = json.loads(row[10])
        old["seq"] = seq
        return Event(**{k: v for k, v in old.items() if k in _PAYLOAD_FIELDS})
    event = Event(name, execution_id, workflow, status, task, timestamp, attempt, duration, seq=seq)
    if extra is not None:
        for key, value in json.loads(extra).items():
            if key in DETAIL_FIELDS:
                setattr(event, key, value)
    return event


def read_history(text: str | None, status: str) -> list[Json]:
    """The failed attempts of a stored row. (Rows of schema 2 kept a completed attempt
    after its failures; it is the row itself, so it is dropped here.)"""
    if text is None:
        return []
    history: list[Json] = json.loads(text)
    if status == TaskStatus.COMPLETED and history and history[-1].get("status") == "completed":
        history.pop()
    return history


def encode_result(value: Any, limit: int = 1 << 20) -> str:
    """JSON text of a result; a summary when it is not JSON or larger than ``limit``."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps({"summary": _summary(value), "type": type(value).__name__, "json": False})
    if len(text) > limit:
        return json.dumps(
            {
                "summary": text[:200] + "...",
                "type": type(value).__name__,
                "json": False,
                "bytes": len(text),
            }
        )
    return text


def _summary(value: Any) -> str:
    """The first 200 characters of ``repr(value)``, without building all of it for a
    large value (200 MB of bytes would make a string four times that size)."""
    try:
        if isinstance(value, (bytes, bytearray, memoryview, str)) and len(value) > 200:
            head = value[:200]
            text = repr(bytes(head) if isinstance(head, memoryview) else head) + "..."
        else:
            text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text[:200] + ("..." if len(text) > 200 else "")


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _task_statements(table: str, keys: int) -> tuple[str, str, str, str]:
    """The four statements that write a run to ``table`` (``keys`` key columns, then
    status, attempts, start_time, end_time, duration, result, error, traceback, reason,
    history, branch, output, interruptions, mapped, reused_from), NULLs in the SQL (see
    _EVENT_SQL):
    a started run, an ended one (up to its result), a skipped one (its reason), any."""
    sql, key = f"INSERT OR REPLACE INTO {table} VALUES ({{}})", "?," * keys
    return (
        sql.format(key + "?,?,?" + ",NULL" * 12),
        sql.format(key + "?,?,?,?,?,?" + ",NULL" * 9),
        sql.format(key + "?,?" + ",NULL" * 6 + ",?" + ",NULL" * 6),
        sql.format(key + ",".join("?" * 15)),
    )


_TASK_STATEMENTS = _task_statements("task_runs", 2)
_INSTANCE_STATEMENTS = _task_statements("task_instances", 3)  # + map_index


def task_writes(
    execution_id: str, rows: Iterable[TaskRun], *, instances: bool = False
) -> dict[str, list[tuple[Any, ...]]]:
    """The rows to write, by statement (see ``_EVENT_SQL``: NULLs in the SQL); only the
    statements that have rows. ``instances``: runs of mapped instances (their own table,
    keyed by ``map_index`` too)."""
    statements = _INSTANCE_STATEMENTS if instances else _TASK_STATEMENTS
    out: dict[str, list[tuple[Any, ...]]] = {sql: [] for sql in statements}
    started, ended, skipped, full = out.values()
    for r in rows:
        key = (execution_id, r.name, r.map_index) if instances else (execution_id, r.name)
        value = r.result
        if value is None:
            result = "null" if r.status == _COMPLETED else None
        else:
            result = encode_result(value)
        history = json.dumps(r.history) if r.history else None
        if (
            r.error is None
            and r.traceback is None
            and history is None
            and r.branch is None
            and r.output is None
            and not r.interruptions
            and r.mapped is None
            and r.reused_from is None
        ):
            if (
                r.start_time is None
                and r.end_time is None
                and r.duration is None
                and result is None
                and r.reason is not None
            ):
                skipped.append((*key, r.status, r.attempts, r.reason))
                continue
            if r.start_time is not None and r.reason is None:
                if r.end_time is None and r.duration is None and result is None:
                    started.append((*key, r.status, r.attempts, r.start_time))
                    continue
                if r.end_time is not None and r.duration is not None and result is not None:
                    ended.append(
                        (*key, r.status, r.attempts, r.start_time, r.end_time, r.duration, result)
                    )
                    continue
        full.append(
            (
                *key,
                r.status,
                r.attempts,
                r.start_time,
                r.end_time,
                r.duration,
                result,
                r.error,
                r.traceback,
                r.reason,
                history,
                None if r.branch is None else json.dumps(r.branch),
                r.output,
                r.interruptions or None,
                None if r.mapped is None else json.dumps(r.mapped),
                r.reused_from,
            )
        )
    return {sql: batch for sql, batch in out.items() if batch}
