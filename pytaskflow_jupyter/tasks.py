"""What runs inside a worker: one attempt of one task, turned into an ``Outcome``.

This module is imported by every executor's workers (threads, loky processes, Dask
workers), so it depends only on the standard library and the model. A task's exception
never escapes: it becomes ``Outcome.ok = False`` with the error text and traceback.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "Outcome", "Started", "TaskCodeError", "failed_outcome", "run_job"]

Json = dict[str, Any]


class TaskCodeError(Exception):
    """A task that cannot run as defined (bad callable, bad branch result)."""


@dataclass
class Job:
    """Everything a worker needs to run one attempt; picklable (``fn`` by cloudpickle)."""

    execution_id: str
    workflow: str
    task: str
    attempt: int
    type: str
    params: Json
    upstream: Json = field(default_factory=dict)
    fn: Callable[..., Any] | None = None
    capture: bool = True
    log_limit: int = 64 * 1024
    root_dir: str | None = None
    exec_params: Json = field(default_factory=dict)
    timeout: float | None = None


@dataclass
class Started:
    """An executor's notice that an attempt left its queue and began to run; sent only
    for jobs with a ``timeout``, whose clock starts here (not at submission)."""

    task: str
    attempt: int


@dataclass
class Outcome:
    """The result of one attempt, reported to the engine's queue."""

    task: str
    attempt: int
    ok: bool
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    stdout: str = ""
    stderr: str = ""
    started: float = 0.0
    finished: float = 0.0
    timed_out: bool = False


def failed_outcome(job: Job, error: str, traceback: str | None = None, stderr: str = "") -> Outcome:
    """A failed attempt that the executor, not the task, reports (a crash, a stop)."""
    now = time.time()
    return Outcome(
        job.task,
        job.attempt,
        False,
        error=error,
        traceback=traceback,
        stderr=stderr,
        started=now,
        finished=now,
    )


class _Capture(io.TextIOBase):
    """A stand-in for ``sys.stdout``/``sys.stderr`` that sends each thread's writes to
    that thread's buffer while it runs a task, and everything else to the real stream."""

    def __init__(self, real: Any, slot: str) -> None:
        self._real = real
        self._slot = slot

    def write(self, text: str) -> int:
        if not getattr(_local, "capturing", False):
            return int(self._real.write(text))
        buf = getattr(_local, self._slot)
        if buf is None:  # the attempt's first write to this stream
            buf = io.StringIO()
            setattr(_local, self._slot, buf)
        if buf.tell() < _local.limit:
            buf.write(text[: max(0, _local.limit - buf.tell())])
        return len(text)

    def flush(self) -> None:
        if not getattr(_local, "capturing", False):
            self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


_local = threading.local()
_install_lock = threading.Lock()


def _install_capture() -> None:
    if isinstance(sys.stdout, _Capture) and isinstance(sys.stderr, _Capture):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Capture):
            sys.stdout = _Capture(sys.stdout, "out")
        if not isinstance(sys.stderr, _Capture):
            sys.stderr = _Capture(sys.stderr, "err")


@functools.lru_cache(maxsize=4096)
def _signature(fn: Callable[..., Any]) -> tuple[frozenset[str], bool]:
    """The keyword names ``fn`` accepts, and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return frozenset(), False
    names = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def resolve_callable(spec: str) -> Callable[..., Any]:
    """Import ``"package.module:function"``."""
    if ":" not in spec:
        raise TaskCodeError(
            f"callable {spec!r} names a notebook function, which exists only in a kernel; "
            "run this workflow from the notebook (%taskflow run) or use 'module:function'"
        )
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = sys.modules.get(module_name)
        if obj is None or getattr(getattr(obj, "__spec__", None), "_initializing", False):
            # not imported yet, or being imported by another thread (import_module waits
            # for it); else the module is ready, as import_module itself checks first
            obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise TaskCodeError(f"cannot import callable {spec!r}: {exc}") from exc
    if not callable(obj):
        raise TaskCodeError(f"{spec!r} is not callable")
    return obj  # type: ignore[no-any-return]


_INJECTED = frozenset({"upstream", "context"})


def _call(job: Job, fn: Callable[..., Any]) -> Any:
    try:
        names, var_kw = _signature(fn)
    except TypeError:  # unhashable callable object
        names, var_kw = frozenset(), True
    kwargs = job.params.get("kwargs")
    if not kwargs and not job.exec_params and not names & _INJECTED:
        return fn()  # the common case of a callable taking nothing from the definition
    kwargs = dict(kwargs or {})
    # execution params override the definition's kwargs for the names the callable takes
    kwargs.update((k, v) for k, v in job.exec_params.items() if var_kw or k in names)
    if "upstream" in names:
        kwargs["upstream"] = job.upstream
    if "context" in names:
        kwargs["context"] = {
            "execution_id": job.execution_id,
            "workflow": job.workflow,
            "task": job.task,
            "attempt": job.attempt,
        }
    return fn(**kwargs)


def _body(job: Job) -> Any:
    params = job.params
    if job.type == "notebook":
        from .notebook_task import run_notebook

        return run_notebook(job)
    if job.fn is not None:
        value = _call(job, job.fn)
    elif params.get("callable"):
        value = _call(job, resolve_callable(params["callable"]))
    elif params.get("code"):
        scope = {
            "__name__": "__taskflow__",
            "params": {**params, **job.exec_params},
            "upstream": job.upstream,
            "context": {"execution_id": job.execution_id, "task": job.task, "attempt": job.attempt},
            "result": None,
        }
        exec(compile(params["code"], f"<task {job.task}>", "exec"), scope)
        value = scope.get("result")
    elif job.type == "branch":
        value = params.get("next", [])
    else:
        value = None
    return branch_selection(value) if job.type == "branch" else value


def branch_selection(value: Any) -> list[str]:
    """A branch's result as a list of task names (one name, a list, or None for none)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TaskCodeError(f"a branch must return a task name or a list of them, not {value!r:.100}")


def run_job(job: Job) -> Outcome:
    """Run one attempt; never raises (apart from interpreter exit)."""
    started = time.time()
    if job.capture:
        _install_capture()
        _local.limit = job.log_limit
        _local.out = _local.err = None  # a buffer is made at the first write
        _local.capturing = True
    try:
        value = _body(job)
        out = Outcome(job.task, job.attempt, True, value)
    except Exception as exc:
        out = Outcome(
            job.task,
            job.attempt,
            False,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=-20),
        )
    finally:
        if job.capture:
            _local.capturing = False
            stdout = "" if _local.out is None else _local.out.getvalue()
            stderr = "" if _local.err is None else _local.err.getvalue()
            _local.out = _local.err = None
    if job.capture:
        out.stdout, out.stderr = stdout, stderr
    out.started, out.finished = started, time.time()
    return out
