"""Property test of mapped tasks (hypothesis): random lists and failure sets.

For any list length (0 to 30), retry budget and set of failing items (each failing its
first k attempts), through a ``Runner`` on a real SQLite file and the thread executor:

* every instance starts after its upstream ended (worker-side ticks);
* no instance runs more attempts than its budget (``retries + 1``);
* the mapped task completes exactly when no item fails more often than its budget
  allows, and then its result is the instances' results in index order;
* a ``retry`` of the execution runs again exactly the instances that failed, once each
  (a fresh budget), and reuses the others.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytaskflow_jupyter.events import EventBus
from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.store import Store

from . import sample_tasks

S = "tests.unit.sample_tasks"


@st.composite
def maps(draw):
    n = draw(st.integers(0, 30))
    retries = draw(st.integers(0, 2))
    failing = sorted(draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=6))) if n else []
    fail_attempts = draw(st.integers(1, 3))
    return n, retries, failing, fail_attempts


def _log(execution_id):
    starts: dict[str, list[int]] = {}
    ends: dict[str, int] = {}
    for ex, name, kind, _attempt, tick in list(sample_tasks.LOG):
        if ex != execution_id:
            continue
        if kind == "start":
            starts.setdefault(name, []).append(tick)
        else:
            ends[name] = max(ends.get(name, -1), tick)
    return starts, ends


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=maps())
def test_random_maps(tmp_path_factory, case):
    n, retries, failing, fail_attempts = case
    definition = {
        "name": "prop-map",
        "tasks": [
            {"name": "seed", "params": {"callable": f"{S}:logged_items", "kwargs": {"n": n}}},
            {
                "name": "work",
                "dependencies": ["seed"],
                "map_over": "seed",
                "retries": retries,
                "retry_delay": 0,
                "params": {
                    "callable": f"{S}:mapped_record",
                    "kwargs": {"fail_items": failing, "fail_attempts": fail_attempts},
                },
            },
        ],
    }
    store = Store(tmp_path_factory.mktemp("prop-map") / "t.db")
    executor = ThreadExecutor(3)
    runner = Runner(store, executor, EventBus())
    try:
        first = runner.wait(runner.submit(definition)["id"], 30)
        starts, ends = _log(first["id"])
        seed_end = ends["seed"]
        for i in range(n):
            ticks = starts.get(f"work[{i}]", [])
            assert ticks, f"instance {i} never ran"
            assert min(ticks) > seed_end  # after its upstream ended
            assert len(ticks) <= retries + 1  # within its attempt budget
        assert set(starts) <= {"seed"} | {f"work[{i}]" for i in range(n)}
        work = first["tasks"][1]
        doomed = {i for i in failing if fail_attempts > retries}  # fail every attempt
        if doomed:
            assert work["status"] == "failed"
            failed = runner.instances(first["id"], "work", status="failed", limit=1000)
            assert {i["mapIndex"] for i in failed["instances"]} == doomed
        else:
            assert work["status"] == "completed"
            assert work["result"] == [i * 10 for i in range(n)]
        if first["status"] == "failed":
            second = runner.wait(runner.retry(first["id"])["id"], 30)
            again, _ = _log(second["id"])
            assert set(again) == {f"work[{i}]" for i in doomed}  # exactly the failed ones
            assert all(len(t) <= retries + 1 for t in again.values())
    finally:
        runner.close()
        executor.shutdown()
