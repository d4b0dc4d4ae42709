"""Mapped tasks (SPEC 11): one task run once per item of a list found at run time.

Through a ``Runner`` on a real SQLite file and the thread executor: validation of
``map_over``; expansion (results in order, ``item`` and ``map_index`` for callables and
code, ``[]`` for an empty list, a non-list and a too-long list failing the task by
name); instances under the workflow's ``max_parallel``, retried and timed out each on
its own, cancelled all at once; the instance rows, counts, pages, events and logs; retry
reusing completed instances; and, in the state machine, a resumed execution taking its
stored instances as they are.
"""

from __future__ import annotations

import time

import pytest

from pytaskflow_jupyter.errors import InvalidInput, ValidationError
from pytaskflow_jupyter.model import TaskRun
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.tasks import Outcome
from pytaskflow_jupyter.transitions import RunState
from pytaskflow_jupyter.validation import parse_workflow

from . import sample_tasks
from .helpers import task, wait_until, wf

S = "tests.unit.sample_tasks"


def mapped(n: int, code: str = "result = item * 2", **fields):
    return wf(
        task("list", code=f"result = list(range({n}))"),
        task("work", "list", map_over="list", code=code, **fields),
    )


def by_name(execution):
    return {t["name"]: t for t in execution["tasks"]}


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("over", "extra", "code", "text"),
    [
        ("nope", {}, "invalid_map_over", "must name one of the dependencies of 'work'"),
        ("other", {}, "invalid_map_over", "(its dependencies: 'list')"),
        (3, {}, "type_error", "must be a task name, not int"),
        ("list", {"type": "branch", "params": {"next": []}}, "invalid_map_over", "branch"),
    ],
)
def test_map_over_must_name_a_dependency(over, extra, code, text):
    definition = wf(task("list"), task("other"), {**task("work", "list", map_over=over), **extra})
    with pytest.raises(ValidationError) as err:
        parse_workflow(definition)
    [problem] = err.value.problems
    assert problem.path == "tasks[2].map_over"
    assert problem.code == code
    assert text in problem.detail


def test_map_over_null_is_an_ordinary_task():
    spec = parse_workflow(wf(task("a"), task("b", "a", map_over=None))).task_map["b"]
    assert spec.map_over is None


# -- expansion --------------------------------------------------------------------------------
def test_results_in_order_and_counts(runner: Runner):
    definition = mapped(50, code="import time, random\ntime.sleep(random.random() / 200)\n"
                        "result = [item, map_index, context['map_index']]")  # fmt: skip
    definition["tasks"].append(task("after", "work", code="result = upstream['work']"))
    done = runner.wait(runner.submit(definition)["id"], 30)
    tasks = by_name(done)
    assert done["status"] == "completed"
    expected = [[i, i, i] for i in range(50)]
    assert tasks["work"]["result"] == expected
    assert tasks["after"]["result"] == expected  # downstream gets the list of values
    assert tasks["work"]["mapped"] == {
        "total": 50, "pending": 0, "running": 0, "completed": 50, "failed": 0, "cancelled": 0,
    }  # fmt: skip
    assert "mapped" not in tasks["list"]


def test_a_callable_gets_item_and_map_index(runner: Runner):
    definition = wf(
        task("seed", callable=f"{S}:items", kwargs={"n": 5}),
        task("work", "seed", map_over="seed", callable=f"{S}:mapped_record"),
    )
    done = runner.wait(runner.submit(definition)["id"], 30)
    assert by_name(done)["work"]["result"] == [0, 10, 20, 30, 40]


def test_an_instance_sees_its_item_as_the_upstream_of_its_map_over(runner: Runner):
    definition = wf(
        task("list", code="result = ['a', 'b']"),
        task("cfg", code="result = {'sep': '-'}"),
        task(
            "work", "list", "cfg", map_over="list",
            code="result = upstream['list'] + upstream['cfg']['sep'] + item",
        ),
    )  # fmt: skip
    done = runner.wait(runner.submit(definition)["id"], 30)
    assert by_name(done)["work"]["result"] == ["a-a", "b-b"]


def test_an_empty_list_completes_at_once_with_an_empty_list(runner: Runner):
    done = runner.wait(runner.submit(mapped(0, code="raise ValueError"))["id"], 30)
    work = by_name(done)["work"]
    assert (done["status"], work["status"], work["result"]) == ("completed", "completed", [])
    assert work["mapped"]["total"] == 0


