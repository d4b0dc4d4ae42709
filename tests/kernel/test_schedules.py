"""Schedules from the notebook: the ``%taskflow schedule|pause|resume|schedules`` magics
and ``submit``'s snapshots in a real IPython shell on a real store; and the whole story
with real processes: a kernel schedules a workflow of its own functions and dies, and
the Jupyter server sharing the database runs it on schedule and from the REST API."""

from __future__ import annotations

import os
import time
from datetime import datetime

import pytest
from jupyter_client.manager import start_new_kernel

from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.snapshots import SnapshotResolver
from pytaskflow_jupyter.store import Store

from ..unit.helpers import stored_execution
from .conftest import wait_until

DEMO = """\
name: Sched Demo
tasks:
  - {name: numbers, params: {callable: sched_numbers, kwargs: {n: 3}}}
  - {name: total, dependencies: [numbers], params: {callable: sched_total}}
"""

FUNCTIONS = """\
SCALE = 10

def sched_numbers(n):
    return list(range(1, n + 1))

def sched_total(numbers):
    return sum(numbers) * SCALE
"""


@pytest.fixture
def tf(shell, session, magic):
    """Run a ``%taskflow`` line (or cell) and return (value, stdout, stderr)."""
    assert shell.run_cell(FUNCTIONS).success
    return magic


def snapshots_of(workflow: dict) -> dict[str, str | None]:
    return {t["name"]: t["params"].get("snapshot") for t in workflow["tasks"]}


def test_help_lists_the_schedule_commands(tf):
    _, out, _ = tf("help")
    assert "%taskflow schedule ID (--cron EXPR | --every S) [--timezone TZ]" in out
    for line in ("%taskflow pause ID", "%taskflow resume ID", "%taskflow schedules"):
        assert line in out
    assert "notebook functions run from snapshots" in out


def test_schedule_magic_snapshots_this_kernels_functions(tf, shell, session):
    tf("", DEMO)
    value, out, err = tf("schedule sched_demo --every 90 --param n=4 --catchup latest")
    assert value is None and err == ""
    saved = session.runner().get_workflow("sched_demo")
    assert out == (
        f"scheduled 'sched_demo' (revision 2): {saved['scheduleText']}; "
        f"next run {saved['nextRunTime']}\n"
    )
    assert saved["schedule"] == {
        "cron": None,
        "every": 90,
        "catchup": "latest",
        "params": {"n": 4},
    }
    digests = snapshots_of(saved)
    assert all(digests.values())
    assert session.store.function_snapshot(digests["total"])[0] == "sched_total"
    # scheduling again keeps the definition's snapshots (the kernel's functions are not
    # taken again, even once edited)
    assert shell.run_cell("def sched_total(numbers):\n    return -1\n").success
    tf("schedule sched_demo --cron '30 2 * * 1-5' --timezone Europe/Paris")
    again = session.runner().get_workflow("sched_demo")
    assert snapshots_of(again) == digests
    assert again["schedule"]["cron"] == "30 2 * * 1-5"
    assert again["schedule"]["timezone"] == "Europe/Paris"
    assert again["scheduleText"] and again["scheduleText"] != saved["scheduleText"]


def test_the_server_runs_what_the_schedule_magic_registered(tf, db_path):
    tf("", DEMO)
    tf("schedule sched_demo --every 60 --param n=4")
    shift = 0.0
    store = Store(db_path, clock=lambda: time.time() + shift)
    runner = Runner(store, ThreadExecutor(2), resolve=SnapshotResolver(store.function_snapshot))
    try:
        shift = 61
        [execution_id] = runner.fire_due()
        assert runner.wait(execution_id, timeout=30)["status"] == "completed"
        detail = stored_execution(store, execution_id, detail=True)
        assert [t["result"] for t in detail["tasks"]] == [[1, 2, 3, 4], 100]
        table, _, _ = tf("schedules")
        [row] = table.rows
        assert row[4] == f"{detail['scheduledFor']} completed"
    finally:
        runner.close()
        store.close()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("schedule sched_demo", "one of the arguments --cron --every is required"),
        (
            "schedule sched_demo --every 5 --cron '* * * * *'",
            "argument --cron: not allowed with argument --every",
        ),
        ("schedule sched_demo --cron '61 * * * *'", "schedule.cron: '61 * * * *' is not a valid"),
        ("schedule sched_demo --every 0", "schedule.every"),
        ("schedule sched_demo --every 5 --catchup some", "schedule.catchup"),
        ("schedule no_such --every 5", "unknown workflow 'no_such'"),
        ("pause sched_demo", "workflow 'sched_demo' has no schedule"),
        ("resume no_such", "unknown workflow 'no_such'"),
    ],
)
def test_schedule_errors_print_one_line(tf, session, line, message):
    tf("", DEMO)
    value, out, err = tf(line)
    assert value is None and out == ""
    assert err.startswith("taskflow: error: ") and err.count("\n") == 1
    assert message in err
    assert session.runner().get_workflow("sched_demo")["revision"] == 1


