"""The vocabulary of the API: workflows, tasks, executions, statuses.

Definitions are immutable (a frozen dataclass, named tuples for tasks), built only by
``validation.parse_workflow``; the run-time state of an execution lives in the engine's
loop and, durably, in the store.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

__all__ = [
    "EXECUTION_STATUSES",
    "TASK_STATUSES",
    "TASK_TYPES",
    "TERMINAL_EXECUTION",
    "TERMINAL_TASK",
    "TRIGGER_RULES",
    "ExecStatus",
    "Reason",
    "TaskSpec",
    "TaskStatus",
    "Workflow",
    "utcnow",
]


class TaskStatus:
    """Task statuses: those of the documentation plus ``cancelled``."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class ExecStatus:
    """Execution statuses."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Reason:
    """Why a task was skipped, cancelled or failed without running."""

    NOT_SELECTED = "not_selected"
    UPSTREAM_SKIPPED = "upstream_skipped"
    UPSTREAM_FAILED = "upstream_failed"
    NO_UPSTREAM_FAILED = "no_upstream_failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    OWNER_LOST = "owner_lost"


TASK_STATUSES = ("pending", "running", "completed", "failed", "skipped", "cancelled")
EXECUTION_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL_TASK = frozenset({"completed", "failed", "skipped", "cancelled"})
TERMINAL_EXECUTION = frozenset({"completed", "failed", "cancelled"})
TASK_TYPES = ("python", "branch", "notebook")
TRIGGER_RULES = (
    "none_failed_min_one_success",
    "all_success",
    "all_done",
    "one_success",
    "one_failed",
)
DEFAULT_TRIGGER_RULE = "none_failed_min_one_success"


_last_second: tuple[int, str] = (-1, "")


def iso(ts: float) -> str:
    """A Unix time as ISO 8601 in UTC with milliseconds and a ``Z``, as the documented
    examples. The engine stamps thousands of rows and events a second: the text of the
    current second is formatted once, the milliseconds appended."""
    global _last_second
    ms = int(ts * 1000)
    second, frac = divmod(ms, 1000)
    last = _last_second
    if last[0] != second:
        last = _last_second = (
            second,
            datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        )
    return f"{last[1]}.{frac:03d}Z"


def utcnow() -> str:
    """Now, as ``iso``."""
    return iso(time.time())


class TaskSpec(NamedTuple):
    """One task of a definition, with its defaults filled in. (A named tuple rather than
    a frozen dataclass: as immutable, and four times cheaper to build, 100,000 at a time.)"""

    name: str
    type: str = "python"
    params: dict[str, Any] = {}  # never mutated (validation gives each task its own copy)
    dependencies: tuple[str, ...] = ()
    retries: int = 0
    retry_delay: float = 1.0
    retry_backoff: float = 2.0
    timeout: float | None = None
    trigger_rule: str = DEFAULT_TRIGGER_RULE

    def retry_wait(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one."""
        return float(self.retry_delay * self.retry_backoff ** (attempt - 1))


@dataclass(frozen=True)
class Workflow:
    """A validated workflow definition.

    ``source`` is the definition as posted (what ``GET /workflows`` returns); ``tasks``
    are the parsed specs in the posted order.
    """

    id: str
    name: str
    tasks: tuple[TaskSpec, ...]
    source: dict[str, Any]
    description: str | None = None
    version: str | int = 1
    tags: tuple[str, ...] = ()
    owner: str | None = None
    max_parallel: int | None = None
    # ``canonical_json(source)`` when validation already has it (the fingerprint's text)
    canonical: str | None = field(default=None, repr=False, compare=False)

    @property
    def task_map(self) -> dict[str, TaskSpec]:
        """Tasks by name."""
        return {t.name: t for t in self.tasks}

    def fingerprint(self) -> str:
        """A hash of the definition as posted, whatever the order of its keys; an
        unchanged definition keeps its revision."""
        text = self.canonical or canonical_json(self.source)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """JSON text that two equal values share: sorted keys, no spaces, no NaN."""
    return json.dumps(
        value, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")
    )
