"""The Dask executor: attempts run as futures of a ``distributed.Client``.

Design
------
The client connects to ``address`` when one is configured; otherwise the executor starts
a ``LocalCluster`` (one single-threaded worker process per unit of concurrency, no
dashboard) on first use and closes it on ``shutdown``. Each attempt is one
``client.submit(run_job, job, pure=False)``: ``pure=False`` because two attempts of the
same task with the same inputs must both run (Dask would otherwise merge them by key).

Futures are the only thing that keeps a result alive on the cluster, and Dask cancels a
future that is garbage-collected, so the executor holds each future until its outcome is
reported, then drops it: the scheduler forgets the key, and a worker lost later cannot
make Dask recompute finished work.

A worker lost mid-task: Dask reruns the task on another worker (the same attempt, up to
``distributed.scheduler.allowed-failures`` times, default 3); after that the future errs
with ``KilledWorker`` and the attempt fails, so the task's retries apply. Either way the
execution goes on; it never waits for a result that cannot come.

``stop`` cancels the future. Dask cannot interrupt Python code running in a worker
thread, so with ``kill_running`` (the default for the cluster the executor starts, where a
worker runs one task at a time) the worker executing the attempt is restarted through its
nanny, which really stops the code; on a cluster at a configured address the running code
is left to finish in the background (its outcome is ignored) unless ``kill_running=True``.

``report`` runs on Dask's callback thread, once per attempt, except after ``shutdown``
(abandoned attempts are not reported; see ``_process.py`` for why).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import traceback as tb
import uuid
from typing import TYPE_CHECKING, Any

from ._executor import Executor, Report
from .tasks import Job, Outcome, run_job
from .tasks import failed_outcome as _failed

if TYPE_CHECKING:
    # distributed ships type hints but leaves some of its API unannotated (Client(),
    # LocalCluster(), wait(), run_on_scheduler, most Future methods): each of those
    # calls carries a narrow ignore
    from distributed import Client, Future, LocalCluster, Scheduler, Worker

__all__ = ["DaskExecutor"]

log = logging.getLogger(__name__)


class _Handle:
    """What ``submit`` returns: one attempt's future while it is in flight."""

    __slots__ = ("future", "job", "key", "report", "stopped")

    def __init__(self, job: Job, report: Report, key: str) -> None:
        self.job, self.report, self.key = job, report, key
        self.future: Future[Outcome] | None = None
        self.stopped = False


def _executing_pid(key: str, dask_worker: Worker) -> int | None:
    """Runs on a worker: its pid if ``key`` is running in one of its threads."""
    ts = dask_worker.state.tasks.get(key)
    if ts is not None and ts.state in ("executing", "long-running", "cancelled"):
        return os.getpid()
    return None


def _processing_on(key: str, dask_scheduler: Scheduler) -> str | None:
    """Runs on the scheduler: the worker ``key`` is assigned to, if any."""
    ts = dask_scheduler.tasks.get(key)
    return ts.processing_on.address if ts is not None and ts.processing_on else None


