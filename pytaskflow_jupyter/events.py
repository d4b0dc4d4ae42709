"""Event types and the in-process event bus.

An event is a plain JSON object (SPEC §4). The engine builds it, the store gives it its
global ``seq`` while committing the state change it describes, and only then does the
bus hand it to subscribers (the /ws hub, widgets). Subscribers run on the publishing
thread and must return quickly: they hand work to their own loop or queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .model import utcnow

__all__ = ["EVENT_TYPES", "EventBus", "make_event"]

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "execution_started",
    "execution_completed",
    "execution_failed",
    "execution_cancelled",
    "task_started",
    "task_completed",
    "task_failed",
    "task_retrying",
    "task_skipped",
)

Event = dict[str, Any]
Subscriber = Callable[[list[Event]], None]


def make_event(
    event: str,
    execution_id: str,
    workflow: str,
    status: str,
    task: str | None = None,
    timestamp: str | None = None,
    **extra: Any,
) -> Event:
    """One event; ``workflow_id`` carries the execution id, as the documented example does.
    ``timestamp`` is when the change happened (ISO 8601; default: now)."""
    msg: Event = {
        "event": event,
        "workflow_id": execution_id,
        "task": task,
        "timestamp": timestamp or utcnow(),
        "seq": None,
        "execution_id": execution_id,
        "workflow": workflow,
        "status": status,
    }
    if extra:
        msg.update(extra)
    return msg


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
