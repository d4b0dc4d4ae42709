"""The Python API against a real engine, store and thread executor (no mocks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from pytaskflow_jupyter import Run, Workflow
from pytaskflow_jupyter.errors import Conflict, InvalidInput, NotFound, ValidationError
from pytaskflow_jupyter.kernel.session import get_session
from pytaskflow_jupyter.model import TaskRun
from pytaskflow_jupyter.store import Store
from pytaskflow_jupyter.transitions import Changes
from pytaskflow_jupyter.validation import parse_workflow

from ..unit.helpers import stored_execution, stored_executions


def statuses(run: Run) -> dict[str, str]:
    return run.tasks


def test_decorators_build_the_post_body_and_register_it(session):
    wf = Workflow("Sales ETL", tags=["etl"], max_parallel=4)

    @wf.task
    def extract():
        return 1

    @wf.task(depends_on=extract, retries=2, retry_delay=0, timeout=30, kwargs={"scale": 3})
    def transform(extract, scale):
        return extract * scale

    @wf.branch(depends_on=transform)
    def route(transform):
        return "publish"

    wf.task(name="publish", depends_on=route)(lambda: None)
    wf.add("archive", depends_on="route", params={"code": "result = 'kept'"})

    assert wf.id == "sales_etl"
    assert wf.tasks == ["extract", "transform", "route", "publish", "archive"]
    body = wf.definition
    assert body["tags"] == ["etl"] and body["max_parallel"] == 4
    assert body["tasks"][1] == {
        "name": "transform",
        "type": "python",
        "dependencies": ["extract"],
        "retries": 2,
        "retry_delay": 0,
        "timeout": 30,
        "params": {"callable": "sales_etl.transform", "kwargs": {"scale": 3}},
    }
    assert body["tasks"][2]["type"] == "branch"
    assert body["tasks"][4] == {
        "name": "archive",
        "type": "python",
        "dependencies": ["route"],
        "params": {"code": "result = 'kept'"},
    }
    saved = wf.register()
    assert saved["revision"] == 1
    assert [w["id"] for w in session.runner().list_workflows()] == ["sales_etl"]
    assert wf.register()["revision"] == 1  # unchanged definition, same revision


def test_results_flow_downstream_by_name_upstream_params_and_context(session):
    wf = Workflow("flow")

    @wf.task
    def numbers():
        return [1, 2, 3]

    @wf.task(depends_on=numbers)
    def total(numbers, factor=1):
        return sum(numbers) * factor

    @wf.task(depends_on=[numbers, total])
    def report(upstream, context):
        return {"seen": sorted(upstream), "task": context["task"], "total": upstream["total"]}

    run = wf.run(params={"factor": 10}).wait(30)
    assert run.status == "completed"
    assert run.results == {
        "numbers": [1, 2, 3],
        "total": 60,
        "report": {"seen": ["numbers", "total"], "task": "report", "total": 60},
    }
    stored = run.execution
    assert stored["params"] == {"factor": 10}
    assert [t["result"] for t in stored["tasks"]] == [[1, 2, 3], 60, run.results["report"]]


def test_branch_skips_the_tasks_it_did_not_select(session):
    wf = Workflow("branchy")

    @wf.task
    def size():
        return 5

    @wf.branch(depends_on=size)
    def route(size):
        return "small" if size < 10 else "large"

    @wf.task(depends_on=route)
    def small():
        return "s"

    @wf.task(depends_on=route)
    def large():
        return "l"

    @wf.task(depends_on=[small, large])
    def join(upstream):
        return upstream["small"]

    run = wf.run(wait=True, timeout=30)
    assert statuses(run) == {
        "size": "completed",
        "route": "completed",
        "small": "completed",
        "large": "skipped",
        "join": "completed",
    }
    assert {t["name"]: t["reason"] for t in run.execution["tasks"]}["large"] == "not_selected"
    assert run.results["join"] == "s"


def test_retry_reuses_completed_results_and_runs_edited_code(session):
    calls = []
    broken = {"on": True}
    wf = Workflow("resume")

    @wf.task
    def extract():
        calls.append("extract")
        return [3, 4]

    @wf.task(depends_on=extract)
    def load(extract):
        calls.append("load")
        if broken["on"]:
            raise ValueError("database is down")
        return len(extract)

    first = wf.run(wait=True, timeout=30)
    assert first.status == "failed"
    assert first.errors == {"load": "ValueError: database is down"}

    broken["on"] = False
    second = first.retry(wait=True, timeout=30)
    assert second.id != first.id
    assert second.status == "completed"
    assert second.execution["parentId"] == first.id
    assert second.results == {"extract": [3, 4], "load": 2}
    assert calls == ["extract", "load", "load"]  # extract was not run again


def test_retry_with_rerun_runs_the_named_task_and_its_downstream(session):
    calls = []
    wf = Workflow("rerun")

    @wf.task
    def a():
        calls.append("a")
        return 1

    @wf.task(depends_on=a)
    def b(a):
        calls.append("b")
        return a + 1

    @wf.task(depends_on=b)
    def c(b):
        calls.append("c")
        return b + 1

    @wf.task(depends_on=a)
    def d(a):
        calls.append("d")
        return a * 10

    first = wf.run(wait=True, timeout=30)
    calls.clear()
    again = first.retry(rerun=["b"], wait=True, timeout=30)
    assert again.status == "completed"
    assert sorted(calls) == ["b", "c"]
    assert again.results == {"a": 1, "b": 2, "c": 3, "d": 10}
    with pytest.raises(InvalidInput, match="unknown task"):
        first.retry(rerun=["nope"])


def test_run_with_reuse_reruns_only_the_edited_function_and_downstream(session):
    calls = []
    wf = Workflow("edit")

    @wf.task
    def extract():
        calls.append("extract")
        return [1, 2]

    @wf.task(depends_on=extract)
    def transform(extract):
        calls.append("transform")
        return [x * 2 for x in extract]

    @wf.task(depends_on=transform)
    def report(transform):
        calls.append("report")
        return sum(transform)

    @wf.task(depends_on=extract)
    def audit(extract):
        calls.append("audit")
        return len(extract)

    first = wf.run(wait=True, timeout=30)
    assert first.results["report"] == 6

    # the notebook way: edit the cell that defines the function and run it again
    @wf.task(depends_on=extract)
    def transform(extract):
        calls.append("transform v2")
        return [x * 100 for x in extract]

    calls.clear()
    second = wf.run(reuse=first, wait=True, timeout=30)
    assert second.status == "completed"
    assert sorted(calls) == ["report", "transform v2"]
    assert second.results == {"extract": [1, 2], "transform": [100, 200], "report": 300, "audit": 2}
    calls.clear()
    third = wf.run(reuse=second, wait=True, timeout=30)  # nothing changed: all reused
    assert calls == [] and third.results == second.results


def test_non_json_results_stay_python_objects_in_the_kernel(session):
    class Frame:
        def __init__(self, rows):
            self.rows = rows

    broken = {"on": True}
    wf = Workflow("objects")

    @wf.task
    def frame():
        return Frame([1, 2, 3])

    @wf.task(depends_on=frame)
    def count(frame):
        if broken["on"]:
            raise RuntimeError("flaky")
        return len(frame.rows)

    first = wf.run(wait=True, timeout=30)
    stored = {t["name"]: t["result"] for t in first.execution["tasks"]}
    assert stored["frame"]["json"] is False and "Frame" in stored["frame"]["summary"]
    assert isinstance(first.results["frame"], Frame)

    broken["on"] = False
    second = first.retry(wait=True, timeout=30)  # the reused Frame reaches count intact
    assert second.status == "completed"
    assert second.results["count"] == 3
    assert isinstance(second.results["frame"], Frame)


def test_a_missing_notebook_function_fails_its_task_with_a_clear_error(session):
    wf = Workflow("missing")
    wf.add("ghost", params={"callable": "no_such_function_here"})
    run = wf.run(wait=True, timeout=30)
    assert run.status == "failed"
    assert "notebook function 'no_such_function_here' is not defined" in run.errors["ghost"]


def test_cancel_stops_a_running_execution(session, gate):
    wf = Workflow("cancel me")
    wf.task(name="hold")(gate)
    wf.task(name="after", depends_on="hold")(lambda hold: hold)
    run = wf.run()
    assert gate.entered.wait(30)
    run.cancel()
    run.wait(30)
    assert run.status == "cancelled"
    assert statuses(run) == {"hold": "cancelled", "after": "cancelled"}
    with pytest.raises(Conflict):
        run.cancel()


def test_wait_with_a_timeout_returns_while_running(session, gate):
    wf = Workflow("slow")
    wf.task(name="hold")(gate)
    run = wf.run()
    assert gate.entered.wait(30)
    assert run.wait(timeout=0.05).status == "running"
    assert not run.done
    with pytest.raises(Conflict, match="still running"):
        run.retry()
    gate.open()
    assert run.wait(30).status == "completed"


def test_runs_are_visible_to_every_reader_of_the_database(session, db_path):
    wf = Workflow("shared")
    wf.task(name="one")(lambda: 1)
    run = wf.run(wait=True, timeout=30)
    other = Store(db_path)  # what the Jupyter server reads
    try:
        page = stored_executions(other, "shared")
        assert [e["id"] for e in page] == [run.id]
        assert stored_execution(other, run.id, detail=True)["tasks"][0]["result"] == 1
        kinds = [e.event for e in other.events(0, execution=run.id)]
        assert kinds == [
            "execution_started",
            "task_started",
            "task_completed",
            "execution_completed",
        ]
    finally:
        other.close()
    assert [r.id for r in wf.runs()] == [run.id]
    assert Run.last("shared").id == run.id


def test_bad_use_raises_our_errors(session):
    wf = Workflow("bad")
    with pytest.raises(InvalidInput, match="needs a name"):
        wf.task(lambda: 1)
    wf.task(name="a", depends_on="missing")(lambda: 1)
    with pytest.raises(ValidationError, match="unknown"):
        wf.run()
    with pytest.raises(NotFound):
        Run("exec_0000")
    ok = Workflow("exec")
    ok.task(name="t")(lambda: 1)
    with pytest.raises(InvalidInput, match="unknown executor"):
        ok.run(executor="warp-drive")


def test_process_executor_runs_decorated_functions_and_retries_there(session, shell):
    """``wf.run(executor="process")`` with functions defined in the notebook namespace."""
    shell.run_cell(
        "import os\n"
        "from pytaskflow_jupyter import Workflow\n"
        "procs = Workflow('in processes')\n"
        "@procs.task\n"
        "def first():\n"
        "    return os.getpid()\n"
        "@procs.task(depends_on=first)\n"
        "def second(first, bad=False):\n"
        "    if bad:\n"
        "        raise RuntimeError('asked to fail')\n"
        "    return {'first': first, 'second': os.getpid()}\n"
    )
    wf = shell.user_ns["procs"]
    failed = wf.run(params={"bad": True}, executor="process", wait=True, timeout=120)
    assert failed.status == "failed"
    assert failed.errors == {"second": "RuntimeError: asked to fail"}
    assert failed.results["first"] != os.getpid()
    fixed = failed.retry(wait=True, timeout=120)  # same executor kind, params kept
    assert fixed.status == "failed"  # the params still say bad=True
    ok = wf.run(executor="process", reuse=failed, wait=True, timeout=120)
    assert ok.status == "completed"
    assert ok.results["second"]["first"] == failed.results["first"]  # reused
    assert ok.results["second"]["second"] != os.getpid()


def test_a_new_kernel_session_marks_executions_of_dead_kernels_lost(db_path):
    """Executions a dead kernel was running are failed with reason owner_lost."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    store = Store(db_path)
    try:
        store.save_workflow(parse_workflow({"name": "orphan", "tasks": [{"name": "a"}]}))
        owner = f"{socket.gethostname()}:{dead.stdout.strip()}:x:kernel"
        execution, _ = store.create_execution("exec_orphan", "orphan", 1, owner=owner)
        store.commit(
            execution["id"],
            Changes(execution={"status": "running"}, tasks=[TaskRun("a", "running", 1)]),
        )
    finally:
        store.close()
    get_session().runner()  # the first use in a new kernel
    lost = Run("exec_orphan")
    assert lost.status == "failed"
    assert lost.execution["reason"] == "owner_lost"
    assert lost.errors == {"a": "the process that ran this execution stopped"}
    assert lost.retry(wait=True, timeout=30).status == "completed"


