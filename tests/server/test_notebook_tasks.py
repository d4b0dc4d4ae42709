"""Notebook tasks (SPEC 9) and workflow parameters (SPEC 10) through a real Jupyter server
whose root holds a copy of ``notebooks/pipeline/``: the three-notebook workflow posted over
REST, a failing cell, a timeout that leaves no kernel behind, a symlink out of the root,
and the parameters route."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .helpers import task, wf

REPO = Path(__file__).resolve().parents[2]
PIPELINE = ("extract", "transform", "report")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    """The server's root, with the example pipeline's notebooks copied in."""
    shutil.copytree(REPO / "notebooks" / "pipeline", jp_root_dir / "pipeline")
    return jp_root_dir


def write_notebook(path: Path, *cells: nbformat.NotebookNode) -> None:
    nbformat.write(new_notebook(cells=list(cells), metadata={"kernelspec": KERNELSPEC}), path)


def notebook_task(name: str, path: str, *deps: str, **extra) -> dict:
    params = {"path": path, **extra.pop("params", {})}
    return task(name, *deps, type="notebook", params=params, **extra)


def pipeline() -> dict:
    return wf(
        "rest pipeline",
        notebook_task("extract", "pipeline/extract.ipynb", params={"parameters": {"seed": 7}}),
        notebook_task("transform", "pipeline/transform.ipynb", "extract"),
        notebook_task("report", "pipeline/report.ipynb", "transform"),
        parameters={"rows": 10, "threshold": 2000.0, "title": "Sales report"},
    )


def outcome(execution: dict) -> dict:
    return {t["name"]: (t["status"], t["error"]) for t in execution["tasks"]}


async def test_the_pipeline_over_rest_with_parameters_and_overrides(api, root):
    first = await api.submit(pipeline())
    assert first["workflowId"] == "rest_pipeline"
    small = await api.wait(first["id"], timeout=60)
    assert outcome(small) == dict.fromkeys(PIPELINE, ("completed", None))
    assert small["params"] == {"rows": 10, "threshold": 2000.0, "title": "Sales report"}
    extract, transform, report = (t["result"] for t in small["tasks"])
    assert extract["rows"] == 10 and transform["rows"] == 10  # handed on through upstream
    assert transform["total"] == round(sum(extract["amounts"]), 2)
    assert (transform["size"], report["size"], report["title"]) == (
        "small",
        "small",
        "Sales report",
    )
    for t in small["tasks"]:
        assert t["output"] == f".taskflow/runs/{small['id']}/{t['name']}.ipynb"
        assert (root / t["output"]).is_file()

    status, second, _ = await api(
        "POST", "workflows", "rest_pipeline", "executions", body={"params": {"rows": 40}}
    )
    assert status == 200, second
    big = await api.wait(second["id"], timeout=60)
    assert outcome(big) == dict.fromkeys(PIPELINE, ("completed", None))
    assert big["params"] == {"rows": 40, "threshold": 2000.0, "title": "Sales report"}
    extract, transform, report = (t["result"] for t in big["tasks"])
    assert len(extract["amounts"]) == 40 and transform["size"] == report["size"] == "big"
    assert report["text"].startswith("40 rows, total ")

    status, body, _ = await api(
        "POST", "workflows", "rest_pipeline", "executions", body={"params": {"rowz": 5}}
    )
    assert status == 400, body
    assert body["code"] == "unknown_parameter"
    [problem] = body["errors"]
    assert problem["path"] == "params.rowz"
    assert "'rowz'" in problem["detail"] and "rows" in problem["detail"]
    _, listed, _ = await api("GET", "executions", params={"workflow_id": "rest_pipeline"})
    assert len(listed) == 2  # the refused trigger created nothing


async def test_a_failing_cell_names_the_cell_and_saves_the_notebook(api, root):
    write_notebook(
        root / "broken.ipynb",
        new_markdown_cell("# Broken"),
        new_code_cell("rows = [1, 2, 3]"),
        new_code_cell("raise ValueError(f'bad row {rows[-1]}')"),
        new_code_cell("result = 'never'"),
    )
    execution = await api.submit(wf("broken nb", notebook_task("broken", "broken.ipynb")))
    done = await api.wait(execution["id"], timeout=60)
    [t] = done["tasks"]
    assert done["status"] == t["status"] == "failed"
    # cell 4 of the saved notebook: the injected cell (at the top: no parameters cell),
    # the markdown cell, then the code cells
    assert t["error"] == "NotebookError: cell 4: ValueError: bad row 3"
    assert "ValueError" in t["traceback"] and "bad row 3" in t["traceback"]
    assert "\x1b" not in t["traceback"]
    assert t["output"] == f".taskflow/runs/{done['id']}/broken.ipynb"
    saved = nbformat.read(root / t["output"], as_version=4)
    assert "injected-parameters" in saved.cells[0].metadata["tags"]
    [error] = [o for o in saved.cells[3].outputs if o["output_type"] == "error"]
    assert error["evalue"] == "bad row 3"
    assert saved.cells[4].get("outputs") == []  # the run stopped at the failing cell


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kernels() -> set[int]:
    """The ipykernel processes below this one (the server's, with either executor)."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if not gone(proc.pid) and "ipykernel_launcher" in " ".join(proc.cmdline()):
                found.add(proc.pid)
        except psutil.Error:
            pass
    return found


async def timeout_leaves_no_kernel(api, root: Path) -> dict:
    """A notebook that sleeps past ``timeout: 3``: the task fails (reason ``timeout``) and
    the kernel, whose pid the notebook wrote first, is gone."""
    pid_file = root / "kernel.pid"
    write_notebook(
        root / "sleepy.ipynb",
        new_code_cell(f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))"),
        new_code_cell("import time\ntime.sleep(600)"),
    )
    definition = wf("sleepy nb", notebook_task("sleepy", "sleepy.ipynb", timeout=3))
    execution = await api.submit(definition)
    done = await api.wait(execution["id"], timeout=60)
    [t] = done["tasks"]
    assert t["status"] == "failed" and t["reason"] == "timeout", t
    assert pid_file.exists(), f"the kernel never ran its first cell within 3 s: {t['error']}"
    pid = int(pid_file.read_text())
    assert pid != os.getpid()
    deadline = time.monotonic() + 10  # the engine may record the timeout before the kill
    while not (gone(pid) and not kernels()) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert gone(pid), psutil.Process(pid).cmdline()
    assert kernels() == set()
    return t


