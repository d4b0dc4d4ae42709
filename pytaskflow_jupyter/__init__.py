"""PyTaskFlow for Jupyter: a workflow (DAG) orchestrator that lives inside Jupyter.

Public API: build and run workflows from Python (``Runner``, ``Store``, executors),
the notebook API (``Workflow``, ``Run``, ``ExecutionWidget``), the Jupyter server
extension entry points, and ``%load_ext pytaskflow_jupyter``.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    StorageUnavailable,
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

__all__ = [
    "Conflict",
    "DaskExecutor",
    "EventBus",
    "ExecutionWidget",
    "InlineExecutor",
    "InvalidInput",
    "Limits",
    "NotFound",
    "PayloadTooLarge",
    "ProcessExecutor",
    "Run",
    "Runner",
    "StorageUnavailable",
    "Store",
    "StoreError",
    "TaskFlowError",
    "ThreadExecutor",
    "UnsupportedMediaType",
    "ValidationError",
    "Workflow",
    "__version__",
    "make_executor",
    "parse_workflow",
]

# The notebook API imports ipywidgets and IPython: loaded on first use, so the server
# (which never needs them) does not pay for them.
# So do the process and Dask executors (loky, distributed).
_LAZY = {
    "Workflow": ".kernel.api",
    "Run": ".kernel.api",
    "ExecutionWidget": ".kernel.widgets",
    "ProcessExecutor": "._process",
    "DaskExecutor": "._dask",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import TaskFlowApp

    return [{"module": "pytaskflow_jupyter", "app": TaskFlowApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "pytaskflow-jupyter"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext pytaskflow_jupyter``: register the ``%taskflow`` magics."""
    from .kernel.magics import load_ipython_extension as load

    load(ipython)
