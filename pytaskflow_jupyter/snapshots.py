"""Snapshots of notebook functions, so that the server can run a workflow built in a kernel.

A task built from a notebook function names it (``"callable": "nightly.load"``, no
``:``): only the kernel that defined it can call it. When the notebook side registers,
submits or schedules a workflow, each such function is *snapshotted*: pickled by value
with cloudpickle (its code, and the notebook globals and helper functions it uses;
modules it imports are pickled by reference and imported again where it runs), stored
with its source text under the SHA-256 of those bytes, and the task's ``params`` get
``"snapshot": "sha256:..."``. The definition changes with the snapshot, so a new
snapshot is a new revision: an execution always runs the snapshots of its revision.

On the server (or in a kernel where the function is no longer defined), the engine's
``resolve`` hook (``SnapshotResolver``) loads the snapshot from the store, once per
snapshot, and binds it like the kernel binds a live function (``bind_names``: a
parameter named like a dependency receives its result).

A function that cannot be pickled (it uses an open file, a lock, a live connection) is
refused when it is snapshotted, naming the function and the object (``take``).
cloudpickle was chosen because it is what Dask and loky already use here to ship
functions defined in ``__main__`` to other processes, and it is maintained with them.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from .errors import InvalidInput, Problem, TaskCodeError

__all__ = ["MAX_SNAPSHOT_BYTES", "Snapshot", "SnapshotResolver", "bind_names", "take"]

MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024
PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
Fetch = Callable[[str], "tuple[str, str, bytes, str, str] | None"]


class Snapshot(NamedTuple):
    """One snapshot: ``digest`` (``sha256:<hex>``), the function's name and source text,
    the pickled bytes and the Python version that pickled them."""

    digest: str
    name: str
    source: str
    pickle: bytes
    python: str

    def row(self) -> tuple[str, str, str, bytes, str]:
        """As ``Store.save_snapshots`` takes it."""
        return self.digest, self.name, self.source, self.pickle, self.python


def take(fn: Callable[..., Any], task: str, where: str = "") -> Snapshot:
    """Snapshot ``fn``, the function of ``task``; ``InvalidInput`` naming the object that
    cannot be pickled (``where``: the task's path in the definition, for the error)."""
    import cloudpickle

    name = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn)))
    try:
        blob = cloudpickle.dumps(fn, protocol=5)
    except Exception as exc:
        culprit = _culprit(fn)
        what = (
            f"it uses {culprit[0]!r}, {_describe(culprit[1])}, which cannot be pickled"
            if culprit
            else f"it cannot be pickled ({type(exc).__name__}: {exc})"
        )
        raise _refused(
            task,
            where,
            f"function {name} cannot be snapshotted for the server: {what}; create such "
            "objects inside the function instead",
        ) from exc
    if len(blob) > MAX_SNAPSHOT_BYTES:
        raise _refused(
            task,
            where,
            f"the snapshot of function {name} is {len(blob)} bytes (the limit is "
            f"{MAX_SNAPSHOT_BYTES}): it carries large notebook globals; load the data "
            "inside the function instead",
        )
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = ""
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    return Snapshot(digest, name, source, blob, PYTHON)


def _refused(task: str, where: str, detail: str) -> InvalidInput:
    path = f"{where}.params.callable" if where else "callable"
    return InvalidInput(
        f"task {task!r}: {detail}",
        [Problem(path, "not_snapshottable", detail)],
        code="not_snapshottable",
    )


def _describe(obj: Any) -> str:
    kind = type(obj)
    words = {
        "TextIOWrapper": "an open file",
        "BufferedReader": "an open file",
        "BufferedWriter": "an open file",
        "lock": "a lock",
        "RLock": "a lock",
        "socket": "a socket",
        "Connection": "a live connection",
        "Cursor": "a database cursor",
        "generator": "a generator",
    }.get(kind.__name__, "an object")
    return f"{words} ({kind.__module__}.{kind.__qualname__})"


