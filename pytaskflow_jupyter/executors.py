"""Executors run task attempts; the engine never cares which one.

    Executor (interface)
    ├── InlineExecutor       runs the attempt in the caller's thread (tests, debugging)
    ├── QueueExecutor        own workers taking attempts from one queue
    │   ├── ThreadExecutor   a thread pool (default in kernels); cannot stop running code
    │   └── ProcessExecutor  worker processes (default in the server); stops code for real
    └── DaskExecutor         a distributed.Client (configured address or a LocalCluster)

This module is the public face. The interface, ``Executor``, ``QueueExecutor`` and the
``submit``/``report``/``stop`` contract, lives in ``_executor.py``, below every
executor. ``ProcessExecutor`` and ``DaskExecutor`` live in private modules
(``_process.py``, ``_dask.py``) and are imported when first used: ``distributed`` takes
a second to import and is optional, and the server only needs loky once it starts a
process executor.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._executor import DONE, Attempt, Executor, QueueExecutor, Report, attempt_hooks
from .kinds import NO_HOOKS, Hooks
from .tasks import Job, failed_outcome, run_job, uses_hooks

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
    "Report",
    "TaskStopped",
    "ThreadExecutor",
    "make_executor",
]

log = logging.getLogger(__name__)


class InlineExecutor(Executor):
    """Runs each attempt at once in the submitting thread: real code, no concurrency."""

    name = "inline"

    def submit(self, job: Job, report: Report) -> None:
        report(run_job(job, attempt_hooks(job, report) if uses_hooks(job) else NO_HOOKS))


class TaskStopped(BaseException):
    """Raised inside a thread running an attempt that was stopped (cancel, timeout).
    A ``BaseException``, so that ``except Exception`` in task code does not swallow it."""


def _raise_in_thread(ident: int, exc: type[BaseException] | None) -> None:
    """Schedule ``exc`` in the thread ``ident`` (CPython's asynchronous exception: it is
    raised at the thread's next Python instruction); None clears one not yet raised."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(exc) if exc is not None else None
    )


class _Running:
    """What ``_stop_running`` needs of an attempt running in a pool thread."""

    __slots__ = ("hooks", "ident")

    def __init__(self, hooks: Hooks, ident: int) -> None:
        self.hooks, self.ident = hooks, ident


