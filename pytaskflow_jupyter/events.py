"""Events and the in-process event bus.

An event is a typed record (``Event``; its JSON is SPEC section 4). The engine builds
it, the store gives it its global ``seq`` while committing the state change it
describes, and only then does the bus hand it to subscribers (the /ws hub, widgets).
Subscribers run on the publishing thread and must return quickly: they hand work to
their own loop or queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .model import EventKind, utcnow

__all__ = ["EVENT_TYPES", "Event", "EventBus", "make_event"]

log = logging.getLogger(__name__)

EVENT_TYPES = tuple(k.value for k in EventKind)

# Fields an event of a kind always shows on /ws (null when unset); any other optional
# field is shown when it is set. (SPEC section 4: task_failed carries error, ...)
_ALWAYS: dict[str, tuple[str, ...]] = {
    EventKind.TASK_STARTED.value: ("attempt",),
    EventKind.TASK_COMPLETED.value: ("attempt", "duration"),
    EventKind.TASK_FAILED.value: ("attempt", "error", "duration", "reason"),
    EventKind.TASK_RETRYING.value: ("attempt", "error", "delay"),
    EventKind.TASK_SKIPPED.value: ("reason",),
    EventKind.TASK_PROGRESS.value: ("attempt", "progress"),
}
DETAIL_FIELDS = ("error", "reason", "delay", "selected", "progress", "map_index")
_ALWAYS_DETAIL = frozenset(k for k, names in _ALWAYS.items() if set(names) & set(DETAIL_FIELDS))


@dataclass(slots=True)
class Event:
    """One event (SPEC section 4): a state change of an execution or of one of its tasks.

    The engine builds it, the store gives it its global ``seq`` while committing the
    change it describes, and ``to_json`` gives the object ``/ws`` sends (where
    ``workflow_id`` carries the execution id, as the documented example does).
    ``timestamp`` is when the change happened (ISO 8601).
    """

    event: str  # an EventKind value
    execution_id: str
    workflow: str
    status: str
    task: str | None = None
    timestamp: str = ""
    attempt: int | None = None
    duration: float | None = None
    error: str | None = None
    reason: str | None = None
    delay: float | None = None
    selected: list[str] | None = None
    progress: dict[str, int] | None = None  # task_progress: {"done": d, "total": t}
    map_index: int | None = None  # an event of one instance of a mapped task (SPEC 11)
    seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as ``/ws`` sends it."""
        msg: dict[str, Any] = {
            "event": self.event,
            "workflow_id": self.execution_id,
            "task": self.task,
            "timestamp": self.timestamp,
            "seq": self.seq,
            "execution_id": self.execution_id,
            "workflow": self.workflow,
            "status": self.status,
        }
        always = _ALWAYS.get(self.event, ())
        if self.attempt is not None or "attempt" in always:
            msg["attempt"] = self.attempt
        if self.duration is not None or "duration" in always:
            msg["duration"] = self.duration
        if (  # most events: no detail (tested first, field by field: it is the hot path)
            self.error is None
            and self.reason is None
            and self.delay is None
            and self.selected is None
            and self.progress is None
            and self.map_index is None
            and self.event not in _ALWAYS_DETAIL
        ):
            return msg
        for name in DETAIL_FIELDS:
            value = getattr(self, name)
            if value is not None or name in always:
                msg[name] = value
        return msg

    @property
    def ends_execution(self) -> bool:
        """An ``execution_completed``, ``_failed`` or ``_cancelled`` event."""
        return self.task is None and self.event != EventKind.EXECUTION_STARTED


Subscriber = Callable[[list[Event]], None]


def make_event(
    event: str,
    execution_id: str,
    workflow: str,
    status: str,
    task: str | None = None,
    timestamp: str | None = None,
    **fields: Any,
) -> Event:
    """An event stamped now unless ``timestamp`` is given; ``fields`` are its optional
    fields (``attempt``, ``duration``, ``error``, ``reason``, ``delay``, ``selected``,
    ``progress``)."""
    return Event(event, execution_id, workflow, status, task, timestamp or utcnow(), **fields)


class EventBus:
    """Fan-out of committed events to in-process subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn(events)`` after each commit; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers = [*self._subscribers, fn]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not fn]

        return unsubscribe

    def publish(self, events: list[Event]) -> None:
        """Hand committed events to every subscriber; one failing subscriber harms no other."""
        if not events:
            return
        for fn in self._subscribers:
            try:
                fn(events)
            except Exception:
                log.exception("event subscriber %r failed", fn)