def _culprit(fn: Any, depth: int = 0, seen: set[int] | None = None) -> tuple[str, Any] | None:
    """The first name ``fn`` uses (closure cell or global, through helper functions)
    whose value cannot be pickled."""
    import cloudpickle

    seen = seen if seen is not None else set()
    if depth > 5 or id(fn) in seen or not inspect.isfunction(fn):
        return None
    seen.add(id(fn))
    try:
        found = inspect.getclosurevars(fn)
    except (TypeError, ValueError):
        return None
    for name, value in {**found.nonlocals, **found.globals}.items():
        if inspect.ismodule(value):
            continue
        if inspect.isfunction(value):
            deeper = _culprit(value, depth + 1, seen)
            if deeper:
                return deeper
            continue
        try:
            cloudpickle.dumps(value, protocol=5)
        except Exception:
            return name, value
    return None


def bind_names(
    fn: Callable[..., Any],
    *,
    upstream_hook: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    result_hook: Callable[[dict[str, Any], Any], None] | None = None,
) -> Callable[..., Any]:
    """Wrap a notebook function for the engine: the wrapper advertises ``fn``'s keyword
    parameters plus ``upstream`` and ``context`` (``__signature__``), so the core passes
    execution params as it would to ``fn``; a parameter still missing is filled from the
    dependency result of that name. ``upstream_hook(upstream, context)`` may replace
    upstream values first, ``result_hook(context, result)`` sees each result (the
    kernel keeps Python objects in memory with them)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = {p.name for p in sig.parameters.values() if p.kind in kinds}
    var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())

    def task_call(
        upstream: dict[str, Any] | None = None, context: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        upstream = dict(upstream or {})
        context = dict(context or {})
        if upstream_hook is not None:
            upstream_hook(upstream, context)
        if "upstream" in names:
            kwargs["upstream"] = upstream
        if "context" in names:
            kwargs["context"] = context
        for dep, value in upstream.items():
            if dep in names and dep not in kwargs:
                kwargs[dep] = value
        result = fn(**kwargs)
        if result_hook is not None:
            result_hook(context, result)
        return result

    # names are all the core reads; defaults and annotations stay off (they may not pickle)
    params = [
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY)
        for p in sig.parameters.values()
        if p.kind in kinds
    ]
    params += [
        inspect.Parameter(extra, inspect.Parameter.KEYWORD_ONLY, default=None)
        for extra in ("upstream", "context")
        if extra not in names
    ]
    if var_kw:
        params.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    task_call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    task_call.__name__ = getattr(fn, "__name__", "task")
    task_call.__qualname__ = getattr(fn, "__qualname__", task_call.__name__)
    task_call.__wrapped_task__ = fn  # type: ignore[attr-defined]
    return task_call


class SnapshotResolver:
    """The engine's ``resolve`` hook on the server: the function of a task's snapshot,
    loaded once per snapshot (``fetch``: ``Store.function_snapshot``). A snapshot that
    is missing or does not load becomes a stand-in that fails the attempt saying why."""

    def __init__(self, fetch: Fetch, cache_size: int = 512) -> None:
        self.fetch = fetch
        self.cache_size = cache_size
        self._cache: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, snapshot: str | None = None) -> Callable[..., Any]:
        if snapshot is None:
            return _failing(
                f"callable {name!r} names a notebook function, which exists only in the "
                "kernel that defined it, and the task has no snapshot; register the workflow "
                "from the notebook (wf.register(), wf.submit() or %taskflow submit) so that "
                "the server runs a snapshot of it"
            )
        with self._lock:
            fn = self._cache.get(snapshot)
        if fn is None:
            fn = self._load(name, snapshot)
            with self._lock:
                if len(self._cache) >= self.cache_size:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[snapshot] = fn
        return fn

    def _load(self, name: str, digest: str) -> Callable[..., Any]:
        import cloudpickle

        row = self.fetch(digest)
        if row is None:
            return _failing(f"snapshot {digest} of notebook function {name!r} is not stored")
        fn_name, _source, blob, python, created = row
        if python != PYTHON:
            return _failing(
                f"snapshot {digest} of {fn_name} was taken with Python {python}; this "
                f"process runs Python {PYTHON}: register the workflow again from a kernel "
                "of this Python"
            )
        try:
            fn = cloudpickle.loads(blob)
        except Exception as exc:
            return _failing(
                f"snapshot {digest} of {fn_name} (taken {created}) does not load here: "
                f"{type(exc).__name__}: {exc}"
            )
        return bind_names(fn)


def _failing(message: str) -> Callable[..., Any]:
    def unavailable(**_: Any) -> Any:
        raise TaskCodeError(message)

    return unavailable
