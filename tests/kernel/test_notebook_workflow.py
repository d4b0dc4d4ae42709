"""``notebooks/notebook-pipeline.ipynb`` executed by nbclient in a real kernel: three
notebook tasks (each in a kernel of its own) and a ``%taskflow run-notebook``, checked
from the database and from the executed copies the tasks saved. Also: the widget of a
running notebook task shows its cells' progress.

The example runs in a copy of ``notebooks/`` in ``tmp_path`` (its working directory, and
so the root of its notebook paths): the executed copies land under ``.taskflow/runs``
there, not in the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from pytaskflow_jupyter import Workflow
from pytaskflow_jupyter.store import Store
from pytaskflow_jupyter.validation import derive_id

from ..unit.helpers import stored_execution, stored_executions
from .conftest import REPO, child_env, wait_until
from .test_notebooks import execute, problems

pytestmark = pytest.mark.notebook

EXAMPLE = "notebook-pipeline.ipynb"
SOURCES = [EXAMPLE, "pipeline/extract.ipynb", "pipeline/transform.ipynb", "pipeline/report.ipynb"]
DEFAULTS = {"rows": 10, "threshold": 2000.0, "title": "Sales report"}


@pytest.fixture
def kernel_env(db_path, monkeypatch):
    """The kernels inherit this: the test's database, this package, and no server root
    (a server started earlier in this process exports its own)."""
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    monkeypatch.delenv("PYTASKFLOW_ROOT_DIR", raising=False)
    return db_path


@pytest.fixture
def folder(tmp_path) -> Path:
    """A copy of the example and its three notebooks."""
    here = tmp_path / "notebooks"
    for name in SOURCES:
        (here / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / "notebooks" / name, here / name)
    return here


def injected(saved: nbformat.NotebookNode) -> dict:
    """What the cell right after the ``parameters`` cell assigns (it must be the injected
    one), evaluated."""
    tags = [cell.metadata.get("tags", []) for cell in saved.cells]
    index = next(i for i, t in enumerate(tags) if "parameters" in t)
    assert "injected-parameters" in tags[index + 1], tags
    namespace: dict = {}
    exec(saved.cells[index + 1].source, namespace)
    return {k: v for k, v in namespace.items() if k != "__builtins__"}


def check_run(execution: dict, folder: Path, params: dict, size: str) -> dict:
    """One execution of the pipeline: every task completed with its result, each result
    handed on as JSON, each executed copy saved with its parameters injected."""
    assert execution["status"] == "completed", execution
    assert execution["params"] == params
    tasks = {t["name"]: t for t in execution["tasks"]}
    assert list(tasks) == ["extract", "transform", "report"]
    assert {t["status"] for t in tasks.values()} == {"completed"}
    results = {name: t["result"] for name, t in tasks.items()}
    extract, transform, report = results.values()
    assert extract["rows"] == params["rows"] == len(extract["amounts"])
    assert transform["total"] == round(sum(extract["amounts"]), 2)
    assert transform["size"] == size
    assert report["size"] == size and report["title"] == params["title"]
    expected = {
        "extract": {"rows": params["rows"], "seed": 7, "upstream": {}},
        "transform": {"threshold": params["threshold"], "upstream": {"extract": extract}},
        "report": {"title": params["title"], "upstream": {"transform": transform}},
    }
    for name, task in tasks.items():
        assert task["output"] == f".taskflow/runs/{execution['id']}/{name}.ipynb"
        saved = nbformat.read(folder / task["output"], as_version=4)
        assert injected(saved) == expected[name]
        assert not problems(saved)
    return results


def test_the_notebook_pipeline_runs_clean(kernel_env, folder):
    before = {name: (folder / name).read_bytes() for name in SOURCES}
    nb = execute(nbformat.read(folder / EXAMPLE, as_version=4), folder)
    assert problems(nb) == []
    assert {name: (folder / name).read_bytes() for name in SOURCES} == before
    store = Store(kernel_env)
    try:
        magic, big, small = (
            stored_execution(store, e["id"], detail=True)
            for e in stored_executions(store, "notebook_pipeline")
        )
        check_run(small, folder, DEFAULTS, "small")
        results = check_run(big, folder, {**DEFAULTS, "rows": 40, "title": "Big batch"}, "big")
        # the same workflow from the magic (%taskflow run ID --param ...)
        check_run(magic, folder, {**DEFAULTS, "rows": 40, "title": "Big batch"}, "big")
        assert results["report"]["text"].startswith("40 rows, total ")
        [one] = stored_executions(store, derive_id("notebook pipeline/extract.ipynb"))
        one = stored_execution(store, one["id"], detail=True)
    finally:
        store.close()
    [task] = one["tasks"]
    assert (one["status"], task["name"], task["status"]) == ("completed", "extract", "completed")
    assert task["result"]["rows"] == 3
    assert task["output"] == f".taskflow/runs/{one['id']}/extract.ipynb"
    assert injected(nbformat.read(folder / task["output"], as_version=4)) == {
        "rows": 3,
        "upstream": {},
    }
    # what the notebook showed: the results, the output paths, the report's line
    shown = [
        out.get("data", {}).get("text/plain", "") for c in nb.cells for out in c.get("outputs", [])
    ]
    assert any(f".taskflow/runs/{small['id']}/report.ipynb" in text for text in shown)
    assert repr(results["report"]["text"]) in shown


def test_the_widget_shows_a_running_notebooks_cells(session, tmp_path, monkeypatch):
    """``task_progress`` events reach the widget's pushed task (the view's bar and
    ``cell k/n``) and the text status while the task runs; gone once it has completed."""
    monkeypatch.setenv("PYTASKFLOW_ROOT_DIR", str(tmp_path))  # the session's root
    gate = tmp_path / "gate"
    nb = new_notebook(
        cells=[
            new_code_cell("import time; time.sleep(0.3)"),  # past the progress throttle
            new_code_cell(
                f"while not __import__('os').path.exists({str(gate)!r}): time.sleep(0.02)"
            ),
            new_code_cell("result = 'done'"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, tmp_path / "slow.ipynb")
    run = Workflow("widget cells").notebook("slow", "slow.ipynb", timeout=120).run()
    widget = run.widget()
    try:
        # the injected cell and the first one have run; the second waits for the gate
        wait_until(lambda: widget.tasks[0]["progress"] == {"done": 2, "total": 4}, timeout=60)
        assert widget.tasks[0]["status"] == "running"
        assert "\u25b6 slow  running    [####....] cell 2/4" in widget.text()
    finally:
        gate.touch()
    assert widget.wait(60) and run.status == "completed", run.errors
    assert run.results == {"slow": "done"}
    assert widget.tasks[0]["progress"] is None and "cell " not in widget.text()
