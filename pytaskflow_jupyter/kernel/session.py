"""The kernel's composition root: one lazily created session per kernel.

``get_session()`` wires the core for notebook use: a ``Store`` on the shared database
(``default_db_path()``: ``$PYTASKFLOW_DB``, which the Jupyter server exports to the
kernels it starts, else the Jupyter data dir), an ``EventBus`` for live widgets, and one
``Runner`` per executor kind (threads by default, processes on request) whose
``resolve`` hook finds notebook functions. Everything run from the notebook is therefore
persisted where the server, ``/ws`` and JupyterLab see it, and runs in background
threads so the notebook stays usable.

Notebook functions
------------------
A python task whose ``callable`` has no ``:`` names a notebook function, looked up
(again for every attempt, so a retry runs the function as last edited):

1. among functions the Python API registered (``Workflow.task``), keyed
   ``"<workflow id>.<task name>"``;
2. in the IPython user namespace (``__main__`` outside IPython), following dots
   attribute by attribute (``helpers.clean``).

A name that resolves to nothing becomes a stand-in that fails the attempt with a
``NameError`` that names it, like any error of task code.

Resolved functions are wrapped by ``bind``. Besides the core's calling convention
(``params.kwargs``, execution params by name, ``upstream``, ``context``) a parameter
named like a dependency receives that dependency's result, and the task's Python
result is kept in memory for a while (``remember``): ``Run.results`` then returns the
object itself (a DataFrame, not its JSON summary), and a retry that reuses a non-JSON
result hands the real object downstream instead of the stored summary.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, NotFound
from ..events import EventBus
from ..executors import Executor, ThreadExecutor, make_executor
from ..runner import Runner
from ..snapshots import SnapshotResolver, bind_names
from ..store import Store, default_db_path

__all__ = ["Session", "bind", "close_session", "get_session", "register_function"]

log = logging.getLogger(__name__)

KEEP_EXECUTIONS = 32  # in-memory results are kept for this many recent executions

_functions: dict[str, Callable[..., Any]] = {}
_results: OrderedDict[str, dict[str, Any]] = OrderedDict()
_parents: dict[str, str | None] = {}  # execution id -> parent id, as stored
_results_lock = threading.Lock()
_session: Session | None = None
_session_lock = threading.Lock()


def register_function(key: str, fn: Callable[..., Any]) -> None:
    """Make ``fn`` the notebook function named ``key`` (the Python API's tasks)."""
    _functions[key] = fn


def current_shell() -> Any:
    """The running IPython shell, or None (plain Python, or no IPython installed)."""
    try:
        from IPython.core import getipython
    except ImportError:
        return None
    # getattr: IPython 8 leaves get_ipython unannotated, IPython 9 annotates it
    return getattr(getipython, "get_ipython")()  # noqa: B009


def _user_namespace() -> dict[str, Any]:
    shell = current_shell()
    if shell is not None:
        return shell.user_ns  # type: ignore[no-any-return]
    return vars(sys.modules["__main__"])


def find_function(name: str) -> Callable[..., Any] | None:
    """The notebook function ``name`` names, or None (see the module docstring)."""
    if name in _functions:
        return _functions[name]
    head, *rest = name.split(".")
    obj = _user_namespace().get(head)
    for part in rest:
        obj = getattr(obj, part, None)
    return obj if callable(obj) else None


def _missing(name: str) -> Callable[..., Any]:
    def missing(**_: Any) -> Any:
        raise NameError(
            f"notebook function {name!r} is not defined in this kernel; run the "
            "cell that defines it, then retry"
        )

    return missing


def resolve(name: str, snapshot: str | None = None) -> Callable[..., Any]:
    """The ``Runner`` hook: a bound notebook function; when this kernel does not define
    it, the task's snapshot (a workflow registered by another kernel); else a stand-in
    that says it is missing."""
    fn = find_function(name)
    if fn is None:
        if snapshot is not None:
            return get_session().snapshots(name, snapshot)
        return _missing(name)
    try:
        return bind(fn)
    except TypeError:  # an unhashable callable object: called as the core calls it
        return fn


# -- results kept in memory -------------------------------------------------------------
def remember(execution_id: str, task: str, value: Any) -> None:
    """Keep a task's Python result (for ``Run.results`` and reuse by retries)."""
    with _results_lock:
        _results.setdefault(execution_id, {})[task] = value
        _results.move_to_end(execution_id)
        while len(_results) > KEEP_EXECUTIONS:
            _results.popitem(last=False)


def _parent_of(execution_id: str) -> str | None:
    if execution_id not in _parents:
        try:
            parent = get_session().store.execution_row(execution_id)["parent_id"]
        except NotFound:
            parent = None
        with _results_lock:
            _parents[execution_id] = parent
    return _parents[execution_id]


def recall(execution_id: str, task: str) -> tuple[bool, Any]:
    """``(found, value)``: the in-memory result of ``task`` in this execution or, for a
    reused task, in the execution it was reused from (following ``parentId``)."""
    if not _results:  # nothing kept here (a worker process, say): skip the database
        return False, None
    seen = set()
    current: str | None = execution_id
    while current is not None and current not in seen:
        seen.add(current)
        with _results_lock:
            values = _results.get(current)
            if values is not None and task in values:
                return True, values[task]
        current = _parent_of(current)
    return False, None


def is_summary(value: Any) -> bool:
    """True for the JSON stand-in the store keeps for a result that is not JSON."""
    return isinstance(value, dict) and value.get("json") is False and "summary" in value


# -- binding ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def bind(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a notebook function for the engine (``snapshots.bind_names``, see the module
    docstring): upstream results the store kept as a JSON summary are replaced by the
    Python objects still in memory, and each result is kept in memory."""
    return bind_names(fn, upstream_hook=_recall_upstream, result_hook=_remember_result)


def _recall_upstream(upstream: dict[str, Any], context: dict[str, Any]) -> None:
    execution_id = context.get("execution_id", "")
    for dep, value in upstream.items():
        if is_summary(value):
            found, real = recall(execution_id, dep)
            if found:
                upstream[dep] = real


def _remember_result(context: dict[str, Any], result: Any) -> None:
    # an instance of a mapped task: its mapped task hands the list of values downstream
    if context.get("execution_id") and "map_index" not in context:
        remember(context["execution_id"], context.get("task", ""), result)


# -- the session ----------------------------------------------------------------------------
class Session:
    """The kernel's store, event bus and runners (one runner per executor kind)."""

    def __init__(self, db_path: str | Path | None = None, *, workers: int | None = None) -> None:
        self.store = Store(db_path or default_db_path())
        self.snapshots = SnapshotResolver(self.store.function_snapshot)
        self.bus = EventBus()
        self.workers = workers
        self._runners: dict[str, Runner] = {}
        self._lock = threading.Lock()

    def runner(self, executor: str = "thread") -> Runner:
        """The runner for ``executor`` (``thread`` or ``process``), created on first use."""
        with self._lock:
            runner = self._runners.get(executor)
            if runner is None:
                first = not self._runners
                # notebook paths: the server's root when it started this kernel, else here
                root = os.environ.get("PYTASKFLOW_ROOT_DIR") or os.getcwd()
                runner = Runner(
                    self.store,
                    self._executor(executor),
                    self.bus,
                    resolve=resolve,
                    role="kernel",
                    root_dir=root,
                )
                self._runners[executor] = runner
                if first:
                    self._recover(runner)
            return runner

    @staticmethod
    def _recover(runner: Runner) -> None:
        """Mark executions whose owner died (an earlier kernel, say) failed, reason
        ``owner_lost``, so they stop showing as running; ``retry`` resumes them."""
        try:
            lost = runner.recover()
        except Exception:  # never let housekeeping stop the notebook
            log.exception("could not check for executions of dead owners")
            return
        if lost:
            log.info(
                "marked %d execution(s) of stopped processes owner_lost: %s",
                len(lost),
                ", ".join(lost),
            )

    def _executor(self, kind: str) -> Executor:
        if kind == "thread":
            return ThreadExecutor(self.workers)
        try:
            return make_executor(kind, workers=self.workers)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="unknown_executor") from exc

    def cancel(self, execution_id: str) -> None:
        """Cancel an execution: at once when a runner of this kernel runs it, else by
        asking its owner through the database (``Conflict`` once it has ended)."""
        with self._lock:
            owner = next((r for r in self._runners.values() if execution_id in r.active()), None)
        (owner or self.runner()).cancel(execution_id)

    def close(self) -> None:
        """Stop the runners' heartbeats and release their workers."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.close(wait=1.0)
            runner.executor.shutdown(wait=False)
        self.store.close()


def live_abandoned(execution_id: str) -> dict[str, int]:
    """Task -> attempt of an execution's attempts that a runner of this kernel gave up on
    (cancel, timeout) and whose code still runs in its thread (``Executor.abandoned``)."""
    session = _session
    if session is None:
        return {}
    with session._lock:
        runners = list(session._runners.values())
    return {
        task: attempt
        for runner in runners
        for eid, task, attempt, _ in runner.executor.abandoned()
        if eid == execution_id
    }


def get_session() -> Session:
    """The kernel's session, created on first use on ``default_db_path()``."""
    global _session
    with _session_lock:
        if _session is None:
            _session = Session()
        return _session


def close_session() -> None:
    """Close the session; the next ``get_session()`` opens a new one (after a change of
    ``$PYTASKFLOW_DB``, for example)."""
    global _session
    with _session_lock:
        session, _session = _session, None
    if session is not None:
        session.close()