async def test_a_timeout_leaves_no_kernel_process(api, root):
    await timeout_leaves_no_kernel(api, root)


async def test_a_timed_out_notebook_names_its_cell_and_keeps_its_output(api, root):
    write_notebook(root / "slow.ipynb", new_code_cell("import time\ntime.sleep(600)"))
    definition = wf("slow nb", notebook_task("slow", "slow.ipynb", timeout=3))
    done = await api.wait((await api.submit(definition))["id"], timeout=60)
    [t] = done["tasks"]
    assert t["reason"] == "timeout"
    assert "while running cell 2" in t["error"]
    assert t["output"] == f".taskflow/runs/{done['id']}/slow.ipynb"


class TestProcessExecutor:
    @pytest.fixture
    def taskflow_config(self):
        return {"executor": "process", "workers": 1}

    async def test_a_timeout_leaves_no_kernel_process(self, api, root):
        # the worker started and its imports (nbclient, papermill) done before 3 s count
        write_notebook(root / "warm.ipynb", new_code_cell("result = 1"))
        warm = await api.submit(wf("warm up", notebook_task("warm", "warm.ipynb")))
        assert (await api.wait(warm["id"], timeout=60))["status"] == "completed"
        await timeout_leaves_no_kernel(api, root)


async def test_a_symlink_out_of_the_root_is_refused_unread(api, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    fifo = outside / "trap.ipynb"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    (root / "trap.ipynb").symlink_to(fifo)
    opened, releasing = threading.Event(), threading.Event()

    def writer() -> None:  # returns once anyone opens the FIFO for reading
        fd = os.open(fifo, os.O_WRONLY)
        if not releasing.is_set():
            opened.set()
        os.close(fd)

    watcher = threading.Thread(target=writer, daemon=True)
    watcher.start()
    try:
        definition = wf("trap nb", notebook_task("trap", "trap.ipynb", timeout=20))
        done = await api.wait((await api.submit(definition))["id"], timeout=60)
        [t] = done["tasks"]
        assert t["status"] == "failed"
        assert "resolves to a file outside the server's root directory" in t["error"]
        assert t["output"] is None
        status, body, _ = await api(
            "GET", "taskflow", "notebooks", "parameters", params={"path": "trap.ipynb"}
        )
        assert status == 400 and body["code"] == "path_outside_root", body
        assert not opened.is_set()
    finally:
        releasing.set()
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets the writer go
        watcher.join(5)
    assert not opened.is_set()


async def test_the_parameters_route(api, root):
    status, body, _ = await api(
        "GET", "taskflow", "notebooks", "parameters", params={"path": "pipeline/extract.ipynb"}
    )
    assert status == 200, body
    assert body == [
        {"name": "rows", "type": "int", "default": "10", "help": "how many rows"},
        {
            "name": "seed",
            "type": "int",
            "default": "7",
            "help": "of the random generator, so that a run can be repeated",
        },
    ]
    status, body, _ = await api(
        "GET", "taskflow", "notebooks", "parameters", params={"path": "../x.ipynb"}
    )
    assert status == 400, body
    assert "../x.ipynb" in body["message"]
    status, body, _ = await api(
        "GET", "taskflow", "notebooks", "parameters", params={"path": "pipeline/missing.ipynb"}
    )
    assert status == 404, body
    assert "pipeline/missing.ipynb" in body["message"]
