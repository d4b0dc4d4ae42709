"""The execution widget: its traits through real runs (failure, retry, skipped branch,
cancel), live following in this kernel and in another process, and its drawing."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from pytaskflow_jupyter import ExecutionWidget, Run, Workflow
from pytaskflow_jupyter.kernel.graph import MAX_NODES, layout, render_svg
from pytaskflow_jupyter.kernel.widgets import render_text
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.store import Store

from .conftest import child_env, wait_until


def by_name(widget: ExecutionWidget) -> dict[str, dict]:
    return {t["name"]: t for t in widget.tasks}


def drawn(html: str, attr: str = "data-task") -> dict[str, str]:
    """``{task: status}`` as drawn in the SVG (``g``) or the table (``tr``)."""
    return dict(re.findall(rf'{attr}="([^"]+)" data-status="([^"]+)"', html))


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
    assert widget.progress.bar_style == "danger"
    assert (widget.progress.value, widget.progress.max) == (6, 6)
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
    assert tasks["load"]["dependencies"] == ["big", "small"]
    assert widget.elapsed > 0
    assert drawn(widget.graph.value) == {n: t["status"] for n, t in tasks.items()}
    assert drawn(widget.table.value) == {n: t["status"] for n, t in tasks.items()}
    assert "warehouse &lt;offline&gt; &amp; unreachable" in widget.table.value
    assert "<offline>" not in widget.table.value + widget.graph.value
    assert 'data-status="failed"' in widget.header.value

    broken["on"] = False
    again = run.retry()
    retried = again.widget()
    assert retried.wait(30)
    assert (retried.status, retried.parent_id) == ("completed", run.id)
    assert retried.progress.bar_style == "success"
    assert retried.progress.value == retried.progress.max == 6
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
    assert f"retry of <code>{run.id}</code>" in retried.header.value
    assert drawn(retried.graph.value)["small"] == "skipped"


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
    assert widget.progress.value == 1 and widget.progress.bar_style == "info"
    assert drawn(widget.graph.value)["hold"] == "running"
    gate.open()
    assert widget.wait(30)
    assert widget.status == "completed"
    assert by_name(widget)["last"]["status"] == "completed"
    assert seen[-1] == "completed"


def test_a_retrying_task_is_shown_as_retrying(session, gate):
    wf = Workflow("retrying")
    calls = {"n": 0}

    @wf.task(retries=1, retry_delay=0)
    def wobbly():
        calls["n"] += 1
        if calls["n"] == 1:
            raise TimeoutError("upstream slow")
        return gate()

    run = wf.run()
    widget = run.widget()
    assert gate.entered.wait(30)
    task = wait_until(lambda: (t := by_name(widget)["wobbly"])["attempts"] == 2 and t)
    assert task["status"] == "running" and task["error"] == "TimeoutError: upstream slow"
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
    assert widget.progress.bar_style == "warning"
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
        assert later.graph.value == first.graph.value
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
    assert widget.progress.value == 2


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
    assert lines[0].endswith("3/3 tasks")
    assert re.match(r"\s+\u2714 ok\s+completed", lines[1])
    assert re.match(r"\s+\u2718 bad\s+failed .*KeyError: \"column 'price'\"", lines[2])
    assert re.match(r"\s+\u21b7 after\s+skipped\s+\(upstream_failed\)", lines[3])
    widget = run.widget()
    assert widget.wait(30)
    assert widget._repr_mimebundle_()["text/plain"] == widget.text() == run.text()


def test_layout_layers_by_dependency_depth():
    tasks = [("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"]), ("e", []), ("f", ["e", "d"])]
    pos = layout(tasks)
    assert {n: p[0] for n, p in pos.items()} == {"a": 0, "b": 1, "c": 1, "d": 2, "e": 0, "f": 3}
    assert len(set(pos.values())) == len(tasks)  # no two nodes on one spot
    chain = [(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(5000)]
    assert layout(chain)["t4999"] == (4999, 0)  # deep chains need no recursion


def test_layout_orders_a_layer_by_its_parents():
    # x's child is listed first but its parent sits lower: the sweep swaps them
    tasks = [("p", []), ("q", []), ("from_q", ["q"]), ("from_p", ["p"])]
    pos = layout(tasks)
    assert pos["from_p"][1] < pos["from_q"][1]


def test_svg_colours_nodes_and_escapes_names():
    svg = render_svg(
        [("<a>", []), ("b", ["<a>"])],
        {"<a>": {"status": "failed", "error": "x < y"}, "b": {"status": "skipped"}},
    )
    assert drawn(svg) == {"&lt;a&gt;": "failed", "b": "skipped"}
    assert "#cf222e" in svg and "x &lt; y" in svg and "<a>" not in svg
    assert svg.count("marker-end=") == 1  # one edge
    big = render_svg([(f"t{i}", []) for i in range(MAX_NODES + 1)], {})
    assert "graph omitted" in big


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
        "w  exec_1  running  2.50s  0/2 tasks",
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
    assert "attempt 1 given up on" in widget.table.value
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
    """Instance events move the counts, never the mapped task's own status; the node, the
    row and the text all show the same ``done/total`` and counts."""
    runner.register(mapped_definition("assert item % 7, 'multiple of 7'\nresult = item * 2"))
    execution = runner.start("mapped")
    widget = ExecutionWidget(execution["id"], store=store, bus=bus)
    assert widget.wait(30)
    work = by_name(widget)["work"]
    assert work["status"] == "failed" and work["map_over"] == "list"
    assert work["mapped"] == {
        "total": 30,
        "pending": 0,
        "running": 0,
        "completed": 25,
        "failed": 5,
        "cancelled": 0,
    }
    assert "5 of 30 instances failed" in work["error"]
    assert 'data-task="work" data-status="failed" data-mapped="25/30"' in widget.graph.value
    segments = dict(re.findall(r'data-segment="(\w+)" data-count="(\d+)"', widget.graph.value))
    assert segments == {"completed": "25", "failed": "5"}
    assert "25/30 completed \u00b7 5 failed" in widget.table.value
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
        assert 'data-mapped="5/10"' in widget.graph.value
        assert "5/10 completed" in widget.text()
    finally:
        flag.write_text("go")
    assert widget.wait(30)
    work = by_name(widget)["work"]
    assert work["status"] == "completed" and work["mapped"]["completed"] == 10
    assert 'data-mapped="10/10"' in widget.graph.value


def test_mapped_text_and_histogram():
    from pytaskflow_jupyter.kernel.graph import histogram, mapped_text

    counts = {"total": 1000, "completed": 742, "failed": 3, "running": 20, "pending": 235}
    assert (
        mapped_text(counts)
        == "742/1000 completed \u00b7 3 failed \u00b7 20 running \u00b7 235 pending"
    )
    assert mapped_text(None, "list") == "waiting for list"
    assert mapped_text({"total": 0}) == "no instances"
    segments = histogram({"total": 1000, "completed": 999, "failed": 1}, 116)
    assert [s[0] for s in segments] == ["completed", "failed"]
    assert segments[1][3] >= 2, "one failure in 1000 stays visible"
    assert abs(sum(s[3] for s in segments) - 116) < 1e-9
    assert histogram(None, 116) == []
    text = render_text(
        {"id": "exec_1", "workflowId": "w", "status": "running"},
        [{"name": "work", "status": "pending", "attempts": 0, "map_over": "list", "mapped": None}],
        1.0,
    )
    assert text.splitlines()[1] == "  \u00b7 work  pending    waiting for list"
    svg = render_svg(
        [("list", []), ("work", ["list"])], {"work": {"status": "pending", "map_over": "list"}}
    )
    assert 'data-task="work" data-status="pending" data-mapped="waiting"' in svg
