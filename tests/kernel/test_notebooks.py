"""Notebooks executed by nbclient in a real kernel, sharing a database with this process
(and, in the last test, with a real Jupyter server)."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import nbformat
import pytest
import websocket
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.snapshots import SnapshotResolver
from pytaskflow_jupyter.store import Store

from ..unit.helpers import stored_execution, stored_executions
from .conftest import REPO

pytestmark = pytest.mark.notebook

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    ).execute()
    return nb


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """Every error output and anything written to stderr, with its cell."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                found.append(f"cell {i}: {out['ename']}: {out['evalue']}")
            elif out["output_type"] == "stream" and out["name"] == "stderr":
                found.append(f"cell {i} stderr: {out['text'][:500]}")
    return found


def widget_views(nb: nbformat.NotebookNode) -> int:
    return sum(
        WIDGET_VIEW in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )


def test_the_notebooks_are_found():
    assert {p.name for p in NOTEBOOKS} >= {
        "getting-started.ipynb",
        "etl-example.ipynb",
        "scheduled-example.ipynb",
        "mapped-example.ipynb",
    }


def test_getting_started_runs_clean(kernel_env, tmp_path):
    nb = execute(
        nbformat.read(REPO / "notebooks" / "getting-started.ipynb", as_version=4), tmp_path
    )
    assert problems(nb) == []
    assert widget_views(nb) == 3  # run, failed, fixed
    store = Store(kernel_env)
    try:
        page = stored_executions(store, "getting_started")
        fixed, failed, _ = page
        assert [e["status"] for e in page] == ["completed", "failed", "completed"]
        assert fixed["parentId"] == failed["id"]
        reasons = {t["name"]: (t["status"], t["reason"]) for t in failed["tasks"]}
        assert reasons["check"][0] == "failed"
        assert reasons["report"] == ("skipped", "upstream_failed")
        reused = store.task_runs(fixed["id"])
        assert reused["extract"].start_time == store.task_runs(failed["id"])["extract"].start_time
        hello = stored_executions(store, "hello_magics")
        assert hello[0]["status"] == "completed"
        detail = stored_execution(store, hello[0]["id"], detail=True)
        assert detail["tasks"][1]["result"] == "HELLO NOTEBOOK HELLO NOTEBOOK"
    finally:
        store.close()
    # the saved widget state holds each run's final state, as the execution view reads it
    saved = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    shown = [
        m["state"]["execution"]
        for m in saved.values()
        if m["model_name"] == "ExecutionModel" and m["model_module"] == "pytaskflow-jupyter"
    ]
    assert [e["status"] for e in shown] == ["completed", "failed", "completed"]
    errors = {t["name"]: t["error"] for t in shown[1]["tasks"] if t["error"]}
    assert list(errors) == ["check"] and "ValueError: mean" in errors["check"]


def test_etl_example_runs_clean(kernel_env, tmp_path):
    nb = execute(nbformat.read(REPO / "notebooks" / "etl-example.ipynb", as_version=4), tmp_path)
    assert problems(nb) == []
    store = Store(kernel_env)
    try:
        page = stored_executions(store, "sales_etl")
        assert [e["status"] for e in page] == ["completed"] * 3
        again, strict, clean = page
        skipped = {
            e["id"]: [t["name"] for t in e["tasks"] if t["status"] == "skipped"] for e in page
        }
        assert skipped == {
            clean["id"]: ["quarantine"],
            strict["id"]: ["publish"],
            again["id"]: ["quarantine"],
        }
        assert again["parentId"] == clean["id"]
    finally:
        store.close()
    printed = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "reused: ['extract', 'validate', 'route']" in printed


