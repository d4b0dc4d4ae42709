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
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import InvalidInput, Problem

if TYPE_CHECKING:
    from .schedule import Schedule

__all__ = [
    "EXECUTION_STATUSES",
    "TASK_STATUSES",
    "TERMINAL_EXECUTION",
    "TERMINAL_TASK",
    "TRIGGER_RULES",
    "EventKind",
    "ExecStatus",
    "Reason",
    "TaskRun",
    "TaskSpec",
    "TaskStatus",
    "Trigger",
    "TriggerRule",
    "Workflow",
    "utcnow",
]


class _Word(str, Enum):
    """A word of the API: a ``str`` (JSON, SQL and comparisons see its value)."""

    def __str__(self) -> str:
        return str(self.value)


class TaskStatus(_Word):
    """Task statuses: those of the documentation plus ``cancelled``."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """No further transition: completed, failed, skipped or cancelled."""
        return self in TERMINAL_TASK


class ExecStatus(_Word):
    """Execution statuses."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """No further transition: completed, failed or cancelled."""
        return self in TERMINAL_EXECUTION


class Reason(_Word):
    """Why a task was skipped, cancelled or failed without running, or an execution failed."""

    NOT_SELECTED = "not_selected"
    UPSTREAM_SKIPPED = "upstream_skipped"
    UPSTREAM_FAILED = "upstream_failed"
    NO_UPSTREAM_FAILED = "no_upstream_failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    OWNER_LOST = "owner_lost"
    ENGINE_ERROR = "engine_error"


class TriggerRule(_Word):
    """When a task with dependencies runs (the table in ``transitions.py``)."""

    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"


class Trigger(_Word):
    """What started an execution."""

    API = "api"
    NOTEBOOK = "notebook"
    SCHEDULE = "schedule"
    RETRY = "retry"


class EventKind(_Word):
    """The events of ``/ws`` (SPEC section 4)."""

    EXECUTION_STARTED = "execution_started"
    EXECUTION_COMPLETED = "execution_completed"
    EXECUTION_FAILED = "execution_failed"
    EXECUTION_CANCELLED = "execution_cancelled"
    TASK_STARTED = "task_started"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_RETRYING = "task_retrying"
    TASK_SKIPPED = "task_skipped"
    TASK_PROGRESS = "task_progress"


TASK_STATUSES = tuple(s.value for s in TaskStatus)
EXECUTION_STATUSES = tuple(s.value for s in ExecStatus)
TERMINAL_TASK = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}
)
TERMINAL_EXECUTION = frozenset({ExecStatus.COMPLETED, ExecStatus.FAILED, ExecStatus.CANCELLED})
TRIGGER_RULES = tuple(r.value for r in TriggerRule)
DEFAULT_TRIGGER_RULE = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS.value


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
    map_over: str | None = None  # a dependency whose list result it runs once per item

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
    parameters: dict[str, Any] | None = None  # declared execution parameters and defaults
    schedule: Schedule | None = None  # when the server runs it on its own (SPEC 12)
    # ``canonical_json(source)`` when validation already has it (the fingerprint's text)
    canonical: str | None = field(default=None, repr=False, compare=False)

    @property
    def task_map(self) -> dict[str, TaskSpec]:
        """Tasks by name."""
        return {t.name: t for t in self.tasks}

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """An execution's parameters: the declared defaults overridden by ``given``
        (SPEC section 10). With declared ``parameters``, an undeclared name is refused.
        ``parameters: {}`` declares nothing, as leaving it out does (``GET /workflows``
        shows that default: a definition read back and registered again means the same)."""
        if not self.parameters:
            return given
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            declared = ", ".join(sorted(self.parameters)) or "none"
            raise InvalidInput(
                "Invalid params:",
                [
                    Problem(
                        f"params.{name}",
                        "unknown_parameter",
                        f"workflow {self.id!r} declares no parameter {name!r}; declared: "
                        f"{declared}",
                    )
                    for name in unknown
                ],
                code="unknown_parameter",
            )
        return {**self.parameters, **given}

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


@dataclass
class TaskRun:
    """The run state of one task in one execution (what the store keeps per task).

    ``history`` holds the attempts that failed, oldest first; a completed attempt is the
    row itself (``attempt_history`` gives the whole list). ``result`` is the task's
    value as the engine holds it (the store encodes it). Statuses and reasons are the
    plain values of ``TaskStatus`` and ``Reason``. ``branch`` records a branch's
    ``selected`` and ``skipped`` tasks so that a resumed or retried execution replays it.
    ``attempts`` counts every attempt started, ``interruptions`` those among them that a
    stop of the server cut short (they do not count against ``retries``). The run of one
    instance of a mapped task is a ``TaskRun`` too, with its ``map_index``.
    """

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
    history: list[dict[str, Any]] = field(default_factory=list)
    branch: dict[str, Any] | None = None
    output: str | None = None  # a file the last attempt left to show (a notebook's copy)
    # attempts cut short by a shutdown or crash of the process running them: they are
    # rerun without using up a retry, up to ``max_interruptions`` (``transitions``)
    interruptions: int = 0
    # a mapped task's counts of its instances by status, with ``total`` (SPEC 11); None
    # before it expanded and for every other task
    mapped: dict[str, int] | None = None
    map_index: int | None = None  # set on the run of one instance of a mapped task
    # a reused row (retry, ``reuse``): the execution that computed it
    reused_from: str | None = None

    def attempt_history(self) -> list[dict[str, Any]]:
        """Every finished attempt (REST's ``history``): the failed ones, then a success."""
        if self.status != TaskStatus.COMPLETED:
            return list(self.history)
        done = {
            "attempt": self.attempts,
            "status": TaskStatus.COMPLETED.value,
            "startTime": self.start_time,
            "endTime": self.end_time,
            "duration": self.duration,
        }
        return [*self.history, done]
