"""The extension app: traits, enablement, `jupyter taskflow`, lifecycle."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets import TraitError

from pytaskflow_jupyter.executors import EXECUTORS
from pytaskflow_jupyter.server.app import TaskFlowApp

from .helpers import REPO, LiveServer, task, wf


def test_trait_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("PYTASKFLOW_DB", raising=False)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    app = TaskFlowApp()
    assert app.db_path == str(tmp_path / "data" / "pytaskflow" / "taskflow.db")
    assert app.executor == "process"
    assert app.max_tasks == 100_000
    assert app.max_body_bytes == 32 * 1024 * 1024
    assert app.max_json_depth == 64
    monkeypatch.setenv("PYTASKFLOW_DB", str(tmp_path / "env.db"))
    assert TaskFlowApp().db_path == str(tmp_path / "env.db")
    assert TaskFlowApp(db_path="/x/y.db").db_path == "/x/y.db"


@pytest.mark.parametrize(
    "trait", ["max_body_bytes", "max_tasks", "ws_queue_size", "max_json_depth", "db_threads"]
)
def test_limits_must_be_positive(trait):
    with pytest.raises(TraitError):
        TaskFlowApp(**{trait: 0})


@pytest.mark.parametrize("value", [[0], [-1, 10, 10], [700, 10, 10, 10]])
def test_gc_thresholds_are_what_gc_set_threshold_takes(value):
    with pytest.raises(TraitError, match="gc_thresholds"):
        TaskFlowApp(gc_thresholds=value)


async def test_the_server_sets_its_gc_thresholds(taskflow_app):
    """A server holding a large execution keeps Python's cyclic GC to young passes
    (docs/configuration.md, ``gc_thresholds``)."""
    import gc

    assert taskflow_app.gc_thresholds == [50_000, 20, 20]
    assert gc.get_threshold() == (50_000, 20, 20)


def test_every_trait_is_documented():
    doc = (REPO / "docs" / "configuration.md").read_text()
    for name in TaskFlowApp.class_own_traits(config=True):
        assert f"`{name}`" in doc, name


def test_process_executor_falls_back_to_threads(monkeypatch):
    monkeypatch.delitem(EXECUTORS, "process", raising=False)
    app = TaskFlowApp(executor="process")
    executor = app._make_executor()
    try:
        assert executor.name == "thread"
    finally:
        executor.shutdown(wait=False)
    with pytest.raises(ValueError, match="unknown executor"):
        TaskFlowApp(executor="quantum")._make_executor()


class TestProcessExecutor:
    """The server's default executor runs tasks (and survives one that kills its process)."""

    @pytest.fixture
    def taskflow_config(self):
        return {"executor": "process", "workers": 2}

    async def test_runs_with_the_process_executor(self, api, taskflow_app):
        assert taskflow_app.task_executor.name == "process"
        execution = await api.submit(
            wf(
                "in processes",
                task("pid", code="import os\nresult = os.getpid()"),
                task("crash", code="import os; os._exit(3)"),
            )
        )
        done = await api.wait(execution["id"], timeout=60)
        pid = done["tasks"][0]["result"]
        assert done["tasks"][0]["status"] == "completed" and pid != os.getpid()
        assert done["tasks"][1]["status"] == "failed"
        assert (await api("GET", "workflows"))[0] == 200  # the server is still here


async def test_activity_is_reported_while_running(api, taskflow_app):
    assert taskflow_app.current_activity() is None
    execution = await api.submit(wf("busy", task("nap", code="import time; time.sleep(10)")))
    await api.wait(execution["id"], statuses=("running",))
    assert taskflow_app.current_activity() is True
    for _ in range(100):
        if "taskflow_last_activity" in api.app.web_app.settings:
            break
        await asyncio.sleep(0.05)
    assert "taskflow_last_activity" in api.app.web_app.settings
    await api("POST", "executions", execution["id"], "cancel")


async def test_stop_extension_stops_everything(api, taskflow_app, ws_connect):
    ws = await ws_connect()
    await taskflow_app.stop_extension()
    assert await asyncio.wait_for(ws.read_message(), 10) is None
    assert taskflow_app.runner._closing.is_set()
    assert taskflow_app._background == []
    assert taskflow_app.pool._shutdown


