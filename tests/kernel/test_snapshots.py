"""Snapshots taken by the notebook side (``wf.register()``, ``wf.submit()``,
``wf.schedule()``, ``wf.run()``), in a real IPython shell on a real store, and run by a
server-side runner whose only way to the functions is the snapshots
(``SnapshotResolver``, as the Jupyter server wires it).

The functions are defined in the shell (``__main__``), as in a notebook: cloudpickle
takes them by value there (a function of an importable module would be pickled by
reference)."""

from __future__ import annotations

import hashlib
import re
import time

import pytest

from pytaskflow_jupyter.errors import Conflict, InvalidInput, ValidationError
from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.snapshots import PYTHON, SnapshotResolver
from pytaskflow_jupyter.store import Store

from ..unit.helpers import stored_execution

FLOW = """\
from pytaskflow_jupyter import Workflow

OFFSET = 100

def double(x):
    return 2 * x

flow = Workflow("snap flow")

@flow.task
def numbers(n=3):
    return list(range(1, n + 1))

@flow.task(depends_on=numbers)
def total(numbers):
    return sum(double(x) for x in numbers) + OFFSET
"""


@pytest.fixture
def flow(shell, session):
    """The builder of FLOW, defined in the shell like a notebook does."""
    assert shell.run_cell(FLOW).success
    return shell.user_ns["flow"]


class ServerSide:
    """A runner on its own store as the Jupyter server has one: snapshots only, and a
    clock ``shift`` seconds ahead (to reach a schedule's slot without waiting)."""

    def __init__(self, path) -> None:
        self.shift = 0.0
        self.store = Store(path, clock=lambda: time.time() + self.shift)
        self.runner = Runner(
            self.store,
            ThreadExecutor(2),
            resolve=SnapshotResolver(self.store.function_snapshot),
        )

    def results(self, execution_id: str) -> dict:
        done = self.runner.wait(execution_id, timeout=30)
        assert done["status"] == "completed", done
        detail = stored_execution(self.store, execution_id, detail=True)
        return {t["name"]: t["result"] for t in detail["tasks"]}


@pytest.fixture
def server_side(db_path):
    side = ServerSide(db_path)
    yield side
    side.runner.close()
    side.store.close()


def snapshots_of(workflow: dict) -> dict[str, str]:
    return {t["name"]: t["params"].get("snapshot") for t in workflow["tasks"]}


def test_register_stores_a_snapshot_of_every_notebook_function(flow, session, shell):
    saved = flow.register()
    digests = snapshots_of(saved)
    assert set(digests) == {"numbers", "total"}
    for name, digest in digests.items():
        assert digest.startswith("sha256:")
        stored_name, source, blob, python, _ = session.store.function_snapshot(digest)
        assert digest == "sha256:" + hashlib.sha256(blob).hexdigest()
        assert (stored_name, python) == (name, PYTHON)
        assert f"def {name}(" in source
        assert (
            saved["tasks"][[t["name"] for t in saved["tasks"]].index(name)]["params"]["callable"]
            == f"snap_flow.{name}"
        )
    # the same functions again: the same bytes, so no new revision
    assert flow.register()["revision"] == saved["revision"]
    # an edited function is a new snapshot, so a new revision; the other one is kept
    shell.run_cell(
        "@flow.task(depends_on=numbers)\ndef total(numbers):\n    return sum(numbers) + OFFSET\n"
    )
    again = flow.register()
    assert again["revision"] == saved["revision"] + 1
    now = snapshots_of(again)
    assert now["numbers"] == digests["numbers"] and now["total"] != digests["total"]


def test_the_server_runs_a_submitted_workflow_from_its_snapshots(flow, shell, server_side):
    run = flow.submit(params={"n": 4})
    assert run.status == "pending"
    # the notebook changes the global after submitting: the snapshot kept the old value
    shell.run_cell("OFFSET = 999")
    assert server_side.runner.adopt_submitted() == [run.id]
    assert server_side.results(run.id) == {"numbers": [1, 2, 3, 4], "total": 120}
    assert run.execution["trigger"] == "notebook"


def test_a_schedule_fires_on_the_server_from_the_snapshots(flow, server_side):
    state = flow.schedule(every=60, params={"n": 2})
    assert state.schedule == {"cron": None, "every": 60, "catchup": "none", "params": {"n": 2}}
    assert state.next_run_time and not state.paused
    assert repr(state) == (
        f"<Schedule of 'snap_flow' (revision {state.revision}): {state.text}; "
        f"next run {state.next_run_time}>"
    )
    assert state["nextRunTime"] == state.next_run_time
    assert all(snapshots_of(state.workflow).values())
    server_side.shift = 61  # one slot has fallen
    [execution_id] = server_side.runner.fire_due()
    assert server_side.results(execution_id) == {"numbers": [1, 2], "total": 106}
    row = server_side.store.execution_row(execution_id)
    assert row["trigger"] == "schedule" and row["params"] == {"n": 2}


OPEN_FILE = """\
log_file = open({path!r}, "w")

def write_log():
    log_file.write("ran")
    return "logged"

flow.task(write_log, depends_on="total")
"""

