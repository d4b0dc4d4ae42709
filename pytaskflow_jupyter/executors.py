"""Executors run task attempts; the engine never cares which one.

    Executor (interface)
    ├── InlineExecutor       runs the attempt in the caller's thread (tests, debugging)
    ├── QueueExecutor        own workers taking attempts from one queue
    │   ├── ThreadExecutor   a thread pool (default in kernels); cannot stop running code
    │   └── ProcessExecutor  worker processes (default in the server); stops code for real
    └── DaskExecutor         a distributed.Client (configured address or a LocalCluster)

The last two live in private modules (``_process.py``, ``_dask.py``) and are imported
when first used: ``distributed`` takes a second to import and is optional.

``submit(job, report)`` starts one attempt and returns a handle; the executor calls
``report(outcome)`` exactly once, from any thread, when the attempt ends (the engine's
``report`` only puts the outcome on its queue). An executor with ``reports_start``
also reports ``Started`` when an attempt of a job with a ``timeout`` begins to run, so
that time spent queued behind other attempts does not count against the timeout; for
the others the clock starts at submission. ``stop(handle)`` stops a running
attempt where the executor can (``can_stop``); the engine ignores late outcomes of
attempts it has given up on, so stopping is best effort and never a correctness issue.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .tasks import Job, Outcome, Started, failed_outcome, run_job

if TYPE_CHECKING:
    from ._dask import DaskExecutor
    from ._process import ProcessExecutor

__all__ = [
    "EXECUTORS",
    "Attempt",
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "QueueExecutor",
    "ThreadExecutor",
    "make_executor",
]

log = logging.getLogger(__name__)

Report = Callable[[Outcome | Started], None]
STOPPED_QUEUED = "Stopped: the attempt was stopped before it started"


class Executor:
    """Interface of every executor (see the module docstring)."""

    name = "abstract"
    can_stop = False
    reports_start = False

    def submit(self, job: Job, report: Report) -> Any:
        """Start one attempt; ``report`` gets its ``Outcome``. Returns a handle for ``stop``."""
        raise NotImplementedError

    def stop(self, handle: Any) -> None:
        """Stop a running attempt if this executor can; its outcome is then ignored."""

    def shutdown(self, *, wait: bool = True) -> None:
        """Release workers; attempts still running are abandoned."""


class InlineExecutor(Executor):
    """Runs each attempt at once in the submitting thread: real code, no concurrency."""

    name = "inline"

    def submit(self, job: Job, report: Report) -> Any:
        report(run_job(job))
        return None


QUEUED, RUNNING, DONE = 0, 1, 2


class Attempt:
    """The handle of a ``QueueExecutor``: one attempt, its state, the worker running it."""

    __slots__ = ("job", "report", "slot", "state", "stopped")

    def __init__(self, job: Job, report: Report) -> None:
        self.job, self.report = job, report
        self.state = QUEUED
        self.stopped = False
        self.slot: Any = None


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

    def _claim(self, attempt: Attempt, slot: Any = None) -> bool:
        """A worker takes ``attempt`` off the queue: False when it was stopped meanwhile
        (already reported); else it is running, and its start is reported if it is timed."""
        with self._lock:
            if attempt.state != QUEUED:
                return False
            attempt.state, attempt.slot = RUNNING, slot
        if attempt.job.timeout is not None:
            attempt.report(Started(attempt.job.task, attempt.job.attempt))
        return True

    def stop(self, handle: Attempt | None) -> None:
        if handle is None:
            return
        with self._lock:
            if handle.state == DONE or handle.stopped:
                return
            handle.stopped = True
            if handle.state == RUNNING:
                self._stop_running(handle)  # under the lock: the worker cannot move on
                return
            handle.state = DONE
        self._deliver(handle, failed_outcome(handle.job, STOPPED_QUEUED))  # it never runs

    def _deliver(self, attempt: Attempt, outcome: Outcome) -> None:
        """Report an attempt's outcome; a failing ``report`` is logged, not raised."""
        try:
            attempt.report(outcome)
        except Exception:
            log.exception("%s executor: reporting task %r failed", self.name, attempt.job.task)

    def _stop_running(self, handle: Attempt) -> None:
        """Stop a running attempt, if this executor can (called under the lock)."""


class ThreadExecutor(QueueExecutor):
    """A pool of threads; a running attempt cannot be stopped (only abandoned).

    Its own pool rather than ``concurrent.futures``: one queue put per attempt, no
    Future, no per-submit semaphore (the engine submits thousands of attempts a turn).
    """

    name = "thread"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        self.workers = workers or min(32, (os.cpu_count() or 1) + 4)
        self._threads = [
            threading.Thread(target=self._serve, name=f"taskflow-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def _serve(self) -> None:
        while True:
            attempt = self._queue.get()
            if attempt is None:
                return
            if self._closed or not self._claim(attempt):
                continue  # shut down, or stopped while queued (already reported)
            outcome = run_job(attempt.job)
            attempt.state = DONE
            attempt.report(outcome)

    def shutdown(self, *, wait: bool = True) -> None:
        """Queued attempts are dropped unreported; running ones end (``wait``) or are
        abandoned."""
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()


def _process(
    workers: int | None = None,
    memory_limit: int | None = None,
    max_tasks_per_worker: int | None = None,
    **_: Any,
) -> Executor:
    from ._process import ProcessExecutor

    return ProcessExecutor(
        workers, memory_limit=memory_limit, max_tasks_per_worker=max_tasks_per_worker
    )


def _dask(workers: int | None = None, address: str | None = None, **options: Any) -> Executor:
    from ._dask import DaskExecutor

    return DaskExecutor(
        workers, address=address, **{k: v for k, v in options.items() if k in DaskExecutor.OPTIONS}
    )


EXECUTORS: dict[str, Callable[..., Executor]] = {
    "inline": lambda **_: InlineExecutor(),
    "thread": lambda workers=None, **_: ThreadExecutor(workers),
    "process": _process,
}
if importlib.util.find_spec("distributed") is not None:
    EXECUTORS["dask"] = _dask
_registry_lock = threading.Lock()


def make_executor(kind: str, **options: Any) -> Executor:
    """Build an executor by name (``inline``, ``thread``, ``process``, ``dask``)."""
    try:
        factory = EXECUTORS[kind]
    except KeyError:
        raise ValueError(f"unknown executor {kind!r}; known: {', '.join(EXECUTORS)}") from None
    return factory(**options)


def __getattr__(name: str) -> Any:
    # ProcessExecutor / DaskExecutor without importing loky or distributed up front
    if name == "ProcessExecutor":
        from ._process import ProcessExecutor

        return ProcessExecutor
    if name == "DaskExecutor":
        from ._dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
