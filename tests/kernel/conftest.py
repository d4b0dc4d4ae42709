"""Kernel-side fixtures: a private database per test, a real IPython shell."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import pytaskflow_jupyter
from pytaskflow_jupyter.kernel.session import close_session, get_session

REPO = Path(__file__).resolve().parents[2]
#: where the package under test is imported from (the checkout, or an editable install)
PACKAGE_ROOT = Path(pytaskflow_jupyter.__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process (kernel, server) that must import this package."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


@pytest.fixture
def db_path(tmp_path, monkeypatch):
    """``$PYTASKFLOW_DB`` in ``tmp_path``, and a fresh kernel session on it."""
    path = tmp_path / "taskflow.db"
    monkeypatch.setenv("PYTASKFLOW_DB", str(path))
    close_session()
    yield path
    close_session()


@pytest.fixture
def session(db_path):
    return get_session()


@pytest.fixture(scope="session")
def shell():
    """A real IPython shell with ``%load_ext pytaskflow_jupyter`` done."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=config)
    sh.run_line_magic("load_ext", "pytaskflow_jupyter")
    return sh


class Gate:
    """Holds a task inside its function until the test opens it (no sleeps, no timing)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def __call__(self) -> str:
        self.entered.set()
        if not self._open.wait(60):
            raise TimeoutError("gate never opened")
        return "through"

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def gate():
    g = Gate()
    yield g
    g.open()  # never leave a worker blocked


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.02):
    """Poll ``predicate`` until truthy; fail loudly instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def kernel_env(db_path, monkeypatch):
    """The kernel nbclient starts inherits this: the test's database, this package."""
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    return db_path


# -- a real Jupyter server sharing the database --------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(kernel_env, tmp_path):
    """``jupyter server`` with the extension, on the test's database."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"pytaskflow_jupyter": True}}})
    )
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--allow-root",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp_path}",
        ],
        env=child_env(
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
            PYTASKFLOW_DB=str(kernel_env),
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=PACKAGE_ROOT,
    )
    base = f"http://127.0.0.1:{port}/"

    def get(path: str):
        req = urllib.request.Request(base + path, headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def post(path: str, body: dict | None = None):
        req = urllib.request.Request(
            base + path,
            data=json.dumps(body or {}).encode(),
            method="POST",
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    try:
        wait_until(lambda: proc.poll() is not None or _answers(get), timeout=90, interval=0.2)
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        yield {"get": get, "post": post, "ws": f"ws://127.0.0.1:{port}/ws", "token": token}
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _answers(get) -> bool:
    try:
        get("workflows")
        return True
    except OSError:
        return False


@pytest.fixture
def magic(shell, capsys):
    """Run a ``%taskflow`` line (or, given ``cell``, a cell) in the shell and return
    ``(value, stdout, stderr)``."""

    def call(line: str, cell: str | None = None):
        capsys.readouterr()
        if cell is None:
            value = shell.run_line_magic("taskflow", line)
        else:
            value = shell.run_cell_magic("taskflow", line, cell)
        out = capsys.readouterr()
        return value, out.out, out.err

    return call
