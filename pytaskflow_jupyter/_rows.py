"""How a task run and an event become a row of the store, and back.

``Store`` (``store.py``) talks to the database; this module only shapes what it writes
and reads: the ``TaskRow`` dataclass, a result's JSON text, and the statement and values
for each task row and event. The engine writes two task rows and two events per task,
by the thousand, so the common shapes have statements of their own (see
``_EVENT_SQL``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .model import TaskStatus

__all__ = ["PENDING", "TaskRow", "encode_result", "event_dict", "event_row", "loads", "task_writes"]

Json = dict[str, Any]


# The keys every event has (SPEC §4), stored in columns; ``attempt`` and ``duration``
# have columns too; any other key goes to ``extra`` (a JSON object, usually NULL).
_EVENT_BASE = (
    "event",
    "workflow_id",
    "task",
    "timestamp",
    "seq",
    "execution_id",
    "workflow",
    "status",
)
_EVENT_COLUMNS = frozenset((*_EVENT_BASE, "attempt", "duration"))
# Binding None costs CPython's sqlite3 about 0.5 us a value (it looks for an adapter
# first), and most rows the engine writes are half NULLs: the common shapes have their
# own statements, with NULL written in the SQL; any other row binds every column.
_EVENT_SQL = (
    "INSERT INTO events (seq, execution_id, workflow_id, event, task, timestamp, "
    "status, attempt, duration, extra) VALUES ({})"
)
_EVENT_FULL = _EVENT_SQL.format(",".join("?" * 10))
_EVENT_STARTED = _EVENT_SQL.format("?,?,?,?,?,?,?,?,NULL,NULL")  # a task event, no duration
_EVENT_ENDED = _EVENT_SQL.format("?,?,?,?,?,?,?,?,?,NULL")  # a task event with its duration
_EVENT_REASON = _EVENT_SQL.format("?,?,?,?,?,?,?,NULL,NULL,?")  # task_skipped: its reason
_REASON_EXTRA: dict[str, str] = {}  # reason -> the extra JSON of a task_skipped event


def event_row(event: Json) -> tuple[str, tuple[Any, ...]]:
    """The statement and the values after ``seq`` that store ``event`` (``attempt`` or
    ``duration`` present with a null value goes to ``extra``, so that ``event_dict``
    gives it back). The task events the engine writes by the thousand come first."""
    task, size = event["task"], len(event)
    if task is not None and size < 11:
        if size == 9:
            attempt = event.get("attempt")
            if attempt is not None:  # task_started
                return _EVENT_STARTED, (
                    event["execution_id"],
                    event["workflow"],
                    event["event"],
                    task,
                    event["timestamp"],
                    event["status"],
                    attempt,
                )
            reason = event.get("reason")
            if isinstance(reason, str):  # task_skipped
                extra = _REASON_EXTRA.get(reason)
                if extra is None:
                    extra = _REASON_EXTRA[reason] = json.dumps({"reason": reason})
                return _EVENT_REASON, (
                    event["execution_id"],
                    event["workflow"],
                    event["event"],
                    task,
                    event["timestamp"],
                    event["status"],
                    extra,
                )
        elif size == 10:
            attempt, duration = event.get("attempt"), event.get("duration")
            if attempt is not None and duration is not None:  # task_completed
                return _EVENT_ENDED, (
                    event["execution_id"],
                    event["workflow"],
                    event["event"],
                    task,
                    event["timestamp"],
                    event["status"],
                    attempt,
                    duration,
                )
    attempt, duration = event.get("attempt"), event.get("duration")
    extra = (
        None
        if size == 8 + (attempt is not None) + (duration is not None)
        else json.dumps(
            {
                k: v
                for k, v in event.items()
                if k not in _EVENT_COLUMNS or (v is None and k in ("attempt", "duration"))
            }
        )
    )
    return _EVENT_FULL, (
        event["execution_id"],
        event["workflow"],
        event["event"],
        task,
        event["timestamp"],
        event["status"],
        attempt,
        duration,
        extra,
    )


def event_dict(row: tuple[Any, ...]) -> Json:
    """An event as published, from ``SELECT seq, execution_id, workflow_id, event, task,
    timestamp, status, attempt, duration, extra``."""
    seq, execution_id, workflow, name, task, timestamp, status, attempt, duration, extra = row
    event: Json = {
        "event": name,
        "workflow_id": execution_id,
        "task": task,
        "timestamp": timestamp,
        "seq": seq,
        "execution_id": execution_id,
        "workflow": workflow,
        "status": status,
    }
    if attempt is not None:
        event["attempt"] = attempt
    if duration is not None:
        event["duration"] = duration
    if extra is not None:
        event.update(json.loads(extra))
    return event


@dataclass
class TaskRow:
    """The durable state of one task in one execution (what ``task_runs`` holds)."""

    name: str
    status: str = TaskStatus.PENDING
    attempts: int = 0
    start_time: str | None = None
    end_time: str | None = None
    duration: float | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    reason: str | None = None
    history: list[Json] | None = None
    branch: Json | None = None
    result_text: str | None = None  # the result as JSON text, when already encoded

    def implied_history(self) -> list[Json]:
        """The history of a task that completed at its only recorded attempt: not stored
        (most tasks; it spares a JSON document per task), rebuilt from the row's fields."""
        return [
            {
                "attempt": self.attempts,
                "status": TaskStatus.COMPLETED,
                "startTime": self.start_time,
                "endTime": self.end_time,
                "duration": self.duration,
            }
        ]

    def stored_history(self) -> str | None:
        """The history as ``task_runs`` keeps it (None when implied: the engine leaves
        ``history`` None for a task that succeeded at its first recorded attempt)."""
        if self.history is None or (
            len(self.history) == 1
            and self.status == TaskStatus.COMPLETED
            and self.history == self.implied_history()
        ):
            return None
        return json.dumps(self.history)

    def to_json(self, *, detail: bool = False) -> Json:
        """The task as REST shows it (camelCase)."""
        out: Json = {
            "name": self.name,
            "status": self.status,
            "duration": self.duration,
            "attempts": self.attempts,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "error": self.error,
            "reason": self.reason,
        }
        if detail:
            history = (
                self.history
                if self.history is not None
                else self.implied_history()
                if self.status == TaskStatus.COMPLETED
                else []
            )
            out.update(
                result=self.result, traceback=self.traceback, history=history, branch=self.branch
            )
        return out


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
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text[:200] + ("..." if len(text) > 200 else "")


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# what a task with no row yet shows (every field but its name)
PENDING = {k: v for k, v in TaskRow("").to_json().items() if k != "name"}

