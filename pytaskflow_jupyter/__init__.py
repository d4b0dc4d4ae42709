"""PyTaskFlow for Jupyter: a workflow (DAG) orchestrator that lives inside Jupyter.

Public API: build and run workflows from Python (``Runner``, ``Store``, executors),
the Jupyter server extension entry points, and ``%load_ext pytaskflow_jupyter``.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    StoreError,
    TaskFlowError,
    UnsupportedMediaType,
    ValidationError,
)
from .events import EventBus
from .executors import InlineExecutor, ThreadExecutor, make_executor
from .runner import Runner
from .store import Store
from .validation import Limits, parse_workflow

__version__ = "0.1.0"

__all__ = [
    "Conflict",
    "EventBus",
    "InlineExecutor",
    "InvalidInput",
    "Limits",
    "NotFound",
    "PayloadTooLarge",
    "Runner",
    "Store",
    "StoreError",
    "TaskFlowError",
    "ThreadExecutor",
    "UnsupportedMediaType",
    "ValidationError",
    "__version__",
    "make_executor",
    "parse_workflow",
]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import TaskFlowApp

    return [{"module": "pytaskflow_jupyter", "app": TaskFlowApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "pytaskflow-jupyter"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext pytaskflow_jupyter``: register the ``%taskflow`` magics."""
    from .kernel.magics import load_ipython_extension as load

    load(ipython)
