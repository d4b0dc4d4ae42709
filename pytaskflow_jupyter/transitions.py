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

A mapped task (``map_over``, SPEC 11) expands when its dependencies ended (``_expand``):
one *instance* per item of its upstream's list, each a ``_Task`` with its own ``TaskRun``
(``map_index``) that goes through the same transitions as a task -- runnable, started
under the same window, retried and timed out on its own -- and reports to its mapped
task instead of to children (``_instance_finished``). The mapped task is ``running``
while they run, keeps their counts by status in ``run.mapped`` (moved in ``take``, one
step per changed instance), and ends with the last one (``_map_done``): ``completed``
with their results in order, or ``failed`` if one failed. Instance rows are written as
task rows are; events of an instance carry its ``map_index``.

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

__all__ = ["CANCEL", "MAX_MAP_LENGTH", "OWNER_LOST", "Changes", "RunState"]

_PENDING, _RUNNING = TaskStatus.PENDING.value, TaskStatus.RUNNING.value
_COMPLETED, _FAILED = TaskStatus.COMPLETED.value, TaskStatus.FAILED.value
_SKIPPED, _CANCELLED = TaskStatus.SKIPPED.value, TaskStatus.CANCELLED.value
_TERMINAL = frozenset((_COMPLETED, _FAILED, _SKIPPED, _CANCELLED))
_ENDED = frozenset((_COMPLETED, _SKIPPED, _FAILED))  # counted by trigger rules
_STARTED, _DONE = EventKind.TASK_STARTED.value, EventKind.TASK_COMPLETED.value
_SUCCESS, _FAILURE, _SKIP = 0, 1, 2
_SCALARS = (bool, int, float)  # kept as they are: ``stored`` would not shrink them
SELF_TIMED_GRACE = 10.0  # seconds (see RunState._timeout)
_INSTANCE_COUNTS = (_PENDING, _RUNNING, _COMPLETED, _FAILED, _CANCELLED)
MAX_MAP_LENGTH = 10_000  # instances of one mapped task (``TaskFlowApp.max_map_length``)


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
    instances: list[TaskRun] = field(default_factory=list)  # runs of mapped instances
    # (task, map_index, attempt, stdout, stderr) of mapped instances
    instance_logs: list[tuple[str, int, int, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.tasks or self.events or self.execution or self.logs or self.instances
            or self.instance_logs
        )  # fmt: skip


class _Task:
    """State of one task: its spec, its durable run, and the counts of the loop."""

    __slots__ = (
        "children", "consumers", "counted", "counts", "handle", "instances", "item", "noop",
        "not_selected", "open_instances", "parent", "released", "remaining", "run", "spec",
        "values",
    )  # fmt: skip

    def __init__(
        self, spec: TaskSpec, run: TaskRun, noop: bool, parent: _Task | None = None
    ) -> None:
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
        # a mapped task: its instances, how many have not ended, their values in order
        # (kept only for consumers); an instance: its mapped task, item, counted status
        self.instances: list[_Task] | None = None
        self.open_instances = 0
        self.values: list[Any] | None = None
        self.parent = parent
        self.item: Any = None
        self.counted: str = _PENDING


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
        prior_instances: dict[str, dict[int, TaskRun]] | None = None,
        max_map_length: int = MAX_MAP_LENGTH,
    ) -> None:
        self.workflow = workflow
        # stored runs of mapped instances (a resumed execution's, a retry's reused ones)
        self.prior_instances = prior_instances or {}
        self.max_map_length = max_map_length
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
                fast_noop
                and s.timeout is None
                and s.map_over is None
                and KINDS[s.type].is_noop(s.params),
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
        self.timers: list[tuple[float, int, str, int, _Task]] = []
        self._timer_seq = 0
        self.inflight = 0
        self.open = len(self.tasks)
        self.cancelled = False
        self.to_stop: list[Any] = []  # executor handles the driver must stop
        self._dirty: dict[str, TaskRun] = {}
        self._dirty_instances: dict[_Task, None] = {}
        self._events: list[Event] = []
        self._logs: list[tuple[str, int, str, str]] = []
        self._instance_logs: list[tuple[str, int, int, str, str]] = []
        self._exec: dict[str, Any] = {}

    # -- the turn's changes ----------------------------------------------------------------
    def take(self) -> Changes:
        """The changes made since the last ``take`` (empty when there are none)."""
        instances = []
        if self._dirty_instances:
            for inst in self._dirty_instances:
                instances.append(inst.run)
                parent, status = inst.parent, inst.run.status
                if inst.counted != status and parent is not None:
                    mapped = parent.run.mapped
                    assert mapped is not None  # an instance exists once its task expanded
                    mapped[inst.counted] -= 1
                    mapped[status] += 1
                    inst.counted = status
                    self._dirty[parent.spec.name] = parent.run
            self._dirty_instances = {}
        changes = Changes(
            list(self._dirty.values()), self._events, self._exec, self._logs, instances,
            self._instance_logs,
        )  # fmt: skip
        self._dirty, self._events, self._exec, self._logs = {}, [], {}, []
        self._instance_logs = []
        return changes

    def _mark(self, task: _Task) -> None:
        if task.parent is None:
            self._dirty[task.spec.name] = task.run
        else:  # its mapped task's counts follow in ``take``
            self._dirty_instances[task] = None

    def _log(self, task: _Task, attempt: int, stdout: str, stderr: str) -> None:
        """What an attempt wrote (so far, or in all)."""
        if task.parent is None:
            self._logs.append((task.spec.name, attempt, stdout, stderr))
        else:
            index = task.run.map_index
            assert index is not None
            self._instance_logs.append((task.spec.name, index, attempt, stdout, stderr))

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
                if task.spec.map_over is not None:
                    run.status = _PENDING  # it expands again, with its stored instances
                else:
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
        if task.parent is None:  # an instance is counted by its mapped task (_expand)
            self.open -= 1
        self._emit(
            EventKind.TASK_FAILED.value,
            run.name,
            _FAILED,
            attempt=run.attempts,
            error=run.error,
            reason=Reason.INTERRUPTED.value,
            map_index=run.map_index,
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
            task = self._attempt(msg.task, msg.attempt, msg.map_index)
            if task is not None:
                self._outcome(task, msg)
            elif msg.stdout or msg.stderr:  # a late outcome of an attempt given up on
                self._late_logs(msg)
        elif msg is CANCEL:
            self._cancel()
        elif msg.__class__ is Started:
            if (task := self._attempt(msg.task, msg.attempt, msg.map_index)) is not None:
                self._add_timer(self._timeout(task), "timeout", task)
        elif msg.__class__ is Progress:
            if self._attempt(msg.task, msg.attempt, msg.map_index) is not None:
                self._emit(
                    EventKind.TASK_PROGRESS.value, msg.task, _RUNNING, None, msg.attempt,
                    progress={"done": msg.done, "total": msg.total}, map_index=msg.map_index,
                )  # fmt: skip
        elif msg.__class__ is Logs:
            if (task := self._attempt(msg.task, msg.attempt, msg.map_index)) is not None:
                self._log(task, msg.attempt, msg.stdout, msg.stderr)
        elif msg is OWNER_LOST:
            self._owner_lost()
        else:
            raise TypeError(f"not a message of the state machine: {msg!r}")

    def _attempt(self, name: str, attempt: int, map_index: int | None = None) -> _Task | None:
        """The task (or instance of a mapped task) whose attempt ``attempt`` is running
        now, or None: a message about any other attempt (timed out, cancelled, retried
        since) is ignored."""
        task = self.tasks.get(name)
        if map_index is not None and task is not None:
            instances = task.instances
            task = (
                instances[map_index]
                if instances is not None and 0 <= map_index < len(instances)
                else None
            )
        if (
            task is None
            or task.run.status != _RUNNING
            or task.run.attempts != attempt
            or self.cancelled
        ):
            return None
        return task

    def _late_logs(self, msg: Outcome) -> None:
        """An attempt given up on (timed out, cancelled) still ended: what it wrote is
        kept with its attempt, though its outcome changes nothing."""
        task = self.tasks.get(msg.task)
        if task is not None and msg.map_index is not None:
            instances = task.instances or []
            task = instances[msg.map_index] if 0 <= msg.map_index < len(instances) else None
        if task is not None and 1 <= msg.attempt <= task.run.attempts:
            self._log(task, msg.attempt, msg.stdout, msg.stderr)

    def _outcome(self, task: _Task, msg: Outcome) -> None:
        self.inflight -= 1
        task.handle = None
        if msg.stdout or msg.stderr:
            self._log(task, msg.attempt, msg.stdout, msg.stderr)
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
        if task.parent is None and not self._budget_left(task):  # it has its upstream results
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
            _, _, kind, attempt, task = heapq.heappop(self.timers)
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
            (self.monotonic() + delay, self._timer_seq, kind, task.run.attempts, task),
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
            elif task.spec.map_over is not None:
                self._expand(task)
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
        if task.parent is not None:
            self._instance_finished(task)
            return
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

    # -- mapped tasks (SPEC 11) -------------------------------------------------------------
    def _expand(self, task: _Task) -> None:
        """A mapped task whose dependencies ended runs once per item of its ``map_over``
        upstream's list: an instance each, scheduled like a task. A resumed or retried
        execution takes its stored instances as they are (completed ones are never run
        again; one found ``running`` lost its attempt, as a task does in ``begin``)."""
        run, over = task.run, task.spec.map_over
        items = self.results.get(over) if over is not None else None
        if items.__class__ is Spilled:
            items = items.stored
        resumed = run.mapped is not None and run.attempts > 0
        run.status = _RUNNING  # (``begin`` set a resumed one back to pending)
        if not resumed:
            run.attempts = max(run.attempts, 1)
            run.start_time = iso(self.clock())
            run.end_time = run.duration = run.error = run.traceback = run.reason = None
        if not isinstance(items, list):
            why = f"returned {type(items).__name__}, not a list"
            if isinstance(items, dict) and items.get("json") is False:  # a stored summary
                why = "returned a list that is not JSON, which a resumed execution cannot read"
            self._map_failed(task, f"map_over {over!r} {why}")
            return
        if len(items) > self.max_map_length:
            self._map_failed(
                task,
                f"map_over {over!r} returned {len(items):,} items, more than max_map_length "
                f"({self.max_map_length:,})",
            )
            return
        if not resumed:
            self._emit(_STARTED, run.name, _RUNNING, run.start_time, run.attempts)
        prior = self.prior_instances.pop(run.name, {})
        run.mapped = {"total": len(items), **dict.fromkeys(_INSTANCE_COUNTS, 0)}
        task.values = [None] * len(items) if task.consumers else None
        task.instances = []
        for index, item in enumerate(items):
            inst = _Task(task.spec, prior.get(index) or TaskRun(run.name), False, task)
            inst.run.map_index, inst.item = index, item
            task.instances.append(inst)
            if inst.run.status == _RUNNING:
                self._interrupted(inst)
            status = inst.counted = inst.run.status
            run.mapped[status] += 1
            if status == _PENDING:
                task.open_instances += 1
                self.runnable.append(inst)
                if index not in prior:
                    self._dirty_instances[inst] = None  # a row each: the instances route
            elif status == _COMPLETED and task.values is not None:
                task.values[index] = (
                    inst.run.result if self.recall is None else self.recall(inst.run)
                )
        self._mark(task)
        if task.open_instances == 0:
            self._map_done(task)

    def _expand_stored(self, task: _Task) -> None:
        """The stored instances of a mapped task, without their items: an execution that
        fails as a whole (``OWNER_LOST``) ends them too."""
        stored = self.prior_instances.pop(task.run.name, {})
        task.instances = []
        for index in sorted(stored):
            inst = _Task(task.spec, stored[index], False, task)
            inst.counted = inst.run.status
            task.instances.append(inst)
        if task.run.mapped is None:
            task.run.mapped = {"total": len(stored), **dict.fromkeys(_INSTANCE_COUNTS, 0)}
            for inst in task.instances:
                task.run.mapped[inst.counted] += 1

    def _instance_finished(self, inst: _Task) -> None:
        """An instance ended (after its retries): its mapped task ends with the last one."""
        parent = inst.parent
        assert parent is not None
        parent.open_instances -= 1
        if parent.open_instances == 0 and not self.cancelled:
            self._map_done(parent)

    def _map_done(self, task: _Task) -> None:
        """Every instance ended: the mapped task completes with their results in order,
        or fails when one of them failed."""
        run, instances = task.run, task.instances or []
        now = self.clock()
        run.end_time = iso(now)
        started = _seconds(run.start_time)
        run.duration = None if started is None else round(max(0.0, now - started), 6)
        failed = [i.run for i in instances if i.run.status == _FAILED]
        if failed:
            first = failed[0]
            run.status = _FAILED
            run.error = (
                f"{len(failed)} of {len(instances)} instances failed; first: "
                f"[{first.map_index}] {first.error}"
            )
            self._mark(task)
            self._emit(
                EventKind.TASK_FAILED.value, run.name, _FAILED, run.end_time, run.attempts,
                run.duration, error=run.error,
            )  # fmt: skip
        else:
            run.status, run.result = _COMPLETED, [i.run.result for i in instances]
            if task.consumers:
                self.results[run.name] = task.values if task.values is not None else []
            self._mark(task)
            self._emit(_DONE, run.name, _COMPLETED, run.end_time, run.attempts, run.duration)
        task.values = None
        self._finished(task)

    def _map_failed(self, task: _Task, error: str) -> None:
        """The mapped task cannot expand (not a list, too long): it fails, no retry (the
        list would not change)."""
        run = task.run
        run.status, run.error, run.end_time, run.duration = _FAILED, error, iso(self.clock()), 0.0
        run.start_time = run.start_time or run.end_time
        self._mark(task)
        self._emit(
            EventKind.TASK_FAILED.value, run.name, _FAILED, run.end_time, run.attempts, 0.0,
            error=error,
        )  # fmt: skip
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
            if run.map_index is None:
                self._emit(_STARTED, run.name, _RUNNING, now, run.attempts)
            else:
                self._emit(_STARTED, run.name, _RUNNING, now, run.attempts, map_index=run.map_index)
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
        elif task.parent is not None and task.parent.values is not None:
            task.parent.values[run.map_index or 0] = value
        self._mark(task)
        self._emit(
            _DONE, run.name, _COMPLETED, run.end_time, run.attempts, run.duration,
            selected=selected, map_index=run.map_index,
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
                error=error, delay=delay, map_index=run.map_index,
            )  # fmt: skip
            self._add_timer(delay, "retry", task)
            return
        run.status, run.reason = _FAILED, reason
        run.end_time, run.duration = iso(finished), duration
        self._emit(
            EventKind.TASK_FAILED.value, run.name, _FAILED, run.end_time, run.attempts,
            duration, error=error, reason=reason, map_index=run.map_index,
        )  # fmt: skip
        self._finished(task)

    # -- cancel, owner lost, the end ---------------------------------------------------------
    def _cancel(self) -> None:
        if self.cancelled or self.status in (ExecStatus.COMPLETED, ExecStatus.FAILED):
            return
        self.cancelled = True
        now = iso(self.clock())
        for task in self._units():
            run = task.run
            if run.status in (_PENDING, _RUNNING):
                self._stop(task)
                run.status, run.reason, run.end_time = _CANCELLED, Reason.CANCELLED.value, now
                self._mark(task)
        self._clear()

    def _units(self) -> Any:
        """Every task and every instance of its mapped tasks."""
        for task in self.tasks.values():
            yield task
            if task.instances is not None:
                yield from task.instances

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
            if task.instances is None and task.run.name in self.prior_instances:
                self._expand_stored(task)  # so that its instances end with it
        for task in self._units():
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

    def release(self) -> None:
        """Untie what holds an ended run's units in a cycle (a mapped task and its
        instances hold each other), so that they are freed with the run, not left to
        the cyclic GC's full passes."""
        for task in self.tasks.values():
            task.instances = None

    def abandon(self) -> None:
        """The execution was ended elsewhere (cancel in another process, owner_lost):
        stop every attempt in flight, change nothing."""
        for task in self._units():
            self._stop(task)
        self.results.clear()
        self._dirty, self._events, self._exec, self._logs = {}, [], {}, []
        self._dirty_instances, self._instance_logs = {}, []

    def engine_failure(self) -> Changes:
        """The changes that record the driver's own failure (whatever state it left)."""
        now = iso(self.clock())
        self.status = ExecStatus.FAILED.value
        self.results.clear()
        self._dirty, self._logs, self._dirty_instances, self._instance_logs = {}, [], {}, []
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
