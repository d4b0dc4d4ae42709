"""The state machine alone (``transitions.RunState``): messages in, whole states out.

No store, no executor, no thread: a state is built from a definition, sent messages,
and compared as a whole -- every task's status, attempts, reason -- together with the
changes it hands the driver (dask's ``finish_task`` tests are the model). The clocks
are passed in, so timers fire when the test says so.
"""

from __future__ import annotations

from typing import Any

from pytaskflow_jupyter.model import TaskRun
from pytaskflow_jupyter.tasks import Outcome, Started
from pytaskflow_jupyter.transitions import CANCEL, OWNER_LOST, RunState
from pytaskflow_jupyter.validation import parse_workflow

from .helpers import task, wf


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make(definition: dict[str, Any], prior: dict[str, TaskRun] | None = None) -> RunState:
    clock = Clock()
    state = RunState(
        parse_workflow(definition), "exec_t", prior, fast_noop=False, clock=clock, monotonic=clock
    )
    state.clock_ = clock  # type: ignore[attr-defined]
    return state


def tasks(state: RunState) -> dict[str, tuple[Any, ...]]:
    return {name: (t.run.status, t.run.attempts, t.run.reason) for name, t in state.tasks.items()}


def kinds(state: RunState) -> list[tuple[str, str | None]]:
    """The events of the changes taken now, as (event, task)."""
    return [(e.event, e.task) for e in state.take().events]


def ok(name: str, attempt: int = 1, result: Any = None) -> Outcome:
    return Outcome(name, attempt, True, result, started=1.0, finished=2.0)


def failed(name: str, attempt: int = 1) -> Outcome:
    return Outcome(name, attempt, False, error="ValueError: no", started=1.0, finished=2.0)


def turn(state: RunState) -> list[str]:
    """What the driver does between messages: decide, start, and give each a handle."""
    state.decide()
    started = state.start_attempts(100)
    for t in started:
        state.submitted(t, f"handle-{t.spec.name}", reports_start=True)
    return [t.spec.name for t in started]


CHAIN = wf(task("a"), task("b", "a"), task("c", "b"))


def test_a_chain_moves_one_task_per_outcome():
    state = make(CHAIN)
    state.begin("pending")
    assert turn(state) == ["a"]
    assert tasks(state) == {"a": ("running", 1, None), "b": ("pending", 0, None),
                            "c": ("pending", 0, None)}  # fmt: skip
    assert kinds(state) == [("execution_started", None), ("task_started", "a")]
    state.apply(ok("a", result=41))
    assert turn(state) == ["b"]
    # a's result went to b, its only consumer, which has no retry: it is not kept
    assert tasks(state)["a"] == ("completed", 1, None) and state.results == {}
    assert kinds(state) == [("task_completed", "a"), ("task_started", "b")]
    state.apply(ok("b"))
    state.apply(ok("c", 1))  # a late or stray outcome of a task not running: ignored
    assert turn(state) == ["c"]
    state.apply(ok("c"))
    turn(state)
    assert state.done and state.finish() == "completed"
    assert kinds(state)[-1] == ("execution_completed", None)
    assert state.take().execution == {}  # taken already: nothing twice


def test_a_failure_skips_downstream_and_all_done_still_runs():
    state = make(wf(task("a"), task("b", "a"), task("c", "a", trigger_rule="all_done")))
    state.begin("pending")
    turn(state)
    state.apply(failed("a"))
    assert turn(state) == ["c"]
    assert tasks(state) == {"a": ("failed", 1, None), "b": ("skipped", 0, "upstream_failed"),
                            "c": ("running", 1, None)}  # fmt: skip
    assert [h["status"] for h in state.tasks["a"].run.history] == ["failed"]


def test_a_retry_waits_its_backoff_on_the_given_clock():
    state = make(wf(task("a", retries=1, retry_delay=5)))
    state.begin("pending")
    turn(state)
    state.apply(failed("a"))
    assert tasks(state) == {"a": ("pending", 1, None)}
    assert ("task_retrying", "a") in kinds(state)
    state.fire_timers()
    assert turn(state) == []  # 5 s have not passed
    state.clock_.now += 5  # type: ignore[attr-defined]
    state.fire_timers()
    assert turn(state) == ["a"] and tasks(state) == {"a": ("running", 2, None)}


def test_a_timeout_counts_from_the_start_and_stops_the_attempt():
    state = make(wf(task("a", timeout=2), task("b", "a")))
    state.begin("pending")
    turn(state)
    state.clock_.now += 10  # queued for 10 s: not counted, the attempt has not started
    state.fire_timers()
    assert tasks(state)["a"] == ("running", 1, None)
    state.apply(Started("a", 1))
    state.clock_.now += 2
    state.fire_timers()
    assert tasks(state) == {"a": ("failed", 1, "timeout"), "b": ("pending", 0, None)}
    assert state.to_stop == ["handle-a"] and state.inflight == 0
    run = state.tasks["a"].run
    # a timed-out attempt has a duration, its start to its end (issue 15, item 12)
    assert run.duration == 12.0 and run.history[0]["duration"] == 12.0
    assert run.start_time is not None and run.end_time is not None
    state.apply(ok("a"))  # the outcome of the stopped attempt, late: ignored
    assert tasks(state)["a"] == ("failed", 1, "timeout")