class DaskExecutor(Executor):
    """Runs attempts on a Dask cluster (see the module docstring)."""

    name = "dask"
    OPTIONS = frozenset({"kill_running", "connect_timeout", "cluster_options"})

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        kill_running: bool | None = None,
        connect_timeout: float = 30.0,
        cluster_options: dict[str, Any] | None = None,
    ) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.address = address
        self.kill_running = address is None if kill_running is None else kill_running
        self.can_stop = self.kill_running
        self.connect_timeout = connect_timeout
        self.cluster_options = cluster_options or {}
        self.client: Client | None = None
        self.cluster: LocalCluster | None = None
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._inflight: dict[str, _Handle] = {}
        self._stoppers: list[threading.Thread] = []
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> Client:
        """Connect (or start the LocalCluster) now; ``submit`` does it when first called."""
        with self._start_lock:
            if self.client is not None and (
                self.cluster is not None or self.client.status not in ("closing", "closed")
            ):
                return self.client
            if self._closed:
                raise RuntimeError("the Dask executor is shut down")
            from distributed import Client, LocalCluster

            if self.address:  # (again, after the scheduler was lost: the client closes)
                self.client = Client(  # type: ignore[no-untyped-call]
                    self.address, set_as_default=False, timeout=self.connect_timeout
                )
            else:
                # no dashboard; the scheduler's small HTTP server (health, metrics) on a
                # free port, not 8787: another cluster may have that one
                options = {
                    "n_workers": self.workers,
                    "threads_per_worker": 1,
                    "processes": True,
                    "dashboard_address": None,
                    "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
                    "silence_logs": logging.ERROR,
                    **self.cluster_options,
                }
                self.cluster = LocalCluster(**options)  # type: ignore[no-untyped-call]
                self.client = Client(  # type: ignore[no-untyped-call]
                    self.cluster, set_as_default=False, timeout=self.connect_timeout
                )
            return self.client

    def shutdown(self, *, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            futures = [h.future for h in self._inflight.values() if h.future is not None]
        for thread in self._stoppers:
            thread.join(10)
        client, cluster = self.client, self.cluster
        if client is not None and wait and futures:
            from distributed import wait as dask_wait

            dask_wait(futures)  # type: ignore[no-untyped-call]
        with self._lock:
            self._inflight.clear()  # abandoned: callbacks that still come report nothing
        if client is not None:
            client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()

    # -- attempts -------------------------------------------------------------------------
    def submit(self, job: Job, report: Report) -> _Handle:
        key = f"taskflow-{job.task}-{job.attempt}-{uuid.uuid4().hex[:12]}"
        handle = _Handle(job, report, key)
        if self._closed:
            log.warning(
                "Dask executor is shut down; attempt %s of task %r abandoned", job.attempt, job.task
            )
            return handle
        try:
            client = self.start()
        except Exception as exc:
            where = self.address or "a LocalCluster"
            report(
                _failed(
                    job,
                    f"DaskUnavailable: cannot use the Dask cluster at {where}: "
                    f"{type(exc).__name__}: {exc}",
                )
            )
            return handle
        with self._lock:
            self._inflight[key] = handle
        try:
            future = client.submit(run_job, job, key=key, pure=False)
        except Exception as exc:  # job not serialisable, client closed
            with self._lock:
                self._inflight.pop(key, None)
            report(
                _failed(
                    job,
                    f"{type(exc).__name__}: task {job.task!r} cannot be sent to Dask: {exc}",
                    tb.format_exc(),
                )
            )
            return handle
        handle.future = future  # held until reported: Dask cancels collected futures
        future.add_done_callback(lambda fut, h=handle: self._done(h, fut))  # type: ignore[no-untyped-call]
        return handle

    def _done(self, handle: _Handle, future: Future[Outcome]) -> None:
        """Dask's callback thread: turn the future's end into the attempt's Outcome."""
        with self._lock:
            if self._inflight.pop(handle.key, None) is None:
                return  # abandoned at shutdown
        handle.future = None  # released: the scheduler forgets the key and its result
        outcome = self._outcome(handle, future)
        try:
            handle.report(outcome)
        except Exception:
            log.exception("Dask executor: reporting task %r failed", handle.job.task)

    @staticmethod
    def _outcome(handle: _Handle, future: Future[Outcome]) -> Outcome:
        job = handle.job
        status = future.status
        if status == "finished":
            try:
                result = future.result()
            except Exception as exc:
                return _failed(
                    job,
                    f"{type(exc).__name__}: cannot fetch the result of task "
                    f"{job.task!r} from Dask: {exc}",
                    tb.format_exc(),
                )
            if isinstance(result, Outcome):
                return result
            return _failed(job, f"TypeError: Dask returned {type(result).__name__}, not an Outcome")
        if status == "cancelled" or handle.stopped:
            return _failed(
                job,
                "Stopped: the Dask future was cancelled"
                if handle.stopped
                else "Cancelled: Dask cancelled the attempt (client or scheduler lost?)",
            )
        error = future.exception()  # type: ignore[no-untyped-call]
        trace = future.traceback()  # type: ignore[no-untyped-call]
        text = "".join(tb.format_tb(trace)) if trace else None
        if type(error).__name__ == "KilledWorker":
            return _failed(
                job,
                f"WorkerDied: Dask lost every worker that ran task "
                f"{job.task!r} (KilledWorker: {error})",
                text,
            )
        return _failed(job, f"{type(error).__name__}: {error}", text)

    def stop(self, handle: _Handle | None) -> None:
        if handle is None:
            return
        with self._lock:
            if handle.key not in self._inflight or handle.stopped:
                return
            handle.stopped = True
            future = handle.future
        if future is None:
            return
        if self.kill_running:
            # asking the cluster takes round trips: not on the engine's loop thread
            thread = threading.Thread(
                target=self._stop_running,
                args=(future, handle.key),
                name="taskflow-dask-stop",
                daemon=True,
            )
            with self._lock:
                self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]
            thread.start()
        else:
            self._cancel(future)

    def _cancel(self, future: Future[Outcome]) -> None:
        try:
            future.cancel(reason="stopped by pytaskflow (timeout or cancel)")  # type: ignore[no-untyped-call]
        except Exception:
            log.exception("Dask executor: cancelling %s failed", future.key)

    def _stop_running(self, future: Future[Outcome], key: str) -> None:
        """Cancel, and end the worker process if it is running the attempt's code: our
        own LocalCluster's worker is SIGKILLed (its nanny starts a new one at once),
        another cluster's is restarted through its nanny (slower: a graceful close)."""
        client = self.client
        if client is None:  # shut down meanwhile
            self._cancel(future)
            return
        try:
            where = client.run_on_scheduler(_processing_on, key)  # type: ignore[no-untyped-call]
            pid = client.run(_executing_pid, key, workers=[where]).get(where) if where else None
        except Exception:
            log.exception("Dask executor: cannot locate task %s", key)
            where, pid = None, None
        self._cancel(future)
        if pid is None or self._closed:
            return
        try:
            if self.cluster is not None:
                os.kill(pid, signal.SIGKILL)
            else:
                client.restart_workers([where], raise_for_error=False)
        except Exception:
            log.exception("Dask executor: stopping worker %s failed", where)