def test_the_shipped_config_enables_the_extension(tmp_path):
    """The jupyter-config file makes any Jupyter server load us, and the install put it
    where every Jupyter of this environment reads it."""
    code = (
        "from jupyter_server.serverapp import ServerApp; app = ServerApp(); "
        "app.find_server_extensions(); print(app.jpserver_extensions.get("
        "'pytaskflow_jupyter'))"
    )
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(REPO / "jupyter-config"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "user"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.stdout.strip() == "True", proc.stderr
    name = "jupyter_server_config.d/pytaskflow_jupyter.json"
    installed = Path(sys.prefix, "etc", "jupyter", name)
    assert installed.read_text() == (REPO / "jupyter-config" / name).read_text()


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _runtime_port(runtime: Path, proc: subprocess.Popen) -> int:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        for info in runtime.glob("jpserver-*.json"):
            return json.loads(info.read_text())["port"]
        time.sleep(0.2)
    raise AssertionError("no server info file")


@pytest.mark.parametrize("command", ["main", "jupyter taskflow"])
def test_jupyter_taskflow_listens_on_8000_by_default(tmp_path, command):
    if command == "jupyter taskflow":
        assert shutil.which("jupyter-taskflow"), "the install puts jupyter-taskflow on PATH"
    if not _port_free(8000):
        pytest.skip(
            "port 8000 is taken by another program on this machine (the test checks "
            "the default port itself); free port 8000 to run it"
        )
    runtime = tmp_path / "runtime"
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTER_CONFIG_DIR": str(tmp_path),
        "PYTASKFLOW_DB": str(tmp_path / "t.db"),
        "PYTHONPATH": str(REPO),
    }
    env.pop("JUPYTER_PORT", None)
    argv = (
        ["jupyter", "taskflow"]
        if command != "main"
        else [sys.executable, "-c", "from pytaskflow_jupyter.server.app import main; main()"]
    )
    proc = subprocess.Popen(
        [*argv, "--allow-root", "--IdentityProvider.token=x", "--TaskFlowApp.executor=thread"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _runtime_port(runtime, proc) == 8000
    finally:
        proc.terminate()
        proc.wait(30)


def test_serverapp_options_apply(tmp_path):
    """--port, --ServerApp.base_url, --IdentityProvider.token and a TaskFlowApp trait on the
    command line of `jupyter taskflow`; the REST API and the database follow them."""
    server = LiveServer(
        tmp_path,
        token="t0k",
        base_url="/tf/",
        extra=[f"--TaskFlowApp.db_path={tmp_path / 'cli.db'}"],
    )
    try:
        assert server.request("GET", "/workflows") == (200, [])
        status, execution = server.request("POST", "/workflows", wf("cli", task("a")))
        assert status == 200 and execution["id"].startswith("exec_")
        assert (tmp_path / "cli.db").exists()
    finally:
        server.stop()
    assert server.proc.returncode is not None


def test_jupyter_taskflow_lets_lab_open_the_executed_notebooks(tmp_path):
    """The executed copies live under .taskflow/runs (SPEC 9), a hidden folder: started as
    `jupyter taskflow`, the server's contents API serves them (unless configured)."""
    runs = tmp_path / ".taskflow" / "runs" / "exec_x"
    runs.mkdir(parents=True)
    (runs / "t.ipynb").write_text(
        json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    )
    server = LiveServer(tmp_path, token="t0k")
    try:
        status, body = server.request("GET", "/api/contents/.taskflow/runs/exec_x/t.ipynb")
        assert status == 200 and body["type"] == "notebook"
    finally:
        server.stop()
    closed = LiveServer(tmp_path, token="t0k", extra=["--ContentsManager.allow_hidden=False"])
    try:  # an explicit setting wins
        status, _ = closed.request("GET", "/api/contents/.taskflow/runs/exec_x/t.ipynb")
        assert status == 404
    finally:
        closed.stop()
