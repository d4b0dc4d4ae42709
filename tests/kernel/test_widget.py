"""The execution widget's Python model: its synced traits through real runs (failure,
retry, skipped branch, cancel), live following in this kernel and in another process,
throttled pushes, and the text fallback. What it draws is the labextension's (the
panel's) view: tests/browser/test_lab_widget.py."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import textwrap
import time

from pytaskflow_jupyter import ExecutionWidget, Run, Workflow
from pytaskflow_jupyter.kernel import widgets
from pytaskflow_jupyter.kernel.widgets import counts_text, mapped_text, render_text
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.store import Store

from .conftest import REPO, child_env, wait_until


def by_name(widget: ExecutionWidget) -> dict[str, dict]:
    return {t["name"]: t for t in widget.tasks}


def deps(widget: ExecutionWidget) -> dict[str, list[str]]:
    return {t["name"]: t["dependencies"] for t in widget.definition["tasks"]}


def pipeline(broken: dict) -> Workflow:
    wf = Workflow("widget etl")

    @wf.task
    def extract():
        return [5, 7]

    attempts = {"n": 0}

    @wf.task(depends_on=extract, retries=1, retry_delay=0)
    def flaky(extract):
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ConnectionError("first attempt always fails")
        return sum(extract)

    @wf.branch(depends_on=flaky)
    def route(flaky):
        return "big" if flaky > 10 else "small"

    @wf.task(depends_on=route)
    def big(route):
        return f"big ({route})"

    @wf.task(depends_on=route)
    def small(route):
        return f"small ({route})"

    @wf.task(depends_on=[big, small])
    def load(upstream):
        if broken["on"]:
            raise ValueError("warehouse <offline> & unreachable")
        return upstream["big"]

    return wf


def test_widget_through_a_failure_a_retry_and_a_skipped_branch(session):
    broken = {"on": True}
    run = pipeline(broken).run()
    widget = run.widget()
    assert widget.wait(30), "the widget never saw the end of the execution"
    assert not widget.following
    assert (widget.execution_id, widget.workflow, widget.status) == (run.id, "widget_etl", "failed")
    assert widget.execution["id"] == run.id and widget.execution["status"] == "failed"
    tasks = by_name(widget)
    assert {n: t["status"] for n, t in tasks.items()} == {
        "extract": "completed",
        "flaky": "completed",
        "route": "completed",
        "big": "completed",
        "small": "skipped",
        "load": "failed",
    }
    assert tasks["flaky"]["attempts"] == 2
    assert tasks["small"]["reason"] == "not_selected"
    assert tasks["load"]["error"] == "ValueError: warehouse <offline> & unreachable"
    assert "Traceback" in tasks["load"]["traceback"]
    assert deps(widget)["load"] == ["big", "small"]
    assert widget.definition["name"] == "widget etl"
    assert widget.definition["revision"] == widget.execution["revision"]
    assert widget.elapsed > 0
    assert counts_text(widget.tasks) == "4/6 completed \u00b7 1 skipped \u00b7 1 failed"

    broken["on"] = False
    again = run.retry()
    retried = again.widget()
    assert retried.wait(30)
    assert (retried.status, retried.parent_id) == ("completed", run.id)
    tasks = by_name(retried)
    assert {n: t["status"] for n, t in tasks.items()} == {
        "extract": "completed",
        "flaky": "completed",
        "route": "completed",
        "big": "completed",
        "small": "skipped",
        "load": "completed",
    }
    assert tasks["flaky"]["attempts"] == 2  # reused, not run again
    assert tasks["load"]["error"] is None
    assert retried.execution["parentId"] == run.id


def test_widget_is_live_while_the_execution_runs(session, gate):
    wf = Workflow("live")
    wf.task(name="first")(lambda: 1)
    wf.task(name="hold", depends_on="first")(gate)
    wf.task(name="last", depends_on="hold")(lambda hold: hold)
    run = wf.run()
    widget = ExecutionWidget(run.id)
    seen = []
    widget.observe(lambda change: seen.append(change["new"]), names="status")
    assert gate.entered.wait(30)
    wait_until(lambda: by_name(widget)["hold"]["status"] == "running")
    assert widget.status == "running" and widget.following
    assert by_name(widget)["first"]["status"] == "completed"
    assert by_name(widget)["last"]["status"] == "pending"
    assert widget.execution["status"] == "running"
    assert by_name(widget)["hold"]["startTime"]  # the view ticks its elapsed time
    gate.open()
    assert widget.wait(30)
    assert widget.status == "completed"
    assert by_name(widget)["last"]["status"] == "completed"
    assert seen[-1] == "completed"


def test_a_retrying_task_is_shown_as_retrying(session, gate):
    wf = Workflow("retrying")
    calls = {"n": 0}

    @wf.task(retries=1, retry_delay=0.6)
    def wobbly():
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("upstream slow")
        return gate()

    run = wf.run()
    widget = ExecutionWidget(run.id, min_interval=0.05)
    # between attempts: the panel's `retrying` (counted as running), with the error
    task = wait_until(lambda: (t := by_name(widget)["wobbly"])["status"] == "retrying" and t)
    assert task["error"] == "TimeoutError: upstream slow"
    assert counts_text(widget.tasks) == "0/1 completed \u00b7 1 running"
    assert "\u21bb wobbly" in widget.text()
    assert gate.entered.wait(30)
    task = wait_until(lambda: (t := by_name(widget)["wobbly"])["attempts"] == 2 and t)
    assert task["status"] == "running" and task["error"] is None  # as the panel's model
    gate.open()
    assert widget.wait(30)
    assert by_name(widget)["wobbly"]["status"] == "completed"


def test_cancelled_execution(session, gate):
    wf = Workflow("to cancel")
    wf.task(name="hold")(gate)
    wf.task(name="never", depends_on="hold")(lambda: 0)
    run = wf.run()
    widget = run.widget()
    assert gate.entered.wait(30)
    run.cancel()
    assert widget.wait(30)
    assert widget.status == "cancelled"
    assert {n: t["status"] for n, t in by_name(widget).items()} == {
        "hold": "cancelled",
        "never": "cancelled",
    }


def test_widget_is_redrawn_from_the_database(session, db_path):
    wf = Workflow("redraw")
    wf.task(name="a")(lambda: 1)
    wf.task(name="b", depends_on="a")(lambda a: a + 1)
    run = wf.run(wait=True, timeout=30)
    first = run.widget()
    assert first.wait(30)
    # another store on the file, as after a kernel restart
    store = Store(db_path)
    try:
        later = ExecutionWidget(run.id, store=store)
        assert not later.following
        assert later.status == "completed" and later.tasks == first.tasks
        assert later.execution == first.execution and later.definition == first.definition
    finally:
        store.close()
    first.close()
    assert run.widget() is not first  # a closed widget is replaced


SERVER = textwrap.dedent("""
    import sys, time
    from pytaskflow_jupyter.executors import ThreadExecutor
    from pytaskflow_jupyter.runner import Runner
    from pytaskflow_jupyter.store import Store

    runner = Runner(Store(sys.argv[1]), ThreadExecutor(2))
    while not runner.adopt_submitted():
        time.sleep(0.05)
    for execution_id in runner.active():
        runner.wait(execution_id, timeout=60)
    runner.close()
