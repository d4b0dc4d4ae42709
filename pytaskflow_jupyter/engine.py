"""The driver of one execution: the loop that feeds the state machine and does its I/O.

Design
------
``transitions.RunState`` decides every change of run state; this module only moves
messages and changes between it and the outside world (dask's ``get_async`` is the
model: the loop is handed its boundaries). An executor reports each attempt's ``Outcome``
through the callback ``_reporter`` makes, and so does ``cancel()``; one turn, always
under ``_turn`` (one thread at a time):

1. apply the messages waiting in ``_pending``, in order; fire due timers (retry back-off
   over, attempt past its ``timeout``); stop the attempts the state gave up on;
2. let the state decide the tasks whose dependencies have all finished;
3. mark as many runnable attempts ``running`` as the window allows;
4. commit the turn's ``Changes`` -- task runs, execution row, events -- through the store
   port in ONE transaction, then publish the events (commit before publish);
5. hand the attempts of step 3 to the executor: an attempt runs only once its row says
   ``running`` durably, so what a notebook or the panel shows never lags the code.

Who runs a turn: the execution's loop thread (``run``), woken by ``_queue`` for every
message posted, by a due timer, or every ``control_interval`` to poll the store for a
cancel made elsewhere; or, with an executor that allows it (``Executor.in_turn``: the
thread executor's pool thread that just ended an attempt), the reporting thread itself,
when no other thread is in a turn. The thread executor then runs the first attempt the
turn started on that same thread, so a chain's step is the task, one commit and no
thread hand-off (two before: worker to loop, loop to worker, ~90 us of a 210 us step).

Batching a turn's changes in one transaction keeps per-task overhead near a function
call plus a row write, however many tasks finish together.

Results: a task's result stays in memory only while a task downstream may still start
(``RunState.results``); a task with consumers gets a ``results.Spill`` in its job, so a
large result is written to a file under ``runs_dir`` by its worker and passed on by
reference (``results.py``), and a task without any reports only what the store keeps;
a resumed execution finds those files again (``recalled``), and the engine removes them
when the execution ends. The report callback executors get holds this object weakly:
a pool thread that keeps its last attempt then keeps no execution alive.

The engine depends on ``RunStore`` (a protocol of three methods), not on ``Store``;
``settle`` runs one message through the same state machine for an execution that has no
loop (a dead owner's), so that nothing else writes run state.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from ._rows import encode_result
from .events import Event, EventBus
from .executors import Executor
from .model import TERMINAL_EXECUTION, ExecStatus, TaskRun, TaskStatus, Workflow
from .results import SPILL_OVER, Spill, Spilled, remove, results_dir, spill_path
from .tasks import Job, Logs, Outcome, Progress, Started
from .transitions import CANCEL, MAX_MAP_LENGTH, Changes, RunState

__all__ = ["ExecutionRun", "RunStore", "settle", "stored_result"]

log = logging.getLogger(__name__)

# (callable name, snapshot digest or None) -> the notebook function to call
Resolver = Callable[[str, str | None], Callable[..., Any] | None]


class RunStore(Protocol):
    """What the engine needs of a store (``store.Store`` implements it)."""

    def commit(self, execution_id: str, changes: Changes) -> list[Event] | None:
        """Write ``changes`` in one transaction; None (nothing written) when the
        execution is already terminal in the store, else the events with their ``seq``."""

    def control(self, execution_id: str) -> tuple[str, bool]:
        """``(status, cancel_requested)`` as stored."""

    def execution_row(self, execution_id: str) -> dict[str, Any]:
        """The stored execution (its ``status`` at least)."""

    def instance_runs(self, execution_id: str) -> dict[str, dict[int, TaskRun]]:
        """The stored runs of the instances of its mapped tasks, by task and index."""


def settle(
    store: RunStore,
    bus: EventBus,
    workflow: Workflow,
    execution_id: str,
    runs: dict[str, TaskRun],
    message: Any,
) -> str:
    """Apply one message to an execution that has no loop (``OWNER_LOST``), commit and
    publish its changes; returns the resulting status."""  # fmt: skip
    state = RunState(
        workflow, execution_id, runs, prior_instances=store.instance_runs(execution_id)
    )
    state.apply(message)
    events = store.commit(execution_id, state.take())
    bus.publish(events or [])
    return state.status


class ExecutionRun:
    """Runs one stored execution to its end (see the module docstring)."""

    def __init__(
        self,
        store: RunStore,
        executor: Executor,
        bus: EventBus,
        workflow: Workflow,
        execution_id: str,
        *,
        params: dict[str, Any] | None = None,
        prior: dict[str, TaskRun] | None = None,
        resolve: Resolver | None = None,
        window: int = 2048,
        fast_noop: bool = True,
        capture: bool = True,
        log_limit: int = 64 * 1024,
        root_dir: str | None = None,
        runs_dir: str | None = None,
        control_interval: float = 0.5,
        max_interruptions: int = 3,
        spill_over: int | None = SPILL_OVER,
        max_map_length: int = MAX_MAP_LENGTH,
    ) -> None:
        self.store, self.executor, self.bus = store, executor, bus
        self.workflow = workflow
        self.execution_id = execution_id
        self.params = params or {}
        self.resolve = resolve
        self.capture, self.log_limit = capture, log_limit
        self.root_dir, self.runs_dir = root_dir, runs_dir
        # a result pickled larger than this is spilled (None: never)
        self.spill_over = spill_over if runs_dir is not None else None
        self._spill_to: Spill | None = None  # made with its folder, when the run starts
        self.window = min(window, workflow.max_parallel or window)
        self.control_interval = control_interval
        self.state = RunState(
            workflow,
            execution_id,
            prior,
            fast_noop=fast_noop,
            max_interruptions=max_interruptions,
            stored=stored_result,
            # not a method of the run: the state would hold the run, in a cycle that
            # leaves every task of an ended execution to the cyclic GC's full passes
            recall=functools.partial(recalled, runs_dir, execution_id),
            max_map_length=max_map_length,
        )
        self.status: str = ExecStatus.PENDING.value
        self.done = threading.Event()
        # Messages wait in ``_pending`` (in order) for whoever runs the next turn, under
        # ``_turn``; ``_queue`` only wakes the loop thread (a ``_WAKE`` per message).
        self._pending: collections.deque[Any] = collections.deque()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._turn = threading.Lock()
        self._wake_at = 0.0  # when the loop thread wakes by itself next (monotonic)
        self._stopped = self._failed = False
        self._reporter = _reporter(self, executor.in_turn)

    # -- public, thread-safe ------------------------------------------------------------
    def report(self, outcome: Outcome | Started | Progress | Logs) -> None:
        """Executor callback: an attempt's outcome (start, progress) for the state."""
        self._reporter(outcome)

    def cancel(self) -> None:
        """Ask the loop to cancel the execution (final)."""
        self._post(CANCEL)

    def _post(self, msg: Any) -> None:
        """Leave ``msg`` for whoever runs the next turn, and wake the loop thread."""
        self._pending.append(msg)
        self._queue.put(_WAKE)

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> str:
        """Run until the execution reaches a terminal status; return that status."""
        state, turn = self.state, self._turn
        failed = False
        try:
            with turn:
                if any(t.map_over is not None for t in self.workflow.tasks):
                    state.prior_instances = self.store.instance_runs(self.execution_id)
                state.begin(self.store.execution_row(self.execution_id)["status"])
                self._make_results_dir()
            next_control = time.monotonic() + self.control_interval
            while True:
                with turn:
                    if not self._stopped:
                        self._step()
                    if self._stopped:
                        break
                    now = time.monotonic()
                    if now >= next_control:
                        self._poll_control()
                        next_control = now + self.control_interval
                    due = state.next_deadline()
                    self._wake_at = next_control if due is None else min(next_control, due)
                self._sleep(self._wake_at)
                with turn:
                    self._drain()
        except Exception:
            log.exception("execution %s: engine loop failed", self.execution_id)
            failed = True
        finally:
            if failed or self._failed:
                self._abort()
            if self.runs_dir is not None and self.status in TERMINAL_EXECUTION:
                remove(self.runs_dir, self.execution_id)  # else a resumed engine needs them
            with turn:  # a late report never sees it: the run is stopped
                self._stopped = True
                state.release()
            self.done.set()
        return self.status

    def _step(self) -> None:
        """One turn: decide, start attempts, commit and publish, hand the attempts over;
        the run is ``_stopped`` once it ended (or was ended elsewhere)."""
        state = self.state
        state.decide()
        started = state.start_attempts(self.window)
        if not self._flush():
            return
        self._submit(started)
        if state.done:
            state.finish()
            if self._flush():
                self.status = state.status
            self._stopped = True

    def _sleep(self, deadline: float) -> None:
        """Wait (without the turn) until a message is posted or ``deadline``."""
        q = self._queue
        timeout = deadline - time.monotonic()
        if timeout > 0 and not self._pending:
            with contextlib.suppress(queue.Empty):
                q.get(timeout=timeout)
        with contextlib.suppress(queue.Empty):
            while True:  # the wake-ups of messages taken together
                q.get_nowait()

    def _drain(self) -> None:
        """Apply the posted messages in order, fire due timers, stop what was given up
        on (under the turn)."""
        pending, apply = self._pending, self.state.apply
        while pending:
            apply(pending.popleft())
        if self.state.timers:
            self.state.fire_timers()
        self._stop_abandoned()

    def _in_turn(self, msg: Any) -> None:
        """The reporting thread (a pool thread that just ended an attempt) runs the turn
        itself, under the turn: no hand-off to the loop thread and back. The loop thread
        is woken only when it must act sooner than it planned, or the run ended."""
        if self._stopped:
            return  # a late report: the run is over
        try:
            self._drain()
            self.state.apply(msg)
            self._step()
        except Exception:
            log.exception("execution %s: engine turn failed", self.execution_id)
            self._failed = self._stopped = True
        due = self.state.next_deadline()
        if self._stopped or (due is not None and due < self._wake_at):
            self._queue.put(_WAKE)

    def _make_results_dir(self) -> None:
        if self.runs_dir is None or self.spill_over is None:
            return
        if not any(task.children for task in self.state.tasks.values()):
            return
        folder = results_dir(self.runs_dir, self.execution_id)
        try:
            os.makedirs(folder, exist_ok=True)
            self._spill_to = Spill(folder, self.spill_over, stored_result)
        except OSError:
            log.warning(
                "execution %s: cannot create its results folder under %s; large results "
                "stay in memory",
                self.execution_id,
                self.runs_dir,
                exc_info=True,
            )
            self.spill_over = None

    def _stop_abandoned(self) -> None:
        to_stop = self.state.to_stop
        if to_stop:
            self.state.to_stop = []
            for handle in to_stop:
                self.executor.stop(handle)

    def _submit(self, started: list[Any]) -> None:
        submit, report, results = self.executor.submit, self._reporter, self.state.results
        submitted, reports_start = self.state.submitted, self.executor.reports_start
        for task in started:
            spec = task.spec
            fn = None
            ref = spec.params.get("callable")
            if ref and ":" not in ref and self.resolve is not None:
                fn = self.resolve(ref, spec.params.get("snapshot"))
            upstream = {d: results.get(d) for d in spec.dependencies}
            if task.parent is not None:  # an instance: its item, not the whole list
                upstream[spec.map_over] = task.item
            job = Job(
                self.execution_id,
                self.workflow.id,
                spec.name,
                task.run.attempts,
                spec.type,
                spec.params,
                upstream,
                fn,
                self.capture,
                self.log_limit,
                self.root_dir,
                self.params,
                spec.timeout,
                self.runs_dir,
                self._spill(task),
                task.run.map_index,
                task.item,
            )
            submitted(task, submit(job, report), reports_start)

    def _spill(self, task: Any) -> Spill | None:
        """Where the attempt's worker writes a large result (``results.py``)."""
        if task.spec.type == "branch":  # the state reads its selection as it is
            return None
        if task.parent is not None:  # an instance: its mapped task collects its value
            return None if task.parent.children else _NO_CONSUMERS
        if not task.children:  # nothing downstream: only what the store keeps comes back
            return _NO_CONSUMERS
        if any(c.spec.map_over == task.spec.name for c in task.children):
            return None  # the state reads the list it maps over
        return self._spill_to

    def _flush(self) -> bool:
        """Commit the turn's changes, then publish; False when the execution was ended
        elsewhere (its row is already terminal), so this loop must stop."""
        self._stop_abandoned()
        changes = self.state.take()
        if not changes:
            return True
        events = self.store.commit(self.execution_id, changes)
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
            self.state.apply(CANCEL)

    def _stop_foreign(self) -> None:
        """The execution was ended by someone else (cancel elsewhere, owner_lost)."""
        self.state.abandon()
        self._stop_abandoned()
        self.status = self.store.control(self.execution_id)[0]
        self._stopped = True

    def _abort(self) -> None:
        """An engine bug (or a store that keeps failing) must not leave the execution
        running forever: record it failed, trying a few times. Should that fail too,
        the heartbeat of this execution stops, and recovery takes it over."""
        for delay in (0.1, 0.5, 2.0, None):
            try:
                events = self.store.commit(self.execution_id, self.state.engine_failure())
                if events is not None:
                    self.status = ExecStatus.FAILED.value
                    self.bus.publish(events)
                return
            except Exception:
                log.exception(
                    "execution %s: could not record the engine failure", self.execution_id
                )
                if delay is not None:
                    time.sleep(delay)


