"""An optional webhook: a JSON POST with the summary of each execution that ends as chosen.

``TaskFlowApp.webhook_url`` turns it on. The ``Webhook`` subscribes to the server's
``EventBus``: on an ``execution_failed`` (or ``execution_completed`` /
``execution_cancelled``, as ``webhook_events`` says) it only puts the execution id on a
bounded queue, so the engine, which publishes, never waits for it. One daemon thread
takes the queue, reads the execution from the store (``Runner.get``), and POSTs
``{"event": "execution_failed", "execution": {...summary...}, "sentAt": ...}``. A
connection error, a timeout, a 429 or a 5xx is retried ``retries`` times, waiting 1 s,
2 s, 4 s ...; another 4xx is not (the receiver said no). Executions of this server are
covered, the scheduled ones included; an execution a kernel runs in its own process is
not (that kernel's bus is not this one).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

from .._version import __version__
from ..events import Event
from ..model import utcnow

__all__ = ["WEBHOOK_EVENTS", "Webhook", "summary"]

log = logging.getLogger(__name__)

Json = dict[str, Any]
WEBHOOK_EVENTS = ("completed", "failed", "cancelled")  # the ends a webhook may report


def summary(execution: Json) -> Json:
    """What a webhook says of an execution: its header, its tasks counted by status,
    and the failed tasks with their errors."""
    tasks = execution.get("tasks", [])
    return {
        **{
            k: execution.get(k)
            for k in (
                "id", "workflowId", "revision", "status", "reason", "trigger", "scheduledFor",
                "params", "startTime", "endTime", "parentId",
            )
        },
        "tasks": dict(Counter(t["status"] for t in tasks)),
        "failed": [
            {"name": t["name"], "error": t.get("error"), "reason": t.get("reason")}
            for t in tasks
            if t["status"] == "failed"
        ],
    }  # fmt: skip


class Webhook:
    """Posts execution summaries to ``url`` from a thread of its own (module docstring)."""

    def __init__(
        self,
        url: str,
        get: Callable[[str], Json],
        *,
        events: tuple[str, ...] = ("failed",),
        retries: int = 3,
        timeout: float = 5.0,
        backoff: float = 1.0,
        queue_size: int = 1000,
    ) -> None:
        self.url, self.get = url, get
        self.ends = {f"execution_{e}" for e in events}
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(queue_size)
        self._thread = threading.Thread(target=self._run, name="taskflow-webhook", daemon=True)
        self._thread.start()

    def notify(self, events: list[Event]) -> None:
        """EventBus subscriber (the engine's thread): queue the ends to report."""
        for event in events:
            if event.task is None and event.event in self.ends:
                try:
                    self._queue.put_nowait((event.event, event.execution_id))
                except queue.Full:
                    log.warning("webhook: queue full, %s of %s not sent", event.event,
                                event.execution_id)  # fmt: skip

    def close(self, wait: float = 2.0) -> None:
        """Stop after what is queued has been tried (at most ``wait`` seconds)."""
        try:
            self._queue.put(None, timeout=wait)
        except queue.Full:
            return
        self._thread.join(wait)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            event, execution_id = item
            try:
                body = {"event": event, "execution": summary(self.get(execution_id)),
                        "sentAt": utcnow()}  # fmt: skip
            except Exception:
                log.exception("webhook: cannot read execution %s", execution_id)
                continue
            self._post(json.dumps(body).encode(), f"{event} of {execution_id}")

    def _post(self, data: bytes, what: str) -> None:
        request = urllib.request.Request(
            self.url,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"pytaskflow-jupyter/{__version__}",
            },
        )
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 429 and exc.code < 500:
                    log.warning("webhook: %s refused by %s: HTTP %s", what, self.url, exc.code)
                    return
                why = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:  # refused, timed out, DNS, a bad URL
                why = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        log.warning("webhook: %s not delivered to %s after %d tries (%s)", what, self.url,
                    self.retries + 1, why)  # fmt: skip
