"""Property tests on random DAGs (hypothesis).

For any DAG, any mix of failing/flaky tasks and trigger rules:
* every task starts only after all its dependencies have finished (worker-side ticks);
* no task runs more attempts than its budget (retries + 1);
* the execution ends in a terminal status, and so does every task;
* the execution status agrees with its tasks.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytaskflow_jupyter.events import EventBus
from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.model import TRIGGER_RULES
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.store import Store

from . import sample_tasks

S = "tests.unit.sample_tasks"


@st.composite
def dags(draw):
    n = draw(st.integers(1, 14))
    tasks = []
    for i in range(n):
        deps = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        retries = draw(st.integers(0, 2))
        fail_attempts = draw(st.sampled_from([0, 0, 0, 1, 5]))
        task = {
            "name": f"t{i}",
            "dependencies": [f"t{d}" for d in deps],
            "retries": retries,
            "retry_delay": 0,
            "trigger_rule": draw(st.sampled_from(TRIGGER_RULES)),
            "params": {"callable": f"{S}:record", "kwargs": {"fail_attempts": fail_attempts}},
        }
        tasks.append(task)
    return {"name": "prop", "tasks": tasks}


@st.composite
def shuffled_dags(draw):
    """Same DAGs, in a random order in the definition (order must not matter)."""
    d = draw(dags())
    d["tasks"] = draw(st.permutations(d["tasks"]))
    return d


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(definition=shuffled_dags())
def test_random_dags(tmp_path_factory, definition):
    store = Store(tmp_path_factory.mktemp("prop") / "t.db")
    executor = ThreadExecutor(3)
    runner = Runner(store, executor, EventBus())
    try:
        ex = runner.submit(definition)
        done = runner.wait(ex["id"], 15)
    finally:
        runner.close()
        executor.shutdown()
    specs = {t["name"]: t for t in definition["tasks"]}
    log = [e for e in sample_tasks.LOG if e[0] == ex["id"]]
    starts: dict[str, list[int]] = {}
    ends: dict[str, int] = {}
    for _, name, kind, _attempt, tick in log:
        if kind == "start":
            starts.setdefault(name, []).append(tick)
        else:
            ends[name] = max(ends.get(name, -1), tick)

    assert done["status"] in ("completed", "failed")
    by_name = {t["name"]: t for t in done["tasks"]}
    assert all(t["status"] in ("completed", "failed", "skipped") for t in by_name.values())
    for name, ticks in starts.items():
        assert len(ticks) <= specs[name]["retries"] + 1
        assert len(ticks) == by_name[name]["attempts"]
        for dep in specs[name]["dependencies"]:
            # a dependency either never ran (skipped) or ended before this task started
            assert dep not in starts or ends[dep] < min(ticks)
            assert by_name[dep]["status"] in ("completed", "failed", "skipped")
    any_failed = any(t["status"] == "failed" for t in by_name.values())
    assert done["status"] == ("failed" if any_failed else "completed")
    # the event log tells the same story, with a gap-free seq
    events = [e.to_json() for e in store.events(0, limit=100_000)]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == f"execution_{done['status']}"
    started = [e["task"] for e in events if e["event"] == "task_started"]
    assert sorted(started) == sorted(n for n, ticks in starts.items() for _ in ticks)
