"""Kernel-side fixtures: a private database per test, a real IPython shell."""

from __future__ import annotations

import os
import threading
import time
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