_TASK_SQL = "INSERT OR REPLACE INTO task_runs VALUES ({})"  # NULLs in the SQL: see _EVENT_SQL
_TASK_FULL = _TASK_SQL.format(",".join("?" * 13))
_TASK_STARTED = _TASK_SQL.format("?,?,?,?,?" + ",NULL" * 8)  # up to start_time
_TASK_ENDED = _TASK_SQL.format("?,?,?,?,?,?,?,?" + ",NULL" * 5)  # up to result
_TASK_SKIPPED = _TASK_SQL.format("?,?,?,?" + ",NULL" * 6 + ",?,NULL,NULL")  # and its reason


def task_writes(execution_id: str, rows: Iterable[TaskRow]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows to write, by statement (see ``_EVENT_SQL``: NULLs in the SQL); only the
    statements that have rows."""
    out: dict[str, list[tuple[Any, ...]]] = {
        _TASK_STARTED: [],
        _TASK_ENDED: [],
        _TASK_SKIPPED: [],
        _TASK_FULL: [],
    }
    started, ended, skipped, full = out.values()
    for r in rows:
        result = (
            r.result_text
            if r.result_text is not None
            else None
            if r.result is None
            else encode_result(r.result)
        )
        history = None if r.history is None else r.stored_history()
        if r.error is None and r.traceback is None and history is None and r.branch is None:
            if (
                r.start_time is None
                and r.end_time is None
                and r.duration is None
                and result is None
                and r.reason is not None
            ):
                skipped.append((execution_id, r.name, r.status, r.attempts, r.reason))
                continue
            if r.start_time is not None and r.reason is None:
                if r.end_time is None and r.duration is None and result is None:
                    started.append((execution_id, r.name, r.status, r.attempts, r.start_time))
                    continue
                if r.end_time is not None and r.duration is not None and result is not None:
                    ended.append(
                        (
                            execution_id,
                            r.name,
                            r.status,
                            r.attempts,
                            r.start_time,
                            r.end_time,
                            r.duration,
                            result,
                        )
                    )
                    continue
        full.append(
            (
                execution_id,
                r.name,
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
            )
        )
    return {sql: batch for sql, batch in out.items() if batch}