def test_scheduled_example_runs_clean_and_the_server_side_runs_it_after(
    kernel_env, tmp_path, monkeypatch
):
    """The example schedules and pauses its workflow; once its kernel is gone, a runner
    with only the snapshots (as the server has) runs the latest revision, notebook task
    included, to the results the kernel computed."""
    monkeypatch.delenv("PYTASKFLOW_ROOT_DIR", raising=False)  # its paths: from its folder
    folder = tmp_path / "notebooks"
    for name in ("scheduled-example.ipynb", "pipeline/extract.ipynb"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "notebooks" / name, folder / name)
    nb = execute(nbformat.read(folder / "scheduled-example.ipynb", as_version=4), folder)
    assert problems(nb) == []
    printed = "".join(
        out.get("text", "") + out.get("data", {}).get("text/plain", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )
    assert "At 06:00, Monday through Friday (Europe/Paris); next run 20" in printed
    assert "; paused>" in printed
    assert (
        "function write_log cannot be snapshotted for the server: it uses 'log', an open file"
        in printed
    )
    store = Store(kernel_env)
    runner = Runner(
        store,
        ThreadExecutor(2),
        resolve=SnapshotResolver(store.function_snapshot),
        root_dir=str(folder),
    )
    try:
        [first] = stored_executions(store, "scheduled_example")
        first = stored_execution(store, first["id"], detail=True)
        assert first["status"] == "completed" and first["trigger"] == "notebook"
        workflow = runner.get_workflow("scheduled_example")
        assert workflow["schedule"]["cron"] == "0 6 * * 1-5" and workflow["paused"]
        assert workflow["schedule"]["catchup"] == "latest"
        tasks = {t["name"]: t["params"] for t in workflow["tasks"]}
        assert tasks["summarize"]["snapshot"] and tasks["verdict"]["snapshot"]
        assert "snapshot" not in tasks["extract"]
        # the kernel is gone (nbclient shut it down): the panel's Run button, say
        again = runner.start("scheduled_example", trigger="api")
        assert runner.wait(again["id"], timeout=120)["status"] == "completed"
        again = stored_execution(store, again["id"], detail=True)
        assert [t["result"] for t in again["tasks"]] == [t["result"] for t in first["tasks"]]
        assert again["tasks"][2]["result"] == "5 rows, big batch"
    finally:
        runner.close()
        store.close()


FLOW = [
    "%load_ext pytaskflow_jupyter",
    "def load(n):\n    return list(range(1, n + 1))\n\n"
    "def square(load):\n    return [x * x for x in load]\n\n"
    "def total(upstream, offset=0):\n    return sum(upstream['square']) + offset",
    "%%taskflow\n"
    "name: magic flow\n"
    "tasks:\n"
    "  - {name: load, params: {callable: load, kwargs: {n: 4}}}\n"
    "  - {name: square, dependencies: [load], params: {callable: square}}\n"
    "  - {name: total, dependencies: [square], params: {callable: total}}\n",
    "run = %taskflow run magic_flow --param offset=100 --wait\n"
    "print(run.id, run.status, run.results['total'])",
]


def run_flow(tmp_path: Path) -> tuple[str, nbformat.NotebookNode]:
    nb = execute(
        new_notebook(
            cells=[new_code_cell(c) for c in FLOW],
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
        ),
        tmp_path,
    )
    assert problems(nb) == []
    registered = nb.cells[2].outputs[0]["text"]
    assert registered == "registered workflow 'magic_flow' (revision 1, 3 tasks)\n"
    execution_id, status, value = nb.cells[3].outputs[0]["text"].split()
    assert (status, value) == ("completed", "130")  # 1 + 4 + 9 + 16 + 100
    return execution_id, nb


def test_cell_magic_and_run_wait_in_a_real_kernel(kernel_env, tmp_path):
    execution_id, _ = run_flow(tmp_path)
    store = Store(kernel_env)  # what the server reads
    try:
        assert [w.definition["id"] for w in store.workflows()] == ["magic_flow"]
        detail = stored_execution(store, execution_id, detail=True)
        assert detail["status"] == "completed" and detail["params"] == {"offset": 100}
        assert [t["result"] for t in detail["tasks"]] == [[1, 2, 3, 4], [1, 4, 9, 16], 130]
        events = [e.to_json() for e in store.events(0, execution=execution_id)]
        assert events[0]["event"] == "execution_started"
        assert events[-1]["event"] == "execution_completed"
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    finally:
        store.close()


# -- with a real Jupyter server sharing the database --------------------------------------
def test_server_sharing_the_database_serves_the_kernel_execution(server, kernel_env, tmp_path):
    store = Store(kernel_env)
    since = store.last_seq()  # events after this one are replayed, then streamed live
    store.close()
    conn = websocket.create_connection(
        f"{server['ws']}?workflow=magic_flow&since={since}",
        header=[f"Authorization: token {server['token']}"],
        timeout=60,
    )
    received: list[dict] = []

    def listen() -> None:
        try:
            while not any(e.get("event") == "execution_completed" for e in received):
                received.append(json.loads(conn.recv()))
        except Exception as exc:  # reported by the assertion below
            received.append({"error": repr(exc)})

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    execution_id, _ = run_flow(tmp_path)
    listener.join(90)
    conn.close()
    kinds = [e.get("event") for e in received if e.get("execution_id") == execution_id]
    assert kinds[0] == "execution_started" and kinds[-1] == "execution_completed", received
    assert kinds.count("task_completed") == 3
    listed = server["get"]("executions?workflow_id=magic_flow")
    assert [(e["id"], e["status"]) for e in listed] == [(execution_id, "completed")]
    detail = server["get"](f"executions/{execution_id}")
    assert [t["result"] for t in detail["tasks"]] == [[1, 2, 3, 4], [1, 4, 9, 16], 130]


def test_submit_from_the_notebook_runs_on_the_server(server, shell, session, capsys):
    """``%taskflow submit``: no URL, no token; the server adopts and runs it."""
    shell.run_cell(
        "%%taskflow\nname: on server\ntasks:\n"
        "  - {name: a, params: {code: 'import os; result = os.getpid()'}}\n"
        "  - {name: b, dependencies: [a], params: {code: \"result = upstream['a']\"}}\n"
    )
    run = shell.run_line_magic("taskflow", "submit on_server")
    assert "to the Jupyter server" in capsys.readouterr().out
    widget = run.widget()
    assert run.wait(60).status == "completed", run.errors
    results = run.results
    assert results["a"] == results["b"] != os.getpid()  # it ran in the server, not here
    assert widget.wait(30) and widget.status == "completed"
    listed = server["get"]("executions?workflow_id=on_server")
    assert [(e["id"], e["status"]) for e in listed] == [(run.id, "completed")]


# -- issue 15, item 15: Dask from a real kernel ----------------------------------------------
def test_wf_run_on_dask_in_a_real_kernel(kernel_env, tmp_path):
    """``wf.run(executor="dask")`` in a kernel: a LocalCluster started from the kernel,
    notebook functions (with a notebook global) shipped to its workers by cloudpickle."""
    code = (
        "import os\n"
        "from pytaskflow_jupyter import Workflow\n"
        "wf = Workflow('on dask')\n"
        "K = 5\n"
        "@wf.task\ndef a():\n    return (K, os.getpid())\n"
        "@wf.task(depends_on=a)\ndef b(a):\n    return a[0] * 2\n"
        "run = wf.run(executor='dask', wait=True, timeout=240)\n"
        "print(run.status, run.results['b'], run.results['a'][1] != os.getpid())\n"
    )
    nb = new_notebook(
        cells=[new_code_cell(code)],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    execute(nb, tmp_path)
    texts = [o.get("text", "") for o in nb.cells[0].outputs if o["output_type"] == "stream"]
    assert "completed 10 True\n" in texts, nb.cells[0].outputs
    store = Store(kernel_env)
    try:
        (row,), _ = store.list_executions(workflow_id="on_dask")
        assert row["executor"] == "dask" and row["status"] == "completed"
    finally:
        store.close()


def test_mapped_example_runs_clean(kernel_env, tmp_path):
    nb = execute(nbformat.read(REPO / "notebooks" / "mapped-example.ipynb", as_version=4), tmp_path)
    assert problems(nb) == []
    assert widget_views(nb) == 1
    store = Store(kernel_env)
    try:
        fixed, failed = stored_executions(store, "daily_files")
        assert (failed["status"], fixed["status"]) == ("failed", "completed")
        assert fixed["parentId"] == failed["id"]
        work = fixed["tasks"][1]
        assert work["mapped"]["completed"] == 12
        assert stored_execution(store, fixed["id"], detail=True)["tasks"][2]["result"] == {
            "files": 12,
            "total": 3348.0,
        }
    finally:
        store.close()
    printed = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert "ran again: [7]" in printed
