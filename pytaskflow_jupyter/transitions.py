"""The state machine of an execution: every change of run state is made here.

Design
------
``RunState`` holds the run state of one execution (its tasks' ``TaskRun`` rows, the
results downstream tasks need, timers) and changes it only in response to a message:

=====================  ==============================================================
message                what it does
=====================  ==============================================================
``Outcome``            an attempt ended (ok, failed, or failed by its executor)
``Started``            a timed attempt began to run: its timeout starts now
``Progress``           a running attempt got further: a ``task_progress`` event
``Logs``               what a running attempt wrote so far (the logs route shows it)
``CANCEL``             cancel (final): pending and running tasks become ``cancelled``
``OWNER_LOST``         the process that ran it died: active tasks fail ``owner_lost``
timers                 a retry's back-off is over; an attempt ran past its ``timeout``
``begin``              resume: a task found ``running`` lost its attempt (interrupted):
                       rerun without using a retry, failed ``interrupted`` after
                       ``max_interruptions`` interruptions
``engine_failure``     the driver itself failed: the execution is recorded failed
=====================  ==============================================================

and by deciding (``decide``) the tasks whose dependencies have all finished: run, or skip
with a reason, by the task's trigger rule; a skip cascades at once. Each change is
recorded (``_mark``, ``_emit``) and handed out in one ``Changes`` batch per turn
(``take``), which the driver (``engine.ExecutionRun``) commits and only then publishes.
Nothing else writes task or execution state; nothing here does I/O, reads a global
clock (``clock`` and ``monotonic`` are passed in) or touches an executor: handles to
stop are collected in ``to_stop`` for the driver. So the tests build a state, send it
messages and compare whole states (dask's ``finish_task`` tests are the model).

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

``results`` holds a result only while a task downstream may still start an attempt
(it is pending, or running with a retry left): each task counts its ``consumers``,
and a consumer that cannot start again (``_release``) takes itself off its
dependencies' counts; the last one drops the result. ``TaskRun.result`` holds the
result as the store keeps it (``stored``: the JSON, or a summary), never the object,
so a finished task holds nothing big. A worker may hand in a ``results.Spilled``
reference instead of a large value: it goes downstream as it is, and its ``stored``
form is the run's result.

Cancellation is final: no task starts after it. The execution is ``failed`` when any
task failed, ``completed`` when every task completed or was skipped.

Statuses are written as their plain values (``_RUNNING`` ...): sqlite3 binds a ``str``
subclass through its adapter lookup, 0.5 us a value, and the engine writes millions.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .events import Event
from .kinds import KINDS
from .model import EventKind, ExecStatus, Reason, TaskRun, TaskSpec, TaskStatus, Workflow, iso
from .results import Spilled
from .tasks import Logs, Outcome, Progress, Started

__all__ = ["CANCEL", "OWNER_LOST", "Changes", "RunState"]

_PENDING, _RUNNING = TaskStatus.PENDING.value, TaskStatus.RUNNING.value
_COMPLETED, _FAILED = TaskStatus.COMPLETED.value, TaskStatus.FAILED.value
_SKIPPED, _CANCELLED = TaskStatus.SKIPPED.value, TaskStatus.CANCELLED.value
_TERMINAL = frozenset((_COMPLETED, _FAILED, _SKIPPED, _CANCELLED))
_ENDED = frozenset((_COMPLETED, _SKIPPED, _FAILED))  # counted by trigger rules
_STARTED, _DONE = EventKind.TASK_STARTED.value, EventKind.TASK_COMPLETED.value
_SUCCESS, _FAILURE, _SKIP = 0, 1, 2
_SCALARS = (bool, int, float)  # kept as they are: ``stored`` would not shrink them
SELF_TIMED_GRACE = 10.0  # seconds (see RunState._timeout)


class _Message:
    """A control message without data (``CANCEL``, ``OWNER_LOST``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


CANCEL = _Message("CANCEL")
OWNER_LOST = _Message("OWNER_LOST")


@dataclass(slots=True)
class Changes:
    """One turn's changes of an execution, committed in one transaction: task runs,
    events (``seq`` given by the store), execution columns, captured logs."""

    tasks: list[TaskRun] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    execution: dict[str, Any] = field(default_factory=dict)
    logs: list[tuple[str, int, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tasks or self.events or self.execution or self.logs)


class _Task:
    """State of one task: its spec, its durable run, and the counts of the loop."""

    __slots__ = (
        "children", "consumers", "counts", "handle", "noop", "not_selected", "released",
        "remaining", "run", "spec",
    )  # fmt: skip

    def __init__(self, spec: TaskSpec, run: TaskRun, noop: bool) -> None:
        self.spec = spec
        self.run = run
        self.children: list[_Task] = []
        self.remaining = 0
        self.counts = [0, 0, 0]
        self.not_selected = False
        self.noop = noop
        self.handle: Any = None
        self.consumers = 0  # tasks downstream that may still start an attempt
        self.released = False  # this task took itself off its dependencies' consumers


class RunState:
    """The run state of one execution and its transitions (see the module docstring)."""

    def __init__(
        self,
        workflow: Workflow,
        execution_id: str,
        prior: dict[str, TaskRun] | None = None,
        *,
        fast_noop: bool = True,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_interruptions: int = 3,
        stored: Callable[[Any], Any] | None = None,
        recall: Callable[[TaskRun], Any] | None = None,
    ) -> None:
        self.workflow = workflow
        # a result as the store keeps it (default: as it is); what a resumed execution
        # hands downstream of a finished task (default: its stored result)
        self.stored, self.recall = stored, recall
        self.max_interruptions = max_interruptions
        self.execution_id = execution_id
        self.clock, self.monotonic = clock, monotonic
        prior = prior or {}
        self.tasks = {
            s.name: _Task(
                s,
                prior.get(s.name) or TaskRun(s.name),
                fast_noop and s.timeout is None and KINDS[s.type].is_noop(s.params),
            )
            for s in workflow.tasks
        }
        for task in self.tasks.values():
            for dep in task.spec.dependencies:
                self.tasks[dep].children.append(task)
        for task in self.tasks.values():
            task.consumers = len(task.children)
        self.status: str = ExecStatus.PENDING.value
        self.results: dict[str, Any] = {}
        self.ready: deque[_Task] = deque()
        self.runnable: deque[_Task] = deque()
        self.timers: list[tuple[float, int, str, int, str]] = []
        self._timer_seq = 0
        self.inflight = 0
        self.open = len(self.tasks)
        self.cancelled = False
        self.to_stop: list[Any] = []  # executor handles the driver must stop
        self._dirty: dict[str, TaskRun] = {}
        self._events: list[Event] = []
        self._logs: list[tuple[str, int, str, str]] = []
        self._exec: dict[str, Any] = {}

    # -- the turn's changes ----------------------------------------------------------------
    def take(self) -> Changes:
        """The changes made since the last ``take`` (empty when there are none)."""
        changes = Changes(list(self._dirty.values()), self._events, self._exec, self._logs)
        self._dirty, self._events, self._exec, self._logs = {}, [], {}, []
        return changes

    def _mark(self, task: _Task) -> None:
        self._dirty[task.spec.name] = task.run

    def _emit(
        self,
        kind: str,
        task: str | None,
        status: str,
        timestamp: str | None = None,
        attempt: int | None = None,
        duration: float | None = None,
        **detail: Any,
    ) -> None:
        self._events.append(
            Event(
                kind,
                self.execution_id,
                self.workflow.id,
                status,
                task,
                timestamp or iso(self.clock()),
                attempt,
                duration,
                **detail,
            )
        )

    # -- begin (a new or resumed execution) ------------------------------------------------
    def begin(self, stored_status: str) -> None:
        """Take the stored task runs as they are: finished ones count for their children,
        a branch replays its selection, a task found ``running`` lost its attempt."""
        tasks = self.tasks
        for task in tasks.values():
            run = task.run
            if run.status in _TERMINAL:
                self.open -= 1
                if task.consumers:
                    self.results[run.name] = run.result if self.recall is None else self.recall(run)
                if run.branch:
                    self._apply_branch(task, run.branch.get("selected", []))
            elif run.status == _RUNNING:
                self._interrupted(task)  # resumed after a crash (at-least-once)
        for task in tasks.values():
            for dep in task.spec.dependencies:
                drun = tasks[dep].run
                if drun.status in _ENDED:
                    task.counts[self._kind(drun)] += 1
                else:
                    task.remaining += 1
        for task in tasks.values():
            if task.run.status in _TERMINAL:
                self._release(task)
        self.ready.extend(
            t for t in tasks.values() if t.remaining == 0 and t.run.status == _PENDING
        )
        self.status = ExecStatus.RUNNING.value
        self._exec["status"] = self.status
        if stored_status == ExecStatus.PENDING:
            self._exec["start_time"] = iso(self.clock())
            self._emit(EventKind.EXECUTION_STARTED.value, None, self.status)

    def _interrupted(self, task: _Task) -> None:
        """An attempt cut short by a shutdown or crash of the server is not a failure of
        the task: it reruns without using up a retry (``_budget_left``), unless the task
        was interrupted ``max_interruptions`` times already (it may be what kills it)."""
        run = task.run
        run.interruptions += 1
        self._mark(task)
        if run.interruptions <= self.max_interruptions:
            run.status = _PENDING
            return
        run.status, run.reason = _FAILED, Reason.INTERRUPTED.value
        run.error = run.error or (
            f"the process running this task stopped {run.interruptions} times (interrupted)"
        )
        run.end_time = run.end_time or iso(self.clock())
        self.open -= 1
        self._emit(
            EventKind.TASK_FAILED.value,
            run.name,
            _FAILED,
            attempt=run.attempts,
            error=run.error,
            reason=Reason.INTERRUPTED.value,
        )

    @staticmethod
    def _budget_left(task: _Task) -> bool:
        """Whether a failed attempt may be retried: interrupted attempts do not count."""
        run = task.run
        return run.attempts - run.interruptions < task.spec.retries + 1

    # -- messages --------------------------------------------------------------------------
    def apply(self, msg: Any) -> None:
        """Apply one message (see the module docstring)."""
        if msg.__class__ is Outcome:  # the common case first
            task = self._attempt(msg.task, msg.attempt)
            if task is not None:  # else a late outcome of an attempt given up on
                self._outcome(task, msg)
        elif msg is CANCEL:
            self._cancel()
        elif msg.__class__ is Started:
            if (task := self._attempt(msg.task, msg.attempt)) is not None:
                self._add_timer(self._timeout(task), "timeout", task)
        elif msg.__class__ is Progress:
            if self._attempt(msg.task, msg.attempt) is not None:
                self._emit(
                    EventKind.TASK_PROGRESS.value, msg.task, _RUNNING, None, msg.attempt,
                    progress={"done": msg.done, "total": msg.total},
                )  # fmt: skip
        elif msg.__class__ is Logs:
            if self._attempt(msg.task, msg.attempt) is not None:
                self._logs.append((msg.task, msg.attempt, msg.stdout, msg.stderr))
        elif msg is OWNER_LOST:
            self._owner_lost()
        else:
            raise TypeError(f"not a message of the state machine: {msg!r}")

    def _attempt(self, name: str, attempt: int) -> _Task | None:
        """The task whose attempt ``attempt`` is running now, or None: a message about
        any other attempt (timed out, cancelled, retried since) is ignored."""
        task = self.tasks.get(name)
        if (
            task is None
            or task.run.status != _RUNNING
            or task.run.attempts != attempt
            or self.cancelled
        ):
            return None
        return task

    def _outcome(self, task: _Task, msg: Outcome) -> None:
        self.inflight -= 1
        task.handle = None
        if msg.stdout or msg.stderr:
            self._logs.append((task.spec.name, msg.attempt, msg.stdout, msg.stderr))
        if msg.output is not None:
            task.run.output = msg.output
        if msg.ok:
            self._succeeded(task, msg.result, msg.started, msg.finished)
        else:
            self._attempt_failed(
                task, msg.error or "failed", msg.traceback, msg.started, msg.finished,
                reason=Reason.TIMEOUT.value if msg.timed_out else None,
            )  # fmt: skip

    def submitted(self, task: _Task, handle: Any, reports_start: bool) -> None:
        """The driver handed ``task``'s attempt to its executor: keep the handle; start
        the timeout now if the executor does not report when the attempt starts."""
        task.handle = handle
        if task.spec.timeout is not None and not reports_start:
            self._add_timer(self._timeout(task), "timeout", task)
        if not self._budget_left(task):  # its last attempt has its upstream results
            self._release(task)

    def _release(self, task: _Task) -> None:
        """``task`` will not start another attempt: drop the results of its dependencies
        that no other task downstream may still need."""
        if task.released:
            return
        task.released = True
        for dep in task.spec.dependencies:
            parent = self.tasks[dep]
            parent.consumers -= 1
            if parent.consumers <= 0:
                self.results.pop(dep, None)

    # -- timers ------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When the earliest timer is due (``monotonic`` time), or None."""
        return self.timers[0][0] if self.timers else None

    def fire_timers(self) -> None:
        """Fire the due timers: a retry's back-off is over, an attempt timed out."""
        now = self.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, kind, attempt, name = heapq.heappop(self.timers)
            task = self.tasks[name]
            if self.cancelled or task.run.attempts != attempt:
                continue
            if kind == "retry" and task.run.status == _PENDING:
                self.runnable.append(task)
            elif kind == "timeout" and task.run.status == _RUNNING:
                self.inflight -= 1
                self._stop(task)
                self._attempt_failed(
                    task,
                    f"TimeoutError: task exceeded its timeout of {task.spec.timeout:g}s",
                    None,
                    _seconds(task.run.start_time),  # its duration: start to end, as shown
                    self.clock(),
                    reason=Reason.TIMEOUT.value,
                )

    @staticmethod
    def _timeout(task: _Task) -> float:
        """When the engine gives up on a running attempt. A kind that takes hooks (a
        notebook) stops itself at its timeout and reports which cell ran, with its output:
        the engine waits a grace period longer for that outcome before it stops it."""
        timeout = task.spec.timeout or 0.0
        return timeout + SELF_TIMED_GRACE if KINDS[task.spec.type].USES_HOOKS else timeout

    def _add_timer(self, delay: float, kind: str, task: _Task) -> None:
        self._timer_seq += 1
        heapq.heappush(
            self.timers,
            (self.monotonic() + delay, self._timer_seq, kind, task.run.attempts, task.spec.name),
        )

    def _stop(self, task: _Task) -> None:
        if task.handle is not None:
            self.to_stop.append(task.handle)
            task.handle = None

    # -- decisions ---------------------------------------------------------------------------
    def decide(self) -> None:
        """Run or skip every task whose dependencies have all finished; cascade skips."""
        ready = self.ready
        while ready:
            task = ready.popleft()
            if self.cancelled:
                return
            verdict = self._verdict(task)
            if verdict is not None:
                self._skip(task, verdict)
            elif task.noop:
                self._noop(task)
            else:
                self.runnable.append(task)

    @staticmethod
    def _kind(run: TaskRun) -> int:
        if run.status == _COMPLETED:
            return _SUCCESS
        if run.status == _FAILED or run.reason == Reason.UPSTREAM_FAILED:
            return _FAILURE
        return _SKIP

    def _verdict(self, task: _Task) -> str | None:
        """None to run the task, else the reason to skip it."""
        if task.not_selected:
            return Reason.NOT_SELECTED.value
        if not task.spec.dependencies:
            return None
        ok, failed, skipped = task.counts
        rule = task.spec.trigger_rule
        if rule == "all_done":
            return None
        if rule == "one_failed":
            return None if failed else Reason.NO_UPSTREAM_FAILED.value
        if rule == "one_success":
            if ok:
                return None
        elif rule == "all_success":
            if not failed and not skipped:
                return None
        elif not failed and ok:  # none_failed_min_one_success
            return None
        return Reason.UPSTREAM_FAILED.value if failed else Reason.UPSTREAM_SKIPPED.value

    def _finished(self, task: _Task) -> None:
        """A task reached a terminal status: tell its children."""
        self.open -= 1
        self._release(task)
        kind = self._kind(task.run)
        for child in task.children:
            child.counts[kind] += 1
            child.remaining -= 1
            if child.remaining == 0 and child.run.status == _PENDING:
                self.ready.append(child)

    def _skip(self, task: _Task, reason: str) -> None:
        run = task.run
        run.status, run.reason = _SKIPPED, reason
        self._mark(task)
        self._emit(EventKind.TASK_SKIPPED.value, run.name, _SKIPPED, reason=reason)
        self._finished(task)

    def _noop(self, task: _Task) -> None:
        """Fast path: a task with nothing to run (``kinds``) completes here."""
        run = task.run
        run.attempts += 1
        run.start_time = run.end_time = iso(self.clock())
        run.status, run.duration, run.result = _COMPLETED, 0.0, None
        if task.consumers:
            self.results[run.name] = None
        self._mark(task)
        self._emit(_STARTED, run.name, _RUNNING, run.start_time, run.attempts)
        self._emit(_DONE, run.name, _COMPLETED, run.end_time, run.attempts, 0.0)
        self._finished(task)

    def start_attempts(self, window: int) -> list[_Task]:
        """Mark as many runnable tasks ``running`` as ``window`` allows in flight; the
        driver hands them to its executor once this is committed."""
        started: list[_Task] = []
        if not self.runnable:
            return started
        now = iso(self.clock())
        while self.runnable and self.inflight < window and not self.cancelled:
            task = self.runnable.popleft()
            run = task.run
            run.attempts += 1
            run.status, run.start_time, run.end_time, run.duration = _RUNNING, now, None, None
            self.inflight += 1
            self._mark(task)
            self._emit(_STARTED, run.name, _RUNNING, now, run.attempts)
            started.append(task)
        return started

    def _succeeded(self, task: _Task, value: Any, started: float, finished: float) -> None:
        run = task.run
        selected = None
        if task.spec.type == "branch":
            children = {c.spec.name for c in task.children}
            wrong = [name for name in value if name not in children]
            if wrong:
                self._attempt_failed(
                    task,
                    f"TaskCodeError: branch {run.name!r} selected {wrong!r}, which "
                    f"{'is not a' if len(wrong) == 1 else 'are not'} direct downstream "
                    f"task(s); allowed: {sorted(children)!r}",
                    None,
                    started,
                    finished,
                )
                return
            selected = list(value)
            run.branch = {"selected": selected, "skipped": self._apply_branch(task, value)}
        run.status, run.reason, run.error, run.traceback = _COMPLETED, None, None, None
        # the start of the attempt's code, not of its hand-off: startTime + duration = endTime
        run.start_time, run.end_time = iso(started), iso(finished)
        run.duration = round(finished - started, 6)
        if value.__class__ is Spilled:
            run.result = value.stored
        elif (
            self.stored is None
            or value is None
            or value.__class__ in _SCALARS
            or (value.__class__ is str and len(value) <= 1 << 16)
        ):
            run.result = value
        else:
            run.result = self.stored(value)
        if task.consumers:
            self.results[run.name] = value
        self._mark(task)
        self._emit(
            _DONE, run.name, _COMPLETED, run.end_time, run.attempts, run.duration,
            selected=selected,
        )  # fmt: skip
        self._finished(task)

    def _apply_branch(self, task: _Task, selected: list[str]) -> list[str]:
        """Mark direct children not selected (nor reachable from a selected one)."""
        keep: set[str] = set()
        stack = [self.tasks[name] for name in selected if name in self.tasks]
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
    ) -> None:
        run = task.run
        duration = None if started is None else round(finished - started, 6)
        entry = {
            "attempt": run.attempts,
            "status": _FAILED,
            "startTime": iso(started) if started else run.start_time,
            "endTime": iso(finished),
            "duration": duration,
            "error": error,
        }
        run.history = [*run.history, entry]
        run.error, run.traceback = error, tb
        self._mark(task)
        if self._budget_left(task) and not self.cancelled:
            delay = task.spec.retry_wait(run.attempts - run.interruptions)
            run.status = _PENDING
            self._emit(
                EventKind.TASK_RETRYING.value, run.name, _PENDING, None, run.attempts,
                error=error, delay=delay,
            )  # fmt: skip
            self._add_timer(delay, "retry", task)
            return
        run.status, run.reason = _FAILED, reason
        run.end_time, run.duration = iso(finished), duration
        self._emit(
            EventKind.TASK_FAILED.value, run.name, _FAILED, run.end_time, run.attempts,
            duration, error=error, reason=reason,
        )  # fmt: skip
        self._finished(task)

    # -- cancel, owner lost, the end ---------------------------------------------------------
    def _cancel(self) -> None:
        if self.cancelled or self.status in (ExecStatus.COMPLETED, ExecStatus.FAILED):
            return
        self.cancelled = True
        now = iso(self.clock())
        for task in self.tasks.values():
            run = task.run
            if run.status in (_PENDING, _RUNNING):
                self._stop(task)
                run.status, run.reason, run.end_time = _CANCELLED, Reason.CANCELLED.value, now
                self._mark(task)
        self._clear()

    def _clear(self) -> None:
        self.results.clear()  # nothing starts any more
        self.ready.clear()
        self.runnable.clear()
        self.timers.clear()
        self.open = self.inflight = 0

    def _owner_lost(self) -> None:
        """The process that ran this execution died with it: whatever was active fails."""
        now = iso(self.clock())
        for task in self.tasks.values():
            run = task.run
            if run.status in (_PENDING, _RUNNING):
                run.status, run.reason, run.end_time = _FAILED, Reason.OWNER_LOST.value, now
                run.error = "the process that ran this execution stopped"
                self._mark(task)
        self._clear()
        self.status = ExecStatus.FAILED.value
        self._exec.update(status=self.status, end_time=now, reason=Reason.OWNER_LOST.value)
        self._emit(
            EventKind.EXECUTION_FAILED.value, None, self.status, now,
            reason=Reason.OWNER_LOST.value,
        )  # fmt: skip

    @property
    def done(self) -> bool:
        """Every task has finished and no attempt is in flight."""
        return self.open == 0 and self.inflight == 0

    def finish(self) -> str:
        """Record the final status of an execution that is ``done``; returns it."""
        if self.cancelled:
            status = ExecStatus.CANCELLED.value
        elif any(t.run.status == _FAILED for t in self.tasks.values()):
            status = ExecStatus.FAILED.value
        else:
            status = ExecStatus.COMPLETED.value
        self.status = status
        self.results.clear()
        self._exec.update(status=status, end_time=iso(self.clock()), cancel_requested=0)
        self._emit(f"execution_{status}", None, status)
        return status

    def abandon(self) -> None:
        """The execution was ended elsewhere (cancel in another process, owner_lost):
        stop every attempt in flight, change nothing."""
        for task in self.tasks.values():
            self._stop(task)
        self.results.clear()
        self._dirty, self._events, self._exec, self._logs = {}, [], {}, []

    def engine_failure(self) -> Changes:
        """The changes that record the driver's own failure (whatever state it left)."""
        now = iso(self.clock())
        self.status = ExecStatus.FAILED.value
        self.results.clear()
        self._dirty, self._logs = {}, []
        self._exec = {"status": self.status, "end_time": now, "reason": Reason.ENGINE_ERROR.value}
        self._events = []
        self._emit(
            EventKind.EXECUTION_FAILED.value, None, self.status, now, error="internal engine error"
        )
        return self.take()


def _seconds(stamp: str | None) -> float | None:
    """Unix seconds of an ``iso`` stamp (None stays None)."""
    if stamp is None:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