""")


def test_widget_follows_an_execution_run_by_another_process(session, db_path, tmp_path):
    definition = {
        "name": "elsewhere",
        "tasks": [
            {"name": "produce", "params": {"code": "result = 21"}},
            {
                "name": "double",
                "dependencies": ["produce"],
                "params": {"code": "result = upstream['produce'] * 2"},
            },
        ],
    }
    runner = session.runner()
    runner.register(definition)
    execution = runner.enqueue("elsewhere")  # what %taskflow submit does
    widget = ExecutionWidget(execution["id"])
    assert widget.following and widget.status == "pending"
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    done = subprocess.run(
        [sys.executable, str(script), str(db_path)],
        env=child_env(),
        timeout=120,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert widget.wait(30)
    assert widget.status == "completed"
    assert [t["status"] for t in widget.tasks] == ["completed", "completed"]


def test_text_fallback_without_a_widget_frontend(session):
    wf = Workflow("texty")
    wf.task(name="ok")(lambda: 1)

    @wf.task(depends_on="ok")
    def bad(ok):
        raise KeyError("column 'price'")

    wf.task(name="after", depends_on="bad")(lambda: 0)
    run = wf.run(wait=True, timeout=30)
    bundle = run._repr_mimebundle_()
    assert list(bundle) == ["text/plain"]  # no kernel here, so no widget
    lines = bundle["text/plain"].splitlines()
    assert lines[0].startswith(f"texty  {run.id}  failed")
    assert lines[0].endswith("1/3 completed \u00b7 1 skipped \u00b7 1 failed")  # the panel's
    assert re.match(r"\s+\u2714 ok\s+completed", lines[1])
    assert re.match(r"\s+\u2718 bad\s+failed .*KeyError: \"column 'price'\"", lines[2])
    assert re.match(r"\s+\u21b7 after\s+skipped\s+\(upstream_failed\)", lines[3])
    widget = run.widget()
    assert widget.wait(30)
    assert widget._repr_mimebundle_()["text/plain"] == widget.text() == run.text()


def test_render_text_lists_every_task():
    text = render_text(
        {"id": "exec_1", "workflowId": "w", "status": "running"},
        [
            {"name": "a", "status": "running", "attempts": 1, "duration": None},
            {"name": "b", "status": "pending", "attempts": 1, "retrying": True, "error": "boom"},
        ],
        2.5,
    )
    assert text.splitlines() == [
        "w  exec_1  running  2.50s  0/2 completed \u00b7 2 running",
        "  \u25b6 a  running",
        "  \u21bb b  retrying   boom",
    ]


def test_runner_fixture_executions_show_in_widgets(store, bus, runner: Runner):
    """A widget given another store and bus (the server's) follows that runner."""
    runner.register({"name": "plain", "tasks": [{"name": "x", "params": {"code": "result=1"}}]})
    execution = runner.start("plain")
    widget = ExecutionWidget(execution["id"], store=store, bus=bus)
    assert widget.wait(30)
    assert widget.status == "completed" and widget.tasks[0]["status"] == "completed"


def test_cancel_reaches_an_execution_run_by_another_process(session, db_path, tmp_path):
    flag = tmp_path / "release"
    code = (
        f"import os, time\nwhile not os.path.exists({str(flag)!r}):\n    time.sleep(0.02)\n"
        "result = 'released'"
    )
    runner = session.runner()
    runner.register(
        {
            "name": "remote hold",
            "tasks": [
                {"name": "hold", "params": {"code": code}},
                {"name": "after", "dependencies": ["hold"]},
            ],
        }
    )
    execution = runner.enqueue("remote_hold")
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    server = subprocess.Popen(
        [sys.executable, str(script), str(db_path)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        run = Run(execution["id"])
        widget = run.widget()
        wait_until(lambda: by_name(widget)["hold"]["status"] == "running")
        assert run.cancel().wait(30).status == "cancelled"  # asked through the database
        assert widget.wait(30)
        assert widget.status == "cancelled"
        assert [t["status"] for t in widget.tasks] == ["cancelled", "cancelled"]
    finally:
        flag.write_text("")
        out, _ = server.communicate(timeout=60)
    assert server.returncode == 0, out


def test_an_attempt_left_running_in_its_thread_is_shown_until_it_ends(session):
    """Issue 15, item 11: a timed-out attempt blocked in C (a sleep) runs on in its
    thread; the widget says so after the end of the execution, and stops saying it once
    the code returned."""
    wf = Workflow("left running")

    @wf.task(timeout=0.3)
    def sleeps():
        import time

        time.sleep(2.5)

    run = wf.run()
    widget = run.widget()
    wait_until(lambda: "still running in its thread" in widget.text(), timeout=30)
    assert by_name(widget)["sleeps"]["abandoned"]["attempt"] == 1
    wait_until(lambda: "still running" not in widget.text(), timeout=30)
    assert widget.wait(10)
    assert run.status == "failed"


def mapped_definition(code: str, n: int = 30) -> dict:
    return {
        "name": "mapped",
        "tasks": [
            {"name": "list", "params": {"code": f"result = list(range({n}))"}},
            {
                "name": "work",
                "dependencies": ["list"],
                "map_over": "list",
                "params": {"code": code},
            },
        ],
    }


def test_a_mapped_task_is_one_node_with_its_instances_counts(store, bus, runner: Runner):
    """Instance events move the counts, never the mapped task's own status; the pushed
    task (what the view's node and row draw) and the text show the same counts."""
    runner.register(mapped_definition("assert item % 7, 'multiple of 7'\nresult = item * 2"))
    execution = runner.start("mapped")
    widget = ExecutionWidget(execution["id"], store=store, bus=bus)
    assert widget.wait(30)
    work = by_name(widget)["work"]
    assert work["status"] == "failed"
    assert work["mapped"] == {
        "total": 30,
        "pending": 0,
        "running": 0,
        "completed": 25,
        "failed": 5,
        "cancelled": 0,
    }
    assert "5 of 30 instances failed" in work["error"]
    assert next(t for t in widget.definition["tasks"] if t["name"] == "work")["map_over"] == "list"
    line = next(x for x in widget.text().splitlines() if " work " in x)
    assert "failed" in line and "25/30 completed \u00b7 5 failed" in line, line
    assert by_name(widget)["list"].get("mapped") is None


def test_running_instances_update_the_counts_not_the_status(store, bus, runner: Runner, tmp_path):
    flag = tmp_path / "release"
    code = (
        "import os, time\n"
        f"while item >= 5 and not os.path.exists({str(flag)!r}):\n"
        "    time.sleep(0.02)\n"
        "result = item"
    )
    runner.register(mapped_definition(code, n=10))
    execution = runner.start("mapped")
    widget = ExecutionWidget(execution["id"], store=store, bus=bus, min_interval=0.05)
    try:
        # five instances completed (five task_completed events with a map_index), the
        # others running or waiting for a thread: the task itself still runs
        wait_until(lambda: (by_name(widget)["work"].get("mapped") or {}).get("completed") == 5)
        work = by_name(widget)["work"]
        assert work["status"] == "running", work
        counts = work["mapped"]
        assert counts["total"] == 10 and counts["running"] + counts["pending"] == 5, counts
        assert "5/10 completed" in widget.text()
    finally:
        flag.write_text("go")
    assert widget.wait(30)
    work = by_name(widget)["work"]
    assert work["status"] == "completed" and work["mapped"]["completed"] == 10


def test_mapped_text():
    counts = {"total": 1000, "completed": 742, "failed": 3, "running": 20, "pending": 235}
    assert (
        mapped_text(counts)
        == "742/1000 completed \u00b7 3 failed \u00b7 20 running \u00b7 235 pending"
    )
    assert mapped_text(None, "list") == "waiting for list"
    assert mapped_text({"total": 0}) == "no instances"
    text = render_text(
        {"id": "exec_1", "workflowId": "w", "status": "running"},
        [{"name": "work", "status": "pending", "attempts": 0, "map_over": "list", "mapped": None}],
        1.0,
    )
    assert text.splitlines()[1] == "  \u00b7 work  pending    waiting for list"


def test_counts_text_is_the_panels():
    """labextension/src/model.ts countsText: a skip is not a success, retrying is running."""
    tasks = [
        {"name": str(i), "status": s} for i, s in enumerate(["completed"] * 6 + ["skipped"] * 2)
    ]
    assert counts_text(tasks) == "6/8 completed \u00b7 2 skipped"
    tasks[0] = {"name": "0", "status": "pending", "error": "boom"}  # between attempts
    tasks[1] = {"name": "1", "status": "failed"}
    tasks[2] = {"name": "2", "status": "cancelled"}
    assert counts_text(tasks) == (
        "3/8 completed \u00b7 2 skipped \u00b7 1 failed \u00b7 1 cancelled \u00b7 1 running"
    )
    assert counts_text([]) == "no tasks"


def test_the_front_end_is_the_labextensions_widget_module():
    """The model and view names and the module version the labextension registers."""
    package = json.loads((REPO / "labextension" / "package.json").read_text())
    source = (REPO / "labextension" / "src" / "widget.ts").read_text()
    traits = ExecutionWidget.class_traits()
    assert traits["_model_module"].default_value == package["name"] == widgets.FRONTEND_MODULE
    assert f"WIDGET_MODULE = '{package['name']}'" in source
    assert f"WIDGET_VERSION = '{package['version']}'" in source
    assert f"^{package['version']}" == widgets.FRONTEND_VERSION
    assert traits["_view_name"].default_value == "ExecutionView"
    assert traits["_model_name"].default_value == "ExecutionModel"
    assert "ExecutionView: ExecutionWidgetView" in source and "ExecutionModel" in source
    # ipywidgets' JupyterLab manager resolves the module as a shared singleton
    assert package["jupyterlab"]["sharedPackages"]["@jupyter-widgets/base"] == {
        "bundled": False,
        "singleton": True,
    }
    synced = {name for name, t in traits.items() if t.metadata.get("sync")}
    assert {"execution_id", "execution", "definition"} <= synced
    assert "status" not in synced


def test_the_execution_trait_is_the_rest_detail(session):
    """What the view gets is what the panel reads from GET /executions/{id} (without
    results and history), so both count and draw the same."""
    wf = Workflow("same as rest")
    wf.task(name="a")(lambda: {"rows": list(range(1000))})
    wf.task(name="b", depends_on="a")(lambda a: 1 / 0)
    wf.task(name="c", depends_on="b")(lambda b: b)
    run = wf.run(wait=True, timeout=30)
    widget = run.widget()
    assert widget.wait(30)
    rest = run.execution
    json.dumps(widget.execution)  # it goes over the comm as JSON
    assert {k: v for k, v in rest.items() if k != "tasks"} == {
        k: v for k, v in widget.execution.items() if k != "tasks"
    }
    for mine, theirs in zip(widget.tasks, rest["tasks"], strict=True):
        assert "result" not in mine and "history" not in mine
        assert mine["progress"] is None
        assert {k: v for k, v in mine.items() if k != "progress"} == {
            k: v for k, v in theirs.items() if k not in widgets.HEAVY
        }
    assert counts_text(widget.tasks) == "1/3 completed \u00b7 1 skipped \u00b7 1 failed"


def test_pushes_are_throttled(session):
    """A 40-task chain emits 120 events in about a second: the widget sends at most one
    state per `min_interval` (0.2 s), and the last one is the final state."""
    wf = Workflow("many events")
    previous = None
    for i in range(40):
        name = f"t{i}"
        wf.task(name=name, depends_on=[previous] if previous else None)(
            lambda **_: time.sleep(0.02)
        )
        previous = name
    run = wf.run()
    widget = run.widget()
    sent: list[float] = []
    widget.observe(lambda change: sent.append(time.monotonic()), names="execution")
    started = time.monotonic()
    assert widget.wait(60)
    took = time.monotonic() - started
    assert widget.status == "completed"
    assert [t["status"] for t in widget.tasks] == ["completed"] * 40
    assert 2 <= len(sent) <= took / 0.2 + 2, (len(sent), took)
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.15, gaps
