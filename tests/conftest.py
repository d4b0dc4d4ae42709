"""Shared fixtures: a real SQLite file per test, real executors."""

from __future__ import annotations

import pytest

from pytaskflow_jupyter.events import EventBus
from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "taskflow.db")
    yield s
    s.close()


@pytest.fixture
def bus():
    return EventBus()


@pytest.fixture
def runner(store, bus):
    executor = ThreadExecutor(4)
    r = Runner(store, executor, bus, heartbeat_interval=0.2)
    yield r
    r.close()
    executor.shutdown(wait=False)