def test_pause_resume_and_the_schedules_table(tf, session):
    value, _, _ = tf("schedules")
    assert repr(value) == "no scheduled workflows" and "<i>" in value._repr_html_()
    tf("", DEMO)
    tf("", "name: Other\ntasks:\n  - {name: a, params: {code: 'result = 1'}}\n")
    tf("", "name: Unscheduled\ntasks:\n  - {name: a, params: {code: 'result = 1'}}\n")
    tf("schedule sched_demo --every 3600")
    tf("schedule other --cron '0 6 * * *' --timezone Europe/Paris")
    _, out, err = tf("pause other")
    assert err == ""
    other = session.runner().get_workflow("other")
    assert out == f"paused the schedule of 'other' ({other['scheduleText']})\n"
    assert other["paused"] and other["nextRunTime"] is None
    table, _, _ = tf("schedules")
    demo = session.runner().get_workflow("sched_demo")
    assert table.columns == ["id", "schedule", "paused", "next run", "last scheduled run"]
    assert table.rows == [  # by id, unscheduled workflows left out
        ["other", other["scheduleText"], "yes", "", ""],
        ["sched_demo", demo["scheduleText"], "no", demo["nextRunTime"], ""],
    ]
    text = repr(table)
    assert text.splitlines()[0].split() == [
        *("id", "schedule", "paused", "next", "run", "last", "scheduled", "run")
    ]
    assert "unscheduled" not in text and demo["scheduleText"] in text
    assert "<table class='taskflow-list'>" in table._repr_html_()
    _, out, _ = tf("schedule other --cron '0 7 * * *'")  # a paused one stays paused
    assert out.endswith("; paused (%taskflow resume to go on)\n")
    other = session.runner().get_workflow("other")
    _, out, _ = tf("resume other")
    other = session.runner().get_workflow("other")
    assert out == (
        f"resumed the schedule of 'other' ({other['scheduleText']}); "
        f"next run {other['nextRunTime']}\n"
    )
    assert not other["paused"] and other["nextRunTime"]


def test_submit_refuses_notebook_functions_it_cannot_snapshot(tf, session):
    tf("", "name: Orphan\ntasks:\n  - {name: lost, params: {callable: defined_nowhere}}\n")
    for line in ("submit orphan", "schedule orphan --every 60"):
        value, out, err = tf(line)
        assert value is None and out == ""
        assert err == (
            "taskflow: error: task 'lost': notebook function 'defined_nowhere' has no "
            "snapshot and is not defined in this kernel, so the server cannot run it; "
            "register the workflow from the notebook that defines it (wf.register() or "
            "wf.submit()), or run the cell that defines it here first\n"
        )
    assert session.runner().list_executions(workflow_id="orphan")[0] == []
    assert session.runner().get_workflow("orphan")["revision"] == 1


def test_submit_keeps_the_snapshots_a_workflow_has(tf, shell, session):
    assert shell.run_cell(
        "from pytaskflow_jupyter import Workflow\n"
        "built = Workflow('built')\n"
        "@built.task\ndef one():\n    return 1\n"
        "built.register()\n"
    ).success
    revision = session.runner().get_workflow("built")["revision"]
    run, out, err = tf("submit built")
    assert err == "" and "snapshotted" not in out
    assert run.execution["revision"] == revision


# -- the kernel is gone, the server runs the schedule -----------------------------------
KERNEL_CODE = """\
import os
from pytaskflow_jupyter import Workflow

OFFSET = 100          # a notebook global

def double(x):        # a helper function of the notebook
    return 2 * x

wf = Workflow("kernel gone")

@wf.task
def numbers(n=3):
    return list(range(1, n + 1))

@wf.task(depends_on=numbers)   # receives numbers' result by parameter name
def total(numbers):
    return sum(double(x) for x in numbers) + OFFSET

state = wf.schedule(every=2, params={"n": 4})
print(state.revision, state.next_run_time, os.getpid())
"""


def _run_in_kernel(code: str) -> str:
    """Start a real kernel, run ``code`` in it, kill the kernel; return what it printed."""
    km, kc = start_new_kernel(kernel_name="python3")
    printed: list[str] = []
    try:
        pid = km.provisioner.process.pid

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                printed.append("\n".join(msg["content"]["traceback"]))

        reply = kc.execute_interactive(code, timeout=120, output_hook=hook)
        assert reply["content"]["status"] == "ok", printed
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)  # killed: no cleanup of its own runs
    wait_until(lambda: not _alive(pid), timeout=30)
    return "".join(printed)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is as good as dead
        return f.read().split(") ")[-1][0] != "Z"


def _when(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _completed(get, execution_id: str) -> dict:
    def done() -> dict | None:
        detail = get(f"executions/{execution_id}")
        return detail if detail["status"] in ("completed", "failed", "cancelled") else None

    detail = wait_until(done, timeout=60, interval=0.1)
    assert detail["status"] == "completed", detail
    return detail


def test_the_server_runs_a_kernels_schedule_after_the_kernel_is_killed(server, kernel_env):
    printed = _run_in_kernel(KERNEL_CODE)
    gone = time.time()
    revision, next_run, kernel_pid = printed.split()
    assert int(kernel_pid) != os.getpid()
    workflow = server["get"]("workflows/kernel_gone")
    assert workflow["revision"] == int(revision)
    assert all(t["params"]["snapshot"].startswith("sha256:") for t in workflow["tasks"])
    assert _when(workflow["nextRunTime"]) >= _when(next_run)

    def scheduled_after_the_kernel() -> list:
        listed = server["get"]("executions?workflow_id=kernel_gone&trigger=schedule")
        return [e for e in listed if e["status"] == "completed" and _when(e["scheduledFor"]) > gone]

    execution = wait_until(scheduled_after_the_kernel, timeout=60, interval=0.1)[-1]
    detail = _completed(server["get"], execution["id"])
    assert detail["trigger"] == "schedule" and detail["params"] == {"n": 4}
    assert [t["result"] for t in detail["tasks"]] == [[1, 2, 3, 4], 120]
    # the panel's Run button: POST /workflows/{id}/executions
    started = server["post"]("workflows/kernel_gone/executions", {"params": {"n": 2}})
    detail = _completed(server["get"], started["id"])
    assert detail["trigger"] == "api" and detail["revision"] == int(revision)
    assert [t["result"] for t in detail["tasks"]] == [[1, 2], 106]