def test_cancel_is_final_and_stops_what_runs():
    state = make(wf(task("a"), task("b"), task("c", "a")))
    state.begin("running")
    turn(state)
    state.take()
    state.apply(CANCEL)
    assert tasks(state) == {name: ("cancelled", n, "cancelled")
                            for name, n in (("a", 1), ("b", 1), ("c", 0))}  # fmt: skip
    assert sorted(state.to_stop) == ["handle-a", "handle-b"]
    state.apply(ok("a"))
    assert turn(state) == [] and state.done and state.finish() == "cancelled"


def test_owner_lost_fails_what_was_active_in_one_batch():
    prior = {"a": TaskRun("a", "completed", 1, result=1), "b": TaskRun("b", "running", 1)}
    state = make(CHAIN, prior)
    state.apply(OWNER_LOST)
    assert tasks(state) == {"a": ("completed", 1, None), "b": ("failed", 1, "owner_lost"),
                            "c": ("failed", 0, "owner_lost")}  # fmt: skip
    changes = state.take()
    assert [r.name for r in changes.tasks] == ["b", "c"]
    assert [(e.event, e.reason) for e in changes.events] == [("execution_failed", "owner_lost")]
    assert changes.execution["status"] == "failed" and state.status == "failed"


def test_resume_reruns_an_interrupted_attempt_without_using_a_retry():
    """An attempt cut short by a stop of the server is not a failure: 'c' (retries 0)
    reruns too, and its interruption does not count against its budget."""
    prior = {
        "a": TaskRun("a", "completed", 1, result=1),
        "b": TaskRun("b", "running", 1),
        "c": TaskRun("c", "running", 1),
    }
    state = make(wf(task("a"), task("b", "a", retries=1), task("c", "a")), prior)
    state.begin("running")
    assert tasks(state) == {"a": ("completed", 1, None), "b": ("pending", 1, None),
                            "c": ("pending", 1, None)}  # fmt: skip
    assert {n: t.run.interruptions for n, t in state.tasks.items()} == {"a": 0, "b": 1, "c": 1}
    assert turn(state) == ["b", "c"]
    events = kinds(state)
    assert ("execution_started", None) not in events  # it had started before the crash
    assert ("task_started", "c") in events and ("task_failed", "c") not in events
    state.apply(failed("b", 2))  # its first counted attempt: b still has its retry
    assert tasks(state)["b"] == ("pending", 2, None)
    state.apply(failed("c", 2))  # c's one counted attempt fails: no retry is left
    assert tasks(state)["c"] == ("failed", 2, None)


def test_a_task_interrupted_more_than_max_interruptions_times_fails_interrupted():
    """A task that keeps killing the server: rerun max_interruptions times, then failed."""
    definition = wf(task("a", retries=5))
    state = make(definition, {"a": TaskRun("a", "running", 1)})
    state.max_interruptions = 2
    for interruption in (1, 2):
        state.begin("running")
        assert tasks(state) == {"a": ("pending", interruption, None)}
        turn(state)
        assert tasks(state) == {"a": ("running", interruption + 1, None)}
        # the server dies again: the next server resumes from the stored run
        state = make(definition, {"a": state.take().tasks[0]})
        state.max_interruptions = 2
    state.begin("running")
    assert tasks(state) == {"a": ("failed", 3, "interrupted")}
    assert state.tasks["a"].run.interruptions == 3
    assert "3 times" in state.tasks["a"].run.error
    assert kinds(state) == [("task_failed", "a")]
    assert state.done


def test_a_branch_selection_outside_its_children_fails_it():
    state = make(wf(task("a"), task("br", "a", type="branch", code="result = 'a'"),
                    task("x", "br")))  # fmt: skip
    state.begin("pending")
    turn(state)
    state.apply(ok("a"))
    turn(state)
    state.apply(ok("br", result=["a"]))
    turn(state)
    assert tasks(state)["br"] == ("failed", 1, None)
    assert "not a direct downstream" in state.tasks["br"].run.error


def test_the_engine_failure_replaces_whatever_the_turn_held():
    state = make(CHAIN)
    state.begin("pending")
    turn(state)
    changes = state.engine_failure()
    assert changes.tasks == [] and changes.execution["reason"] == "engine_error"
    assert [(e.event, e.error) for e in changes.events] == [
        ("execution_failed", "internal engine error")
    ]


def test_a_notebook_stops_itself_at_its_timeout_and_the_engine_waits_for_its_word():
    nb = task("n", type="notebook", params={"path": "a.ipynb"}, timeout=2)
    state = make(wf(nb))
    state.begin("pending")
    turn(state)
    state.apply(Started("n", 1))
    state.clock_.now += 2  # type: ignore[attr-defined]
    state.fire_timers()
    assert tasks(state) == {"n": ("running", 1, None)}  # its own watchdog speaks first
    own = Outcome(
        "n",
        1,
        False,
        error="NotebookError: timed out after 2 s while running cell 2",
        output=".taskflow/runs/exec_t/n.ipynb",
        timed_out=True,
        started=1,
        finished=3,
    )
    state.apply(own)
    assert tasks(state) == {"n": ("failed", 1, "timeout")}
    assert state.tasks["n"].run.output == ".taskflow/runs/exec_t/n.ipynb"


def test_a_notebook_that_does_not_stop_is_stopped_after_the_grace():
    from pytaskflow_jupyter.transitions import SELF_TIMED_GRACE

    state = make(wf(task("n", type="notebook", params={"path": "a.ipynb"}, timeout=2)))
    state.begin("pending")
    turn(state)
    state.apply(Started("n", 1))
    state.clock_.now += 2 + SELF_TIMED_GRACE  # type: ignore[attr-defined]
    state.fire_timers()
    assert tasks(state) == {"n": ("failed", 1, "timeout")} and state.to_stop == ["handle-n"]