def test_a_non_list_fails_the_task_naming_the_upstream_and_its_type(runner: Runner):
    definition = wf(
        task("list", code="result = {'a': 1}"),
        task("work", "list", map_over="list", code="result = 1"),
    )
    done = runner.wait(runner.submit(definition)["id"], 30)
    work = by_name(done)["work"]
    assert work["status"] == "failed"
    assert work["error"] == "map_over 'list' returned dict, not a list"


def test_more_than_max_map_length_fails_the_task(store, bus):
    from pytaskflow_jupyter.executors import ThreadExecutor

    executor = ThreadExecutor(2)
    runner = Runner(store, executor, bus, max_map_length=5)
    try:
        done = runner.wait(runner.submit(mapped(6))["id"], 30)
    finally:
        runner.close()
        executor.shutdown()
    work = by_name(done)["work"]
    assert work["status"] == "failed"
    assert work["error"] == "map_over 'list' returned 6 items, more than max_map_length (5)"
    assert runner.instances(done["id"], "work")["instances"] == []


def test_max_parallel_bounds_the_instances_in_flight(runner: Runner):
    sample_tasks._active.update(now=0, peak=0)
    definition = wf(
        task("list", code="result = list(range(12))"),
        task("work", "list", map_over="list", callable=f"{S}:concurrent",
             kwargs={"seconds": 0.03}),
        max_parallel=2,
    )  # fmt: skip
    done = runner.wait(runner.submit(definition)["id"], 30)
    assert done["status"] == "completed"
    assert max(by_name(done)["work"]["result"]) <= 2


# -- failures, retries, timeouts, cancel ------------------------------------------------------
def test_retries_apply_per_instance_and_one_failure_fails_the_task(runner: Runner):
    definition = wf(
        task("seed", callable=f"{S}:items", kwargs={"n": 6}),
        task("work", "seed", map_over="seed", callable=f"{S}:mapped_record", retries=1,
             retry_delay=0, kwargs={"fail_items": [1, 4], "fail_attempts": 1}),
        task("flaky", "seed", map_over="seed", callable=f"{S}:mapped_record", retries=1,
             retry_delay=0, kwargs={"fail_items": [2], "fail_attempts": 5}),
    )  # fmt: skip
    done = runner.wait(runner.submit(definition)["id"], 30)
    tasks = by_name(done)
    assert tasks["work"]["status"] == "completed"  # items 1 and 4 passed their second attempt
    assert tasks["work"]["result"] == [0, 10, 20, 30, 40, 50]
    page = runner.instances(done["id"], "work")["instances"]
    assert [i["attempts"] for i in page] == [1, 2, 1, 1, 2, 1]
    assert tasks["flaky"]["status"] == "failed"
    assert tasks["flaky"]["error"] == (
        "1 of 6 instances failed; first: [2] ValueError: item 2 fails attempt 2"
    )
    assert tasks["flaky"]["mapped"]["failed"] == 1
    assert tasks["flaky"]["mapped"]["completed"] == 5
    failed = runner.instances(done["id"], "flaky", status="failed")["instances"]
    assert [(i["mapIndex"], i["attempts"], len(i["history"])) for i in failed] == [(2, 2, 2)]


def test_a_timeout_fails_only_its_instance(runner: Runner):
    definition = mapped(
        3, code="import time\nif item == 1: time.sleep(30)\nresult = item", timeout=0.5
    )
    done = runner.wait(runner.submit(definition)["id"], 30)
    slow = runner.instances(done["id"], "work", status="failed")["instances"]
    assert [(i["mapIndex"], i["reason"]) for i in slow] == [(1, "timeout")]
    assert "timeout of 0.5s" in slow[0]["error"]
    assert runner.instances(done["id"], "work", status="completed")["mapped"]["completed"] == 2


def test_cancel_stops_every_instance(runner: Runner):
    definition = mapped(40, code="import time\ntime.sleep(0.2)\nresult = item")
    execution = runner.submit(definition)
    wait_until(lambda: (by_name(runner.get(execution["id"]))["work"].get("mapped") or {}).get(
        "completed", 0) >= 2)  # fmt: skip
    done = runner.cancel(execution["id"])
    assert done["status"] == "cancelled"
    work = by_name(done)["work"]
    assert work["status"] == "cancelled"
    counts = work["mapped"]
    assert counts["pending"] == counts["running"] == 0
    assert counts["cancelled"] >= 1
    assert counts["completed"] + counts["cancelled"] == 40
    time.sleep(0.5)  # nothing starts after the cancel
    assert by_name(runner.get(execution["id"]))["work"]["mapped"] == counts


