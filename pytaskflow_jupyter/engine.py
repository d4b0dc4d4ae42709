"""The scheduling loop: one execution of one workflow, from first task to final status.

Design
------
``ExecutionRun.run`` is the only code that changes the run state of an execution
(graphlib's sorter and dask's ``finish_task`` are the models). Workers never touch it:
an executor reports each attempt's ``Outcome`` through ``self._queue``, and so do
``cancel()`` and timers. One turn of the loop:

1. take every message waiting on the queue (outcomes, cancel) and apply it;
2. fire due timers (retry back-off over, attempt past its ``timeout``);
3. decide the tasks whose dependencies are all finished (``_ready``): run, or skip
   with a reason, by the task's trigger rule; a skip cascades at once;
4. commit the turn's changes -- task rows, execution row, events -- to the store in
   ONE transaction, then publish the events (commit before publish);
5. hand the attempts that step 3 marked ``running`` to the executor (a window bounds
   how many are in flight, ``max_parallel`` per workflow bounds it further).

Batching a turn's changes in one transaction keeps per-task overhead near a function
call plus a row write, however many tasks finish together.

Task states: ``pending -> running -> completed | failed`` with ``running -> pending``
while a retry waits out its back-off; ``pending -> skipped`` (reason ``not_selected``,
``upstream_skipped``, ``upstream_failed`` or ``no_upstream_failed``) and
``pending | running -> cancelled``. Every rule waits until ALL direct dependencies have
finished (none fires early), so a task never starts before its dependencies end.

For trigger rules a dependency counts as *succeeded* when ``completed``, as *failed*
when ``failed`` or skipped because of a failure upstream, and as *skipped* otherwise:

=============================  =====================================================
rule                           runs when (else skipped with the reason shown)
=============================  =====================================================
none_failed_min_one_success    no failed, >= 1 succeeded (failed: upstream_failed;
(default)                      all skipped: upstream_skipped)
all_success                    all succeeded (failed: upstream_failed, else upstream_skipped)
all_done                       always
one_success                    >= 1 succeeded (else upstream_failed / upstream_skipped)
one_failed                     >= 1 failed (else no_upstream_failed)
=============================  =====================================================

A branch's selection must name direct downstream tasks (else the branch fails); its
other direct downstream tasks are skipped (``not_selected``) unless they are reachable
from a selected one (Airflow's ``skip_all_except`` rule, so ``branch -> a -> join`` with
``branch -> join`` still runs ``join``).

Cancellation is final: no task starts after it. The execution is ``failed`` when any
task failed, ``completed`` when every task completed or was skipped.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._rows import TaskRow, encode_result
from .events import EventBus, make_event
from .executors import Executor
from .model import ExecStatus, Reason, TaskSpec, TaskStatus, Workflow, iso
from .store import Store
from .tasks import Job, Outcome, Started, TaskCodeError

__all__ = ["ExecutionRun"]

log = logging.getLogger(__name__)

_CANCEL = object()
_SUCCESS, _FAILED, _SKIPPED = 0, 1, 2
Resolver = Callable[[str], Callable[..., Any] | None]


class _Task:
    """Loop-private state of one task."""

    __slots__ = ("children", "counts", "handle", "not_selected", "remaining", "row", "spec")

    def __init__(self, spec: TaskSpec, row: TaskRow) -> None:
        self.spec = spec
        self.row = row
        self.children: list[_Task] = []
        self.remaining = 0
        self.counts = [0, 0, 0]
        self.not_selected = False
        self.handle: Any = None


class ExecutionRun:
    """Runs one stored execution to its end (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        bus: EventBus,
        workflow: Workflow,
        execution_id: str,
        *,
        params: dict[str, Any] | None = None,
        prior: dict[str, TaskRow] | None = None,
        resolve: Resolver | None = None,
        window: int = 2048,
        fast_noop: bool = True,
        capture: bool = True,
        log_limit: int = 64 * 1024,
        root_dir: str | None = None,
        control_interval: float = 0.5,
    ) -> None:
        self.store, self.executor, self.bus = store, executor, bus
        self.workflow = workflow
        self.execution_id = execution_id
        self.params = params or {}
        self.resolve = resolve
        self.fast_noop = fast_noop
        self.capture, self.log_limit, self.root_dir = capture, log_limit, root_dir
        self.window = min(window, workflow.max_parallel or window)
        self.control_interval = control_interval
        self.status = ExecStatus.PENDING
        self.done = threading.Event()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._tasks = {
            s.name: _Task(s, (prior or {}).get(s.name) or TaskRow(s.name)) for s in workflow.tasks
        }
        self._results: dict[str, Any] = {}
        self._ready: deque[_Task] = deque()
        self._runnable: deque[_Task] = deque()
        self._timers: list[tuple[float, int, str, int, str]] = []
        self._timer_seq = 0
        self._inflight = 0
        self._open = len(self._tasks)
        self._dirty: dict[str, TaskRow] = {}
        self._events: list[dict[str, Any]] = []
        self._logs: list[tuple[str, int, str, str]] = []
        self._exec_update: dict[str, Any] = {}
        self._cancelled = False
        self._stopped = False

    # -- public, thread-safe ------------------------------------------------------------
    def report(self, outcome: Outcome | Started) -> None:
        """Executor callback: queue an attempt's outcome (or start) for the loop."""
        self._queue.put(outcome)

    def cancel(self) -> None:
        """Ask the loop to cancel the execution (final)."""
        self._queue.put(_CANCEL)

    def start(self) -> threading.Thread:
        """Run the loop in a daemon thread."""
        thread = threading.Thread(
            target=self.run, name=f"taskflow-{self.execution_id}", daemon=True
        )
        thread.start()
        return thread

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> str:
        """Run until the execution reaches a terminal status; return that status."""
        try:
            self._begin()
            next_control = time.monotonic() + self.control_interval
            while not self._stopped:
                self._decide()
                # an attempt runs only once its row says "running" durably: what a
                # notebook or the panel shows never lags behind the code that runs
                started = self._start_attempts()
                if not self._flush():
                    break
                self._submit(started)
                if self._open == 0 and self._inflight == 0:
                    self._finish()
                    break
                now = time.monotonic()
                if now >= next_control:
                    self._poll_control()
                    next_control = now + self.control_interval
                self._wait(min(next_control, self._timers[0][0] if self._timers else next_control))
        except Exception:
            log.exception("execution %s: engine loop failed", self.execution_id)
            self._abort()
        finally:
            self.done.set()
        return self.status

    def _begin(self) -> None:
        for task in self._tasks.values():
            for dep in task.spec.dependencies:
                self._tasks[dep].children.append(task)
        for task in self._tasks.values():
            row = task.row
            if row.status in (
                TaskStatus.COMPLETED,
                TaskStatus.SKIPPED,
                TaskStatus.FAILED,
                TaskStatus.CANCELLED,
            ):
                self._open -= 1
                self._results[row.name] = row.result
                if row.branch:
                    self._apply_branch(task, row.branch.get("selected", []))
            elif row.status == TaskStatus.RUNNING:
                # resumed after a crash: the attempt's outcome is lost (at-least-once)
                self._interrupted(task)
        for task in self._tasks.values():
            for dep in task.spec.dependencies:
                drow = self._tasks[dep].row
                if drow.status in (TaskStatus.COMPLETED, TaskStatus.SKIPPED, TaskStatus.FAILED):
                    task.counts[self._kind(drow)] += 1
                else:
                    task.remaining += 1
        self._ready.extend(
            t
            for t in self._tasks.values()
            if t.remaining == 0 and t.row.status == TaskStatus.PENDING
        )
        first = self.store.execution_row(self.execution_id)
        self.status = ExecStatus.RUNNING
        if first["status"] == ExecStatus.PENDING:
            now = time.time()
            self._exec_update.update(status=ExecStatus.RUNNING, start_time=iso(now))
            self._emit("execution_started", None, ExecStatus.RUNNING)
        else:
            self._exec_update["status"] = ExecStatus.RUNNING

    def _interrupted(self, task: _Task) -> None:
        row = task.row
        if row.attempts < task.spec.retries + 1:
            row.status = TaskStatus.PENDING
            self._mark(task)
        else:
            row.status, row.reason = TaskStatus.FAILED, Reason.INTERRUPTED
            row.error = row.error or "the process running this task stopped (interrupted)"
            row.end_time = row.end_time or iso(time.time())
            self._open -= 1
            self._mark(task)
            self._emit(
                "task_failed",
                row.name,
                TaskStatus.FAILED,
                error=row.error,
                attempt=row.attempts,
                reason=Reason.INTERRUPTED,
            )

    def _wait(self, deadline: float) -> None:
        q = self._queue
        if q.empty():
            timeout = deadline - time.monotonic()
            msg = None
            if timeout > 0:
                with contextlib.suppress(queue.Empty):
                    msg = q.get(timeout=timeout)
            if msg is not None:
                self._handle(msg)
        while not q.empty():  # only this thread takes from the queue
            self._handle(q.get_nowait())
        if self._timers:
            self._fire_timers()

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, Outcome):  # the common case first
            self._outcome(msg)
        elif msg is _CANCEL:
            self._cancel()
        elif isinstance(msg, Started):
            task = self._tasks.get(msg.task)
            if (
                task is not None
                and task.row.status == TaskStatus.RUNNING
                and task.row.attempts == msg.attempt
                and not self._cancelled
            ):
                self._add_timer(task.spec.timeout or 0.0, "timeout", task)

    def _outcome(self, msg: Outcome) -> None:
        task = self._tasks.get(msg.task)
        if (
            task is None
            or task.row.status != TaskStatus.RUNNING
            or task.row.attempts != msg.attempt
            or self._cancelled
        ):
            return  # late outcome of an attempt given up on (timeout, cancel)
        self._inflight -= 1
        task.handle = None
        if msg.stdout or msg.stderr:
            self._logs.append((task.spec.name, msg.attempt, msg.stdout, msg.stderr))
        if msg.ok:
            self._succeeded(task, msg.result, msg.started, msg.finished)
        else:
            self._attempt_failed(
                task, msg.error or "failed", msg.traceback, msg.started, msg.finished
            )

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, attempt, name = heapq.heappop(self._timers)
            task = self._tasks[name]
            if self._cancelled or task.row.attempts != attempt:
                continue
            if kind == "retry" and task.row.status == TaskStatus.PENDING:
                self._runnable.append(task)
            elif kind == "timeout" and task.row.status == TaskStatus.RUNNING:
                self._inflight -= 1
                self.executor.stop(task.handle)
                task.handle = None
                started = task.row.start_time
                self._attempt_failed(
                    task,
                    f"TimeoutError: task exceeded its timeout of {task.spec.timeout:g}s",
                    None,
                    None,
                    time.time(),
                    reason=Reason.TIMEOUT,
                    started_iso=started,
                )

    def _add_timer(self, delay: float, kind: str, task: _Task) -> None:
        self._timer_seq += 1
        heapq.heappush(
            self._timers,
            (time.monotonic() + delay, self._timer_seq, kind, task.row.attempts, task.spec.name),
        )

    # -- decisions ------------------------------------------------------------------------
    def _decide(self) -> None:
        """Run or skip every task whose dependencies have all finished; cascade skips."""
        ready = self._ready
        while ready:
            task = ready.popleft()
            if self._cancelled:
                return
            verdict = self._verdict(task)
            if verdict is None:
                spec = task.spec
                if (
                    self.fast_noop
                    and spec.type == "python"
                    and not spec.params.get("callable")
                    and not spec.params.get("code")
                    and spec.timeout is None
                ):
                    self._noop(task)
                else:
                    self._runnable.append(task)
            else:
                self._skip(task, verdict)

    @staticmethod
    def _kind(row: TaskRow) -> int:
        if row.status == TaskStatus.COMPLETED:
            return _SUCCESS
        if row.status == TaskStatus.FAILED or row.reason == Reason.UPSTREAM_FAILED:
            return _FAILED
        return _SKIPPED

    def _verdict(self, task: _Task) -> str | None:
        """None to run the task, else the reason to skip it."""
        if task.not_selected:
            return Reason.NOT_SELECTED
        if not task.spec.dependencies:
            return None
        ok, failed, skipped = task.counts
        rule = task.spec.trigger_rule
        if rule == "all_done":
            return None
        if rule == "one_failed":
            return None if failed else Reason.NO_UPSTREAM_FAILED
        if rule == "one_success":
            if ok:
                return None
        elif rule == "all_success":
            if not failed and not skipped:
                return None
        elif not failed and ok:  # none_failed_min_one_success
            return None
        return Reason.UPSTREAM_FAILED if failed else Reason.UPSTREAM_SKIPPED

    def _finished(self, task: _Task) -> None:
        """A task reached a terminal status: tell its children."""
        self._open -= 1
        kind = self._kind(task.row)
        for child in task.children:
            child.counts[kind] += 1
            child.remaining -= 1
            if child.remaining == 0 and child.row.status == TaskStatus.PENDING:
                self._ready.append(child)

    def _skip(self, task: _Task, reason: str) -> None:
        row = task.row
        row.status, row.reason = TaskStatus.SKIPPED, reason
        self._mark(task)
        self._emit("task_skipped", row.name, TaskStatus.SKIPPED, reason=reason)
        self._finished(task)

    def _noop(self, task: _Task) -> None:
        """Fast path: a python task with nothing to run completes in the loop."""
        row = task.row
        row.attempts += 1
        row.start_time = row.end_time = iso(time.time())
        row.status, row.duration, row.result_text = TaskStatus.COMPLETED, 0.0, "null"
        if row.history is not None:
            row.history = [*row.history, row.implied_history()[0]]
        self._results[row.name] = None
        self._mark(task)
        self._emit(
            "task_started", row.name, TaskStatus.RUNNING, row.start_time, attempt=row.attempts
        )
        self._emit(
            "task_completed",
            row.name,
            TaskStatus.COMPLETED,
            row.end_time,
            attempt=row.attempts,
            duration=0.0,
        )
        self._finished(task)

    def _start_attempts(self) -> list[_Task]:
        """Mark as many runnable tasks ``running`` as the window allows."""
        started: list[_Task] = []
        if not self._runnable:
            return started
        now = iso(time.time())
        while self._runnable and self._inflight < self.window and not self._cancelled:
            task = self._runnable.popleft()
            row = task.row
            row.attempts += 1
            row.status, row.start_time, row.end_time, row.duration = (
                TaskStatus.RUNNING,
                now,
                None,
                None,
            )
            self._inflight += 1
            self._mark(task)
            self._emit("task_started", row.name, TaskStatus.RUNNING, now, attempt=row.attempts)
            started.append(task)
        return started

    def _submit(self, started: list[_Task]) -> None:
        submit, report, results = self.executor.submit, self.report, self._results
        for task in started:
            spec = task.spec
            fn = None
            ref = spec.params.get("callable")
            if ref and ":" not in ref and self.resolve is not None:
                fn = self.resolve(ref)
            job = Job(
                self.execution_id,
                self.workflow.id,
                spec.name,
                task.row.attempts,
                spec.type,
                spec.params,
                {d: results.get(d) for d in spec.dependencies},
                fn,
                self.capture,
                self.log_limit,
                self.root_dir,
                self.params,
                spec.timeout,
            )
            if spec.timeout is not None and not self.executor.reports_start:
                self._add_timer(spec.timeout, "timeout", task)
            task.handle = submit(job, report)

    def _history(
        self,
        row: TaskRow,
        status: str,
        started: float | None,
        finished: float,
        error: str | None = None,
    ) -> float | None:
        duration = None if started is None else round(finished - started, 6)
        entry = {
            "attempt": row.attempts,
            "status": status,
            "startTime": iso(started) if started else row.start_time,
            "endTime": iso(finished),
            "duration": duration,
        }
        if error is not None:
            entry["error"] = error
        row.history = [*(row.history or []), entry]
        return duration

    def _succeeded(self, task: _Task, value: Any, started: float, finished: float) -> None:
        row = task.row
        extra: dict[str, Any] = {}
        if task.spec.type == "branch":
            children = {c.spec.name for c in task.children}
            wrong = [name for name in value if name not in children]
            if wrong:
                error = TaskCodeError(
                    f"branch {row.name!r} selected {wrong!r}, which "
                    f"{'is not a' if len(wrong) == 1 else 'are not'} direct "
                    f"downstream task(s); allowed: {sorted(children)!r}"
                )
                self._attempt_failed(task, f"TaskCodeError: {error}", None, started, finished)
                return
            row.branch = {"selected": list(value), "skipped": self._apply_branch(task, value)}
            extra["selected"] = list(value)
        row.status, row.reason, row.error, row.traceback = TaskStatus.COMPLETED, None, None, None
        # the start of the attempt's code, not of its hand-off: startTime + duration = endTime
        row.start_time, row.end_time = iso(started), iso(finished)
        row.duration = round(finished - started, 6)
        if row.history is not None:  # earlier attempts failed: the history is kept
            row.history = [*row.history, row.implied_history()[0]]
        # else the history is implied by the row (TaskRow.implied_history): not built
        row.result_text = "null" if value is None else encode_result(value)
        self._results[row.name] = value
        self._mark(task)
        self._emit(
            "task_completed",
            row.name,
            TaskStatus.COMPLETED,
            row.end_time,
            attempt=row.attempts,
            duration=row.duration,
            **extra,
        )
        self._finished(task)

    def _apply_branch(self, task: _Task, selected: list[str]) -> list[str]:
        """Mark direct children not selected (nor reachable from a selected one)."""
        keep: set[str] = set()
        stack = [self._tasks[name] for name in selected if name in self._tasks]
        while stack:
            node = stack.pop()
            if node.spec.name not in keep:
                keep.add(node.spec.name)
                stack.extend(node.children)
        skipped = []
        for child in task.children:
            if child.spec.name not in keep:
                child.not_selected = True
                skipped.append(child.spec.name)
        return skipped

    def _attempt_failed(
        self,
        task: _Task,
        error: str,
        tb: str | None,
        started: float | None,
        finished: float,
        *,
        reason: str | None = None,
        started_iso: str | None = None,
    ) -> None:
        row = task.row
        duration = self._history(row, TaskStatus.FAILED, started, finished, error)
        row.error, row.traceback = error, tb
        self._mark(task)
        if row.attempts < task.spec.retries + 1 and not self._cancelled:
            delay = task.spec.retry_wait(row.attempts)
            row.status = TaskStatus.PENDING
            self._emit(
                "task_retrying",
                row.name,
                TaskStatus.PENDING,
                attempt=row.attempts,
                error=error,
                delay=delay,
            )
            self._add_timer(delay, "retry", task)
            return
        row.status, row.reason = TaskStatus.FAILED, reason
        row.end_time, row.duration = iso(finished), duration
        self._emit(
            "task_failed",
            row.name,
            TaskStatus.FAILED,
            row.end_time,
            attempt=row.attempts,
            error=error,
            duration=duration,
            reason=reason,
        )
        self._finished(task)

    # -- cancel, finish, commit ------------------------------------------------------------
    def _cancel(self) -> None:
        if self._cancelled or self._stopped:
            return
        self._cancelled = True
        now = iso(time.time())
        for task in self._tasks.values():
            row = task.row
            if row.status in (TaskStatus.PENDING, TaskStatus.RUNNING):
                if row.status == TaskStatus.RUNNING and task.handle is not None:
                    self.executor.stop(task.handle)
                row.status, row.reason, row.end_time = TaskStatus.CANCELLED, Reason.CANCELLED, now
                task.handle = None
                self._mark(task)
        self._ready.clear()
        self._runnable.clear()
        self._timers.clear()
        self._open = self._inflight = 0

    def _finish(self) -> None:
        if self._cancelled:
            status = ExecStatus.CANCELLED
        elif any(t.row.status == TaskStatus.FAILED for t in self._tasks.values()):
            status = ExecStatus.FAILED
        else:
            status = ExecStatus.COMPLETED
        self._exec_update.update(status=status, end_time=iso(time.time()), cancel_requested=0)
        self._emit(f"execution_{status}", None, status)
        if self._flush():
            self.status = status

    def _flush(self) -> bool:
        """Commit the turn's changes, then publish; False when the execution was ended
        elsewhere (its row is already terminal), so this loop must stop."""
        if not (self._dirty or self._events or self._exec_update or self._logs):
            return True
        events = self.store.commit(
            self.execution_id,
            tasks=list(self._dirty.values()),
            events=self._events,
            execution=self._exec_update,
            logs=self._logs,
        )
        self._dirty, self._events, self._exec_update, self._logs = {}, [], {}, []
        if events is None:
            self._stop_foreign()
            return False
        self.bus.publish(events)
        return True

    def _poll_control(self) -> None:
        status, cancel_requested = self.store.control(self.execution_id)
        if status not in (ExecStatus.PENDING, ExecStatus.RUNNING):
            self._stop_foreign()
        elif cancel_requested:
            self._cancel()

    def _stop_foreign(self) -> None:
        """The execution was ended by someone else (cancel elsewhere, owner_lost)."""
        for task in self._tasks.values():
            if task.handle is not None:
                self.executor.stop(task.handle)
        self.status = self.store.control(self.execution_id)[0]
        self._stopped = True

    def _abort(self) -> None:
        """An engine bug (or a store that keeps failing) must not leave the execution
        running forever: record it failed, trying a few times. Should that fail too,
        the heartbeat of this execution stops, and recovery takes it over."""
        for delay in (0.1, 0.5, 2.0, None):
            try:
                self._dirty, self._logs = {}, []
                self._events = [
                    make_event(
                        "execution_failed",
                        self.execution_id,
                        self.workflow.id,
                        ExecStatus.FAILED,
                        error="internal engine error",
                    )
                ]
                self._exec_update = {
                    "status": ExecStatus.FAILED,
                    "end_time": iso(time.time()),
                    "reason": "engine_error",
                }
                if self._flush():
                    self.status = ExecStatus.FAILED
                return
            except Exception:
                log.exception(
                    "execution %s: could not record the engine failure", self.execution_id
                )
                if delay is not None:
                    time.sleep(delay)

    def _mark(self, task: _Task) -> None:
        self._dirty[task.spec.name] = task.row

    def _emit(
        self, event: str, task: str | None, status: str, timestamp: str | None = None, **extra: Any
    ) -> None:
        self._events.append(
            make_event(event, self.execution_id, self.workflow.id, status, task, timestamp, **extra)
        )
