"""Notebook tasks through the engine: live progress on the bus from every local executor,
the executed copy as the task's ``output``, and a cancel that stops the kernel."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from pytaskflow_jupyter.events import EventBus
from pytaskflow_jupyter.executors import make_executor
from pytaskflow_jupyter.runner import Runner

from .helpers import task, wait_until, wf


def _notebook(path: Path, *sources: str) -> None:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _runner(store, tmp_path, kind):
    bus = EventBus()
    ex = make_executor(kind, workers=2)
    return Runner(store, ex, bus, root_dir=str(tmp_path), heartbeat_interval=0.2), ex


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_progress_events_and_output(kind, store, tmp_path):
    _notebook(tmp_path / "steps.ipynb", *[f"import time; time.sleep(0.3); x{i} = {i}" for i in
                                          range(4)], "result = x3")  # fmt: skip
    runner, ex = _runner(store, tmp_path, kind)
    progress = []
    runner.bus.subscribe(
        lambda batch: progress.extend(e.progress for e in batch if e.event == "task_progress")
    )
    try:
        definition = wf(task("steps", type="notebook", params={"path": "steps.ipynb"}))
        done = runner.wait(runner.submit(definition)["id"], 120)
        detail = runner.get(done["id"])["tasks"][0]
        assert done["status"] == "completed", detail["error"]
        assert detail["result"] == 3
        assert detail["output"] == f".taskflow/runs/{done['id']}/steps.ipynb"
        assert (tmp_path / detail["output"]).is_file()
        # five code cells and the injected-parameters cell (upstream = {})
        assert progress and progress[-1] == {"done": 6, "total": 6}
        assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
        stored = [e for e in store.events(0, execution=done["id"]) if e.event == "task_progress"]
        assert [e.progress for e in stored] == progress  # committed before published
    finally:
        runner.close()
        ex.shutdown(wait=False)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_cancel_stops_the_kernel_and_its_children(kind, store, tmp_path):
    pids = tmp_path / "pids"
    _notebook(
        tmp_path / "hang.ipynb",
        "import os, subprocess\n"
        "child = subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')",
        "import time; time.sleep(600)",
    )
    runner, ex = _runner(store, tmp_path, kind)
    try:
        definition = wf(task("hang", type="notebook", params={"path": "hang.ipynb"}))
        ex_id = runner.submit(definition)["id"]
        wait_until(lambda: pids.exists() and pids.read_text().count(" ") == 1, 60)
        kernel, child = (int(p) for p in pids.read_text().split())
        assert runner.cancel(ex_id)["status"] == "cancelled"

        def gone(pid: int) -> bool:
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (gone(kernel) and gone(child)):
            time.sleep(0.1)
        assert gone(kernel) and gone(child)
    finally:
        runner.close()
        ex.shutdown(wait=False)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_the_logs_route_shows_what_a_running_notebook_printed(kind, store, tmp_path):
    _notebook(
        tmp_path / "talk.ipynb",
        "print('first words')",
        "import time; time.sleep(1)",
        "import time; time.sleep(30)",
    )
    runner, ex = _runner(store, tmp_path, kind)
    try:
        definition = wf(task("talk", type="notebook", params={"path": "talk.ipynb"}))
        ex_id = runner.submit(definition)["id"]
        logs = wait_until(lambda: runner.get_logs(ex_id, "talk"), 60)
        assert runner.status(ex_id) == "running"
        assert logs == [{"attempt": 1, "stdout": "first words\n", "stderr": ""}]
        runner.cancel(ex_id)
    finally:
        runner.close()
        ex.shutdown(wait=False)