LOCK = """\
import threading

def guarded():
    lock = threading.Lock()

    def count():
        with lock:
            return 1

    return count

flow.task(guarded(), name="count")
"""


@pytest.mark.parametrize(
    ("cell", "function", "obj", "what"),
    [
        (OPEN_FILE, "write_log", "log_file", "an open file (_io.TextIOWrapper)"),
        (LOCK, "guarded.<locals>.count", "lock", "a lock (_thread.lock)"),
    ],
)
def test_a_function_that_cannot_be_snapshotted_is_refused_by_name(
    flow, shell, session, tmp_path, cell, function, obj, what
):
    before = flow.register()
    assert shell.run_cell(cell.format(path=str(tmp_path / "log.txt"))).success
    task = "write_log" if function == "write_log" else "count"
    for call in (flow.register, flow.submit, lambda: flow.schedule(every=60)):
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.code == "not_snapshottable"
        assert caught.value.message == (
            f"task {task!r}: function {function} cannot be snapshotted for the server: it "
            f"uses {obj!r}, {what}, which cannot be pickled; create such objects inside "
            "the function instead"
        )
        assert caught.value.problems[0].path == "tasks[2].params.callable"
    # nothing registered, nothing enqueued, no schedule kept by the builder
    assert session.runner().get_workflow("snap_flow")["revision"] == before["revision"]
    assert session.runner().list_executions(workflow_id="snap_flow")[0] == []
    assert "schedule" not in flow.definition
    # in the kernel it still runs: a kernel-only revision, without snapshots
    run = flow.run(wait=True, timeout=30)
    assert run.status == "completed", run.errors
    assert run.results["total"] == 112
    latest = session.runner().get_workflow("snap_flow")
    assert set(snapshots_of(latest).values()) == {None}
    assert latest["schedule"] is None


def test_a_scheduled_workflow_is_never_registered_without_snapshots(flow, shell, session):
    flow.schedule(every=60)
    assert shell.run_cell(LOCK).success
    with pytest.raises(InvalidInput, match=re.escape("function guarded.<locals>.count cannot be")):
        flow.run()
    latest = session.runner().get_workflow("snap_flow")
    assert latest["schedule"]["every"] == 60
    assert set(snapshots_of(latest)) == {"numbers", "total"}
    assert all(snapshots_of(latest).values())
    # without the schedule the kernel may run it again
    flow.unschedule()
    assert flow.run(wait=True, timeout=30).status == "completed"
    assert session.runner().get_workflow("snap_flow")["schedule"] is None


def test_run_snapshots_what_it_can_and_runs_the_live_functions(flow, shell, session):
    run = flow.run(params={"n": 2}, wait=True, timeout=30)
    assert run.results == {"numbers": [1, 2], "total": 106}
    assert all(snapshots_of(session.runner().get_workflow("snap_flow")).values())
    # a live edit of a global is seen by the kernel at once (a new snapshot too)
    shell.run_cell("OFFSET = 0")
    again = flow.run(params={"n": 2}, wait=True, timeout=30)
    assert again.results["total"] == 6
    assert again.execution["revision"] == run.execution["revision"] + 1


def test_the_builder_keeps_its_schedule_and_respects_a_stored_one(flow, shell, session):
    runner = session.runner()
    flow.schedule(every=30, catchup="latest")
    flow.run(wait=True, timeout=30)
    flow.register()
    assert runner.get_workflow("snap_flow")["schedule"]["every"] == 30
    # a builder that never set a schedule keeps the stored one (from a magic, say)
    shell.run_cell("fresh = Workflow('snap flow')\nfresh.task(numbers)")
    fresh = shell.user_ns["fresh"]
    assert "schedule" not in fresh.definition
    assert fresh.register()["schedule"]["catchup"] == "latest"
    assert fresh.unschedule().schedule is None
    assert repr(fresh.unschedule()).endswith(": none>")
    assert fresh.register()["schedule"] is None  # removed stays removed


def test_schedule_errors_are_the_validation_errors(flow, session):
    with pytest.raises(ValidationError) as caught:
        flow.schedule(cron="61 * * * *")
    assert caught.value.problems[0].path == "schedule.cron"
    with pytest.raises(ValidationError, match="give exactly one of 'cron'"):
        flow.schedule()
    with pytest.raises(ValidationError, match=re.escape("schedule.timezone: 'Mars/Olympus'")):
        flow.schedule(cron="0 3 * * *", timezone="Mars/Olympus")
    assert "schedule" not in flow.definition  # a refused schedule is not kept
    flow.register()
    with pytest.raises(Conflict, match="has no schedule") as no_schedule:
        flow.pause()
    assert no_schedule.value.code == "no_schedule"


def test_pause_and_resume(flow, session):
    flow.schedule(cron="30 2 * * 1-5", timezone="Europe/Paris")
    paused = flow.pause()
    assert paused.paused and paused.next_run_time is None
    assert repr(paused).endswith("; paused>")
    resumed = flow.resume()
    assert not resumed.paused and resumed.next_run_time
    assert resumed.text == session.runner().get_workflow("snap_flow")["scheduleText"]