# -- issue 15, item 14: a parameter nothing fills is refused when the workflow is defined ----
def test_a_parameter_nothing_fills_is_refused_before_anything_runs(session):
    wf = Workflow("unfilled")

    @wf.task
    def load():
        return 1

    @wf.task(depends_on=load)
    def scale(load, factor):  # factor: no dependency, kwarg, parameter, nor default
        return load * factor

    with pytest.raises(InvalidInput) as info:
        wf.run()
    message = str(info.value)
    assert info.value.code == "unfilled_parameter"
    assert "task 'scale': scale() needs 'factor'" in message
    assert "(dependencies: load)" in message
    assert "Workflow(..., parameters={'factor': ...})" in message
    assert session.store.list_executions(workflow_id="unfilled")[0] == []  # nothing ran
    with pytest.raises(InvalidInput):
        wf.register()
    # an execution parameter fills it
    assert wf.run({"factor": 3}, wait=True, timeout=30).results == {"load": 1, "scale": 3}


def test_declared_parameters_let_the_decorator_refuse_at_once(session):
    wf = Workflow("declared", parameters={"factor": 2})

    @wf.task
    def fine(factor, upstream, context, extra=None):
        return factor

    with pytest.raises(InvalidInput, match="needs 'fctor'"):

        @wf.task
        def typo(fctor):
            return fctor

    assert wf.tasks == ["fine"]  # the refused task is not kept

    with pytest.raises(InvalidInput, match="positional-only"):

        @wf.task
        def positional(factor, /):
            return factor

    @wf.task(kwargs={"n": 1})
    def by_kwarg(n):
        return n

    assert wf.run(wait=True, timeout=30).results == {"fine": 2, "by_kwarg": 1}


