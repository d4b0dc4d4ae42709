"""The executor interface, and the queue every executor with its own workers shares.

``submit(job, report)`` starts one attempt and returns a handle; the executor calls
``report(outcome)`` exactly once, from any thread, when the attempt ends (the engine's
``report`` only puts the outcome on its queue). An executor with ``reports_start``
also reports ``Started`` when an attempt of a job with a ``timeout`` begins to run, so
that time spent queued behind other attempts does not count against the timeout; for
the others the clock starts at submission. ``stop(handle)`` stops a running
attempt where the executor can (``can_stop``); the engine ignores late outcomes of
attempts it has given up on, so stopping is best effort and never a correctness issue.

Why a module of its own: the concrete executors (``executors.py``, ``_process.py``,
``_dask.py``) all build on these classes, and ``executors.py`` also names the last two
(its factories import them when first used). With the interface here, below all three,
the imports point one way.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from .kinds import Hooks
from .tasks import Job, Logs, Outcome, Progress, Started, failed_outcome

__all__ = [
    "DONE",
    "QUEUED",
    "RUNNING",
    "STOPPED_QUEUED",
    "Attempt",
    "Executor",
    "QueueExecutor",
    "Report",
]

log = logging.getLogger(__name__)

Report = Callable[[Outcome | Started | Progress | Logs], None]
STOPPED_QUEUED = "Stopped: the attempt was stopped before it started"


class Executor:
    """Interface of every executor (see the module docstring).

    A handle is opaque to the engine: it only passes it back to ``stop``, so each
    executor returns what it needs (hence ``Any``).
    """

    name = "abstract"
    can_stop = False
    reports_start = False
    # None, or a callable saying whether the thread calling ``report`` now may run the
    # engine's turn in it (``engine._reporter``): a thread of the executor's own that no
    # ``stop`` can interrupt any more, and that may wait for the turn's commit.
    in_turn: Callable[[], bool] | None = None

    def submit(self, job: Job, report: Report) -> Any:
        """Start one attempt; ``report`` gets its ``Outcome``. Returns a handle for ``stop``."""
        raise NotImplementedError

    def stop(self, handle: Any) -> None:
        """Stop a running attempt if this executor can; its outcome is then ignored."""

    def shutdown(self, *, wait: bool = True) -> None:
        """Release workers; attempts still running are abandoned."""

    def abandoned(self) -> list[tuple[str, str, int, float]]:
        """Attempts stopped (cancel, timeout) whose code this executor could not end and
        that still run: ``(execution id, task, attempt, since)`` (Unix time of the stop).
        Empty for executors that kill what they stop."""
        return []


QUEUED, RUNNING, DONE = 0, 1, 2


class Attempt:
    """The handle of a ``QueueExecutor``: one attempt, its state, the worker running it."""

    __slots__ = ("job", "report", "slot", "state", "stopped")

    def __init__(self, job: Job, report: Report) -> None:
        self.job, self.report = job, report
        self.state = QUEUED
        self.stopped = False
        self.slot: object = None  # the worker running it, for ``_stop_running``


class QueueExecutor(Executor):
    """Base of the executors whose own workers take attempts from one queue (thread,
    process): submitting, a worker claiming an attempt, stopping one still queued."""

    reports_start = True

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: Job, report: Report) -> Attempt:
        attempt = Attempt(job, report)
        if self._closed:
            log.warning(
                "%s executor is shut down; attempt %s of task %r abandoned",
                self.name,
                job.attempt,
                job.task,
            )
        else:
            self._queue.put(attempt)
        return attempt

    def _claim(self, attempt: Attempt, slot: object = None, *, starts: bool = True) -> bool:
        """A worker takes ``attempt`` off the queue: False when it was stopped meanwhile
        (already reported); else it is running, and its start is reported if it is timed
        (unless ``starts`` is False: a worker that queues attempts of its own reports
        their start when it really begins)."""
        with self._lock:
            if attempt.state != QUEUED:
                return False
            attempt.state, attempt.slot = RUNNING, slot
        if starts and attempt.job.timeout is not None:
            attempt.report(Started(attempt.job.task, attempt.job.attempt, attempt.job.map_index))
        return True

    def stop(self, handle: Attempt | None) -> None:
        if handle is None:
            return
        with self._lock:
            if handle.state == DONE or handle.stopped:
                return
            handle.stopped = True
            # under the lock: the worker cannot move on
            if handle.state == RUNNING and self._stop_running(handle):
                return  # its worker reports how it ended
            handle.state = DONE
        self._deliver(handle, failed_outcome(handle.job, STOPPED_QUEUED))  # it never runs

    def _deliver(self, attempt: Attempt, outcome: Outcome) -> None:
        """Report an attempt's outcome; a failing ``report`` is logged, not raised."""
        try:
            attempt.report(outcome)
        except Exception:
            log.exception("%s executor: reporting task %r failed", self.name, attempt.job.task)

    def _stop_running(self, handle: Attempt) -> bool:
        """Stop a running attempt, if this executor can (called under the lock). False
        when a worker had taken it but not yet begun it, and never will: ``stop`` then
        reports it stopped before it started."""
        return True


def attempt_hooks(job: Job, report: Report) -> Hooks:
    """The ``Hooks`` of one attempt run in this process: a stop event, and progress
    reported to the engine as ``Progress`` messages."""

    def progress(done: int, total: int) -> None:
        report(Progress(job.task, job.attempt, done, total, job.map_index))

    def logs(stdout: str, stderr: str) -> None:
        limit = job.log_limit
        report(Logs(job.task, job.attempt, stdout[:limit], stderr[:limit], job.map_index))

    return Hooks(threading.Event(), progress, logs)