class ThreadExecutor(QueueExecutor):
    """A pool of threads. A running attempt is stopped where Python can stop it: a
    ``TaskStopped`` raised in its thread ends Python code at its next instruction; code
    blocked in C (a long ``time.sleep``, a C extension's loop) runs on until it returns
    to Python, and ends there. A kind that takes hooks (a notebook) is asked to stop
    through its hooks instead, and stops itself.

    Its own pool rather than ``concurrent.futures``: one queue put per attempt, no
    Future, no per-submit semaphore (the engine submits thousands of attempts a turn).

    A pool thread that reports an ended attempt may run the engine's turn itself
    (``in_turn``); the first attempt that turn submits stays with that thread, which
    runs it next: a chain's step then costs no thread hand-off at all.
    """

    name = "thread"

    ABANDON_AFTER = 0.5  # seconds a stopped attempt may take to end before it is reported

    def __init__(self, workers: int | None = None) -> None:
        super().__init__()
        self.workers = workers or min(32, (os.cpu_count() or 1) + 4)
        self._stopping: dict[Attempt, float] = {}  # stopped, still running: since when
        self._local = threading.local()  # a pool thread's: reporting, its next attempt
        self.in_turn = self._reporting
        self._threads = [
            threading.Thread(target=self._serve, name=f"taskflow-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def _reporting(self) -> bool:
        """Whether this thread is a pool thread reporting an attempt that has ended."""
        return getattr(self._local, "reporting", False)

    def submit(self, job: Job, report: Report) -> Attempt:
        local = self._local
        if getattr(local, "reporting", False) and local.next is None and not self._closed:
            local.next = attempt = Attempt(job, report)  # this thread runs it next
            return attempt
        return super().submit(job, report)

    def _serve(self) -> None:
        # the pool never shrinks: nothing an attempt brings (``run_job`` turns every
        # BaseException of task code into a failed outcome) may end a worker thread
        local = self._local
        local.reporting, local.next = False, None
        while True:
            attempt = local.next
            if attempt is None:
                attempt = self._queue.get()
                if attempt is None:
                    return
            else:
                local.next = None
            try:
                self._run(attempt)
            except BaseException:
                log.exception("thread executor: attempt of task %r", attempt.job.task)

    def _run(self, attempt: Attempt) -> None:
        job = attempt.job
        hooks = attempt_hooks(job, attempt.report) if uses_hooks(job) else NO_HOOKS
        if self._closed or not self._claim(attempt, _Running(hooks, threading.get_ident())):
            return  # shut down, or stopped while queued (already reported)
        try:
            outcome = run_job(job, hooks, attempt.report)
        except TaskStopped:  # raised after the task's code, in run_job's own wrap-up
            outcome = failed_outcome(job, "Stopped: the attempt was stopped")
        finally:
            self._end_attempt(attempt)
        local = self._local
        local.reporting = True  # what the engine's turn submits now may stay here
        try:
            self._deliver(attempt, outcome)
        finally:
            local.reporting = False

    def _end_attempt(self, attempt: Attempt) -> None:
        """Mark the attempt done under the lock, so that no stop raises in this thread
        any more, and clear a stop raised too late to land in the attempt."""
        while True:
            try:
                with self._lock:
                    attempt.state = DONE
                    if attempt.stopped:
                        _raise_in_thread(threading.get_ident(), None)
                        self._stopping.pop(attempt, None)
                return
            except TaskStopped:  # it landed here: the attempt is over anyway
                continue

    def _stop_running(self, handle: Attempt) -> bool:
        running = handle.slot
        if not isinstance(running, _Running):
            return True
        self._stopping[handle] = time.time()
        if running.hooks.stop is not None:  # a kind that takes hooks stops itself
            running.hooks.stop.set()
        else:  # under the executor's lock: the thread is still in this attempt
            _raise_in_thread(running.ident, TaskStopped)
        return True

    def abandoned(self) -> list[tuple[str, str, int, float]]:
        """Stopped attempts still running ``ABANDON_AFTER`` seconds after their stop:
        code blocked in C, which only ends when it returns to Python."""
        late = time.time() - self.ABANDON_AFTER
        with self._lock:
            return [
                (a.job.execution_id, a.job.task, a.job.attempt, since)
                for a, since in self._stopping.items()
                if since <= late
            ]

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


def _make_process(
    workers: int | None = None,
    memory_limit: int | None = None,
    max_tasks_per_worker: int | None = None,
    nice: int | None = None,
    **_: Any,
) -> Executor:
    from ._process import ProcessExecutor

    return ProcessExecutor(
        workers,
        memory_limit=memory_limit,
        max_tasks_per_worker=max_tasks_per_worker,
        nice=nice,
    )


def _make_dask(workers: int | None = None, address: str | None = None, **options: Any) -> Executor:
    from ._dask import DaskExecutor

    return DaskExecutor(
        workers, address=address, **{k: v for k, v in options.items() if k in DaskExecutor.OPTIONS}
    )


def _make_thread(workers: int | None = None, **_: Any) -> Executor:
    return ThreadExecutor(workers)


def _make_inline(**_: Any) -> Executor:
    return InlineExecutor()


EXECUTORS: dict[str, Callable[..., Executor]] = {
    "inline": _make_inline,
    "thread": _make_thread,
    "process": _make_process,
}
if importlib.util.find_spec("distributed") is not None:
    EXECUTORS["dask"] = _make_dask


def make_executor(kind: str, **options: Any) -> Executor:
    """Build an executor by name (``inline``, ``thread``, ``process``, ``dask``)."""
    try:
        factory = EXECUTORS[kind]
    except KeyError:
        raise ValueError(f"unknown executor {kind!r}; known: {', '.join(EXECUTORS)}") from None
    return factory(**options)


def __getattr__(name: str) -> type[Executor]:
    # ProcessExecutor / DaskExecutor without importing loky or distributed up front
    if name == "ProcessExecutor":
        from ._process import ProcessExecutor

        return ProcessExecutor
    if name == "DaskExecutor":
        from ._dask import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
