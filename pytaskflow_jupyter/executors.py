"""Executors run task attempts; the engine never cares which one.

    Executor (interface)
    ├── InlineExecutor   runs the attempt in the caller's thread (tests, debugging)
    ├── ThreadExecutor   a thread pool (default in kernels); cannot stop running code
    ├── ProcessExecutor  worker processes (default in the server); stops code for real
    └── DaskExecutor     a distributed.Client (configured address or a LocalCluster)

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
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .tasks import Job, Outcome, Started, failed_outcome, run_job

if TYPE_CHECKING:
    from ._dask import DaskExecutor
    from ._process import ProcessExecutor

__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "InlineExecutor", "ProcessExecutor",
           "ThreadExecutor", "make_executor"]

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


def _work(job: Job, report: Report) -> None:
    if job.timeout is not None:
        report(Started(job.task, job.attempt))
    report(run_job(job))


class ThreadExecutor(Executor):
    """A pool of threads; a running attempt cannot be stopped (only abandoned)."""

    name = "thread"
    reports_start = True

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or min(32, (os.cpu_count() or 1) + 4)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="taskflow")

    def submit(self, job: Job, report: Report) -> tuple[Future[None], Job, Report]:
        return self._pool.submit(_work, job, report), job, report

    def stop(self, handle: tuple[Future[None], Job, Report] | None) -> None:
        if handle is None:
            return
        future, job, report = handle
        if future.cancel():  # still queued: it will never run, so report it here
            report(failed_outcome(job, STOPPED_QUEUED))

    def shutdown(self, *, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)


def _process(workers: int | None = None, memory_limit: int | None = None,
             max_tasks_per_worker: int | None = None, **_: Any) -> Executor:
    from ._process import ProcessExecutor

    return ProcessExecutor(workers, memory_limit=memory_limit,
                           max_tasks_per_worker=max_tasks_per_worker)


def _dask(workers: int | None = None, address: str | None = None, **options: Any) -> Executor:
    from ._dask import DaskExecutor

    return DaskExecutor(workers, address=address,
                        **{k: v for k, v in options.items() if k in DaskExecutor.OPTIONS})


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