# -- rows, pages, events, logs ---------------------------------------------------------------
def test_instances_are_paged_in_index_order_and_filtered(runner: Runner):
    done = runner.wait(runner.submit(mapped(25, code="result = item % 3"))["id"], 30)
    first = runner.instances(done["id"], "work", limit=10)
    assert [i["mapIndex"] for i in first["instances"]] == list(range(10))
    assert first["nextCursor"] == 10
    last = runner.instances(done["id"], "work", limit=10, cursor=20)
    assert [i["mapIndex"] for i in last["instances"]] == list(range(20, 25))
    assert last["nextCursor"] is None
    assert [i["result"] for i in last["instances"]] == [2, 0, 1, 2, 0]
    assert runner.instances(done["id"], "work", status="failed")["instances"] == []
    with pytest.raises(InvalidInput, match="'list' is not mapped"):
        runner.instances(done["id"], "list")


def test_instance_events_carry_their_map_index(runner: Runner, bus):
    seen = []
    bus.subscribe(lambda events: seen.extend(events))
    done = runner.wait(runner.submit(mapped(3))["id"], 30)
    mine = [(e.event, e.task, e.map_index) for e in seen if e.execution_id == done["id"]]
    work = [m for m in mine if m[1] == "work"]
    assert work[0] == ("task_started", "work", None)  # the mapped task expands
    assert work[-1] == ("task_completed", "work", None)  # ... and ends with its last instance
    instance_events = sorted(m for m in work if m[2] is not None)
    assert instance_events == sorted(
        [("task_started", "work", i) for i in range(3)]
        + [("task_completed", "work", i) for i in range(3)]
    )
    assert seen[-1].to_json().get("map_index") is None
    started = next(e for e in seen if e.map_index == 1)
    assert started.to_json()["map_index"] == 1


def test_logs_per_instance(runner: Runner):
    done = runner.wait(
        runner.submit(mapped(3, code="print('item', item)\nresult = item"))["id"], 30
    )
    assert runner.get_logs(done["id"], "work", 2) == [
        {"attempt": 1, "stdout": "item 2\n", "stderr": ""}
    ]
    assert runner.get_logs(done["id"], "work") == []  # the mapped task itself printed nothing


# -- retry -----------------------------------------------------------------------------------
def test_retry_reuses_completed_instances_and_reruns_only_the_failed(runner: Runner):
    definition = wf(
        task("seed", callable=f"{S}:items", kwargs={"n": 8}),
        task(
            "work", "seed", map_over="seed", callable=f"{S}:mapped_record",
            kwargs={"fail_items": [3, 6], "fail_attempts": 1},
        ),
    )  # fmt: skip
    first = runner.wait(runner.submit(definition)["id"], 30)
    assert by_name(first)["work"]["status"] == "failed"
    second = runner.wait(runner.retry(first["id"])["id"], 30)
    # the second execution ran instances 3 and 6 again (attempt 1 there: a fresh budget,
    # which still fails), and nothing else
    ran = {
        name for ex, name, kind, *_ in sample_tasks.LOG if ex == second["id"] and kind == "start"
    }
    assert ran == {"work[3]", "work[6]"}
    page = runner.instances(second["id"], "work")["instances"]
    assert [i["status"] for i in page] == ["completed"] * 3 + ["failed"] + ["completed"] * 2 + [
        "failed", "completed",
    ]  # fmt: skip


def test_a_changed_upstream_reruns_every_instance(runner: Runner):
    definition = wf(
        task("seed", callable=f"{S}:items", kwargs={"n": 4}),
        task("work", "seed", map_over="seed", callable=f"{S}:mapped_record",
             kwargs={"fail_items": [2], "fail_attempts": 1}),
    )  # fmt: skip
    first = runner.wait(runner.submit(definition)["id"], 30)
    second = runner.wait(runner.retry(first["id"], rerun=["seed"])["id"], 30)
    ran = {
        name for ex, name, kind, *_ in sample_tasks.LOG if ex == second["id"] and kind == "start"
    }
    assert ran == {f"work[{i}]" for i in range(4)}  # its list may differ: none is reused