def test_mapped_notebook_functions_and_notebooks(session, tmp_path, monkeypatch):
    """``@wf.task(map_over=...)``: the function gets ``item`` (and ``map_index``), its
    result is the list; ``wf.notebook(..., map_over=...)`` runs the notebook once per
    item with ``item`` injected, each instance's executed copy saved apart."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    monkeypatch.chdir(tmp_path)
    params = new_code_cell("item = None\nmap_index = None")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[params, new_code_cell("result = f'{map_index}:{item * 3}'")])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, tmp_path / "each.ipynb")

    wf = Workflow("mapped funcs")

    @wf.task
    def sizes():
        return [3, 1, 2]

    @wf.task(map_over=sizes)
    def grow(item, map_index):
        print("growing", item)  # noqa: T201  (the instance's logs)
        return [map_index] * item

    @wf.task(depends_on=grow)
    def total(grow):
        return sum(len(g) for g in grow)

    wf.notebook("per_item", "each.ipynb", map_over="sizes")
    assert wf.definition["tasks"][1]["map_over"] == "sizes"
    assert wf.definition["tasks"][3]["dependencies"] == ["sizes"]  # map_over is a dependency

    run = wf.run(wait=True, timeout=120)
    assert run.status == "completed", run.errors
    assert run.results["grow"] == [[0, 0, 0], [1], [2, 2]]
    assert run.results["total"] == 6
    assert run.results["per_item"] == ["0:9", "1:3", "2:6"]
    assert [i["mapIndex"] for i in run.instances("grow")] == [0, 1, 2]
    assert run.logs("grow", 2)[0]["stdout"] == "growing 2\n"
    outputs = [i["output"] for i in run.instances("per_item")]
    assert len(set(outputs)) == 3  # a copy per instance, none overwritten
    assert all(out.startswith(f".taskflow/runs/{run.id}/per_item") for out in outputs)
    for i, out in enumerate(outputs):
        saved = nbformat.read(tmp_path / out, as_version=4)
        assert f"item = {[3, 1, 2][i]}" in saved.cells[1].source  # the injected parameters


def test_a_mapped_function_parameter_nothing_fills_is_refused(session):
    wf = Workflow("mapped unfilled")

    @wf.task
    def sizes():
        return [1]

    with pytest.raises(InvalidInput, match="needs 'size'"):

        @wf.task(map_over=sizes)
        def grow(size):  # neither item, map_index nor a dependency
            return size

        wf.run(wait=True, timeout=30)


def test_run_compare_puts_two_runs_side_by_side(session, tmp_path, monkeypatch):
    marker = tmp_path / "fixed"
    wf = Workflow("compared")

    @wf.task
    def extract():
        return 3

    @wf.task(depends_on=extract)
    def load(extract):
        if not marker.exists():
            raise ValueError("not yet")
        return extract * 2

    failed = wf.run(wait=True, timeout=30)
    marker.write_text("ok")
    fixed = failed.retry(wait=True, timeout=30)
    table = Run.compare(failed, fixed.id)
    import pandas as pd

    assert isinstance(table, pd.DataFrame)
    assert table.loc[("task", "load", "status"), "a"] == "failed"
    assert table.loc[("task", "load", "status"), "b"] == "completed"
    assert bool(table.loc[("task", "load", "result"), "differs"]) is True
    assert bool(table.loc[("task", "extract", "result"), "differs"]) is False
    assert sorted(table[table["differs"]].index.get_level_values("name").unique()) == ["load"]
    monkeypatch.setitem(sys.modules, "pandas", None)  # without pandas: the rows themselves
    rows = Run.compare(failed, fixed)
    assert {"what": "task", "name": "load", "field": "status", "a": "failed",
            "b": "completed", "differs": True} in rows  # fmt: skip