def recalled(runs_dir: str | None, execution_id: str, run: TaskRun) -> Any:
    """What a resumed execution hands downstream of a finished task: its spilled
    result if the file is there, else what the store kept (as before spilling)."""
    if runs_dir is not None and run.status == TaskStatus.COMPLETED:
        path = spill_path(runs_dir, execution_id, run.name, run.attempts)
        if os.path.isfile(path):
            return Spilled(path, run.result)
    return run.result


_WAKE = object()


def _reporter(run: ExecutionRun, in_turn: Callable[[], bool] | None) -> Callable[[Any], None]:
    """The report callback executors get. It holds the run weakly: a pool thread that
    keeps its last attempt then keeps no execution (and none of its results) alive.
    When the executor says the reporting thread may (``Executor.in_turn``: a pool
    thread reporting an attempt that has ended) and no other thread runs a turn, the
    reporting thread runs the turn itself; else the message waits for the loop thread."""
    ref, pending, wake, turn = weakref.ref(run), run._pending, run._queue.put, run._turn

    def post(msg: Any) -> None:
        pending.append(msg)
        wake(_WAKE)

    if in_turn is None:
        return post

    def report(msg: Any) -> None:
        target = ref()
        if target is None or not in_turn() or not turn.acquire(blocking=False):
            post(msg)
            return
        try:
            target._in_turn(msg)
        finally:
            turn.release()

    return report


def stored_result(value: Any) -> Any:
    """A result as the store keeps it and REST shows it: its JSON, or a summary."""
    return json.loads(encode_result(value))


_NO_CONSUMERS = Spill(None, 0, stored_result)