# -- resume (the state machine) --------------------------------------------------------------
def test_a_resumed_execution_keeps_its_stored_instances():
    workflow = parse_workflow(mapped(4))
    runs = {
        "list": TaskRun("list", "completed", 1, "t", "t", 0.0, [0, 1, 2, 3]),
        "work": TaskRun("work", "running", 1, start_time="2026-12-01T00:00:00.000Z",
                        mapped={"total": 4, "pending": 1, "running": 1, "completed": 1,
                                "failed": 1, "cancelled": 0}),
    }  # fmt: skip
    stored = {
        0: TaskRun("work", "completed", 1, "t", "t", 0.1, 0, map_index=0),
        1: TaskRun("work", "running", 1, "t", map_index=1),
        2: TaskRun("work", "failed", 1, "t", "t", 0.1, error="ValueError: x", map_index=2),
        3: TaskRun("work", "pending", 0, map_index=3),
    }
    state = RunState(workflow, "exec_1", runs, prior_instances={"work": stored})
    state.begin("running")
    state.decide()
    started = state.start_attempts(10)
    assert sorted(t.run.map_index for t in started) == [1, 3]  # never 0 (completed) nor 2
    assert started[0].run.attempts == 2  # the interrupted attempt counted as begun
    changes = state.take()
    assert not [e for e in changes.events if e.event == "task_started" and e.map_index is None]
    for inst in started:
        state.apply(
            Outcome("work", inst.run.attempts, True, inst.item, map_index=inst.run.map_index)
        )
    state.decide()
    assert state.done
    work = state.tasks["work"].run
    assert work.status == "failed"
    assert work.error == "1 of 4 instances failed; first: [2] ValueError: x"
    state.take()
    assert work.mapped == {
        "total": 4, "pending": 0, "running": 0, "completed": 3, "failed": 1, "cancelled": 0,
    }  # fmt: skip


def test_a_resumed_mapped_task_is_running_again_while_its_instances_run():
    workflow = parse_workflow(mapped(2))
    runs = {
        "list": TaskRun("list", "completed", 1, "t", "t", 0.0, [0, 1]),
        "work": TaskRun("work", "running", 1, start_time="2026-12-01T00:00:00.000Z",
                        mapped={"total": 2, "pending": 1, "running": 1, "completed": 0,
                                "failed": 0, "cancelled": 0}),
    }  # fmt: skip
    stored = {0: TaskRun("work", "running", 1, "t", map_index=0), 1: TaskRun("work", map_index=1)}
    state = RunState(workflow, "exec_1", runs, prior_instances={"work": stored})
    state.begin("running")
    state.decide()
    state.start_attempts(10)
    changes = state.take()
    [work] = [r for r in changes.tasks if r.name == "work"]
    assert (work.status, work.attempts, work.start_time) == (
        "running", 1, "2026-12-01T00:00:00.000Z",
    )  # fmt: skip
    assert work.mapped == {
        "total": 2, "pending": 0, "running": 2, "completed": 0, "failed": 0, "cancelled": 0,
    }  # fmt: skip


def test_owner_lost_ends_the_stored_instances_too():
    from pytaskflow_jupyter.transitions import OWNER_LOST

    workflow = parse_workflow(mapped(3))
    runs = {
        "list": TaskRun("list", "completed", 1, "t", "t", 0.0, [0, 1, 2]),
        "work": TaskRun("work", "running", 1, start_time="t",
                        mapped={"total": 3, "pending": 1, "running": 1, "completed": 1,
                                "failed": 0, "cancelled": 0}),
    }  # fmt: skip
    stored = {
        0: TaskRun("work", "completed", 1, "t", "t", 0.1, 0, map_index=0),
        1: TaskRun("work", "running", 1, "t", map_index=1),
        2: TaskRun("work", "pending", 0, map_index=2),
    }
    state = RunState(workflow, "exec_1", runs, prior_instances={"work": stored})
    state.apply(OWNER_LOST)
    changes = state.take()
    ended = {r.map_index: (r.status, r.reason) for r in changes.instances}
    assert ended == {1: ("failed", "owner_lost"), 2: ("failed", "owner_lost")}
    [work] = [r for r in changes.tasks if r.name == "work"]
    assert work.status == "failed"
    assert work.mapped == {
        "total": 3, "pending": 0, "running": 0, "completed": 1, "failed": 2, "cancelled": 0,
    }  # fmt: skip
