"""Task kinds: each ``type`` a task may have is one object, registered in ``KINDS``.

A kind owns everything that differs between ``python``, ``branch`` and ``notebook``
tasks, and nothing else does:

* the fields of its ``params`` (``FIELDS``: name -> JSON type and description); unknown
  keys are refused by name, like everywhere else in a definition;
* its submission-time checks (``check``): ``code`` is compiled, so a syntax error is a
  400 naming the task, the line and the column; exclusive fields are refused together;
* how an attempt runs in a worker (``run``), in any executor's process;
* its OpenAPI fragment (``schema``), which ``server/openapi.py`` serves.

Validation (``validation.py``), the workers (``tasks.run_job``) and ``openapi.json`` read
this one table, and ``tests/unit/test_task_kinds.py`` runs every registered kind end to
end: a kind that validates but cannot run fails it. (sqlite-utils' plugin hooks are
the model: one interface, one registry, every entry honoured the same way.)

Workers import this module, so it depends on the standard library and ``errors`` only;
the notebook kind imports ``notebook_task`` (nbclient) when an attempt runs.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from .errors import TaskCodeError

if TYPE_CHECKING:
    from .tasks import Job

__all__ = [
    "KINDS",
    "NO_HOOKS",
    "TASK_TYPES",
    "BranchKind",
    "Hooks",
    "NotebookKind",
    "Produced",
    "PythonKind",
    "TaskKind",
]

Json = dict[str, Any]
AddProblem = Callable[[str, str, str], None]  # (path, code, detail)

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "object": (dict,),
    "string-or-list": (str, list),
}
_TYPE_WORDS = {
    "string": "a string",
    "object": "an object",
    "string-or-list": "a task name or a list of them",
}


@dataclass(frozen=True)
class Field:
    """One key of a kind's ``params``: its JSON type and what it means."""

    type: str  # a key of _JSON_TYPES
    description: str

    def schema(self) -> Json:
        if self.type == "string-or-list":
            return {
                "description": self.description,
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            }
        return {"type": self.type, "description": self.description}


@functools.lru_cache(maxsize=1024)
def compile_code(code: str, task: str) -> Any:
    """``code`` compiled once per text and task (validation and every attempt share it)."""
    return compile(code, f"<task {task}>", "exec")


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


_INJECTED = frozenset({"upstream", "context", "item", "map_index"})


def _context(job: Job) -> Json:
    context = {
        "execution_id": job.execution_id,
        "workflow": job.workflow,
        "task": job.task,
        "attempt": job.attempt,
    }
    if job.map_index is not None:
        context["map_index"] = job.map_index
    return context


def call(job: Job, fn: Callable[..., Any]) -> Any:
    """Call a task's function: ``params.kwargs`` as keyword arguments, then the
    execution's parameters it names, ``upstream`` and ``context`` if it names them, and
    in an instance of a mapped task ``item`` and ``map_index`` (SPEC 11)."""
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
        kwargs["context"] = _context(job)
    if job.map_index is not None:
        if "item" in names:
            kwargs["item"] = job.item
        if "map_index" in names:
            kwargs["map_index"] = job.map_index
    return fn(**kwargs)


def run_code(job: Job) -> Any:
    """Run ``params.code``: it sees ``params`` (its ``kwargs`` and the execution's
    parameters), ``upstream`` and ``context`` (and ``item`` and ``map_index`` in an
    instance of a mapped task); its result is the variable ``result``."""
    scope: dict[str, Any] = {
        "__name__": "__taskflow__",
        "params": {**(job.params.get("kwargs") or {}), **job.exec_params},
        "upstream": job.upstream,
        "context": _context(job),
        "result": None,
    }
    if job.map_index is not None:
        scope.update(item=job.item, map_index=job.map_index)
    exec(compile_code(job.params["code"], job.task), scope)
    return scope.get("result")


@dataclass(frozen=True)
class Hooks:
    """What an executor offers a running attempt: ``stop`` is set when the attempt is to
    stop (cancel, timeout) where the executor cannot kill it, ``progress(done, total)``
    reports how far it got (a notebook's cells), ``logs(stdout, stderr)`` what it wrote so
    far (the logs route shows it while it runs). Only kinds with ``USES_HOOKS`` get them."""

    stop: threading.Event | None = None
    progress: Callable[[int, int], None] | None = None
    logs: Callable[[str, str], None] | None = None  # stdout and stderr so far


NO_HOOKS = Hooks()


class Produced(NamedTuple):
    """What a kind's ``run`` returns when the attempt also left a file to show (a
    notebook's executed copy): the task's ``output``, a path relative to the root."""

    value: Any
    output: str | None


class TaskKind:
    """The interface of a task kind (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    FIELDS: ClassVar[dict[str, Field]]
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    EXCLUSIVE: ClassVar[tuple[str, ...]] = ()  # at most one of these
    EMPTY_OK: ClassVar[bool] = False  # empty params are valid (no check needed)
    USES_HOOKS: ClassVar[bool] = False  # its attempts take ``Hooks`` (stop, progress)

    def check(self, params: Json, where: str, add: AddProblem, task: str) -> None:
        """Add a problem for each thing wrong with ``params`` (at ``where``)."""
        fields = self.FIELDS
        if not params.keys() <= fields.keys():  # this runs per task of 100,000: cheap first
            for key in sorted(params.keys() - fields.keys()):
                add(
                    f"{where}.{key}",
                    "unknown_field",
                    f"unknown key {key!r} for a {self.name} task; allowed: "
                    f"{', '.join(sorted(fields))}",
                )
        for key, value in params.items():
            fld = fields.get(key)
            if fld is not None and not isinstance(value, _JSON_TYPES[fld.type]):
                add(f"{where}.{key}", "type_error", f"must be {_TYPE_WORDS[fld.type]}")
        for key in self.REQUIRED:
            if key not in params:
                add(f"{where}.{key}", "required", f"a {self.name} task needs params.{key}")
        given = [k for k in self.EXCLUSIVE if k in params]
        if len(given) > 1:
            add(
                f"{where}.{given[1]}",
                "conflicting_fields",
                f"give one of {' or '.join(self.EXCLUSIVE)}, not {' and '.join(given)}",
            )
        snap = params.get("snapshot")
        if isinstance(snap, str):
            if not _SNAPSHOT_ID.fullmatch(snap):
                add(f"{where}.snapshot", "invalid_snapshot", "must be 'sha256:' and 64 hex digits")
            ref = params.get("callable")
            if not isinstance(ref, str) or ":" in ref:
                add(
                    f"{where}.snapshot",
                    "invalid_snapshot",
                    "is the snapshot of a notebook function: it goes with a 'callable' "
                    "naming one (no ':')",
                )
        code = params.get("code")
        if isinstance(code, str):
            try:
                compile_code(code, task)
            except SyntaxError as exc:
                add(
                    f"{where}.code",
                    "syntax_error",
                    f"line {exc.lineno}, column {exc.offset}: {exc.msg}",
                )
            except ValueError as exc:  # a NUL character
                add(f"{where}.code", "syntax_error", str(exc))

    def is_noop(self, params: Json) -> bool:
        """True when an attempt would do nothing and return None (the engine completes
        such a task without a worker)."""
        return False

    def run(self, job: Job, hooks: Hooks = NO_HOOKS) -> Any:
        """Run one attempt in a worker; return its result or raise."""
        raise NotImplementedError

    def schema(self) -> Json:
        """The OpenAPI schema of this kind's ``params``."""
        return {
            "type": "object",
            "description": self.description,
            "additionalProperties": False,
            "required": list(self.REQUIRED),
            "properties": {k: f.schema() for k, f in self.FIELDS.items()},
        }


_CALLABLE = Field("string", "'package.module:function' (or, in a kernel, a notebook function)")
_CODE = Field("string", "Python source; its result is the variable `result`")
_SNAPSHOT = Field(
    "string",
    "'sha256:<hex>': the stored snapshot of the notebook function `callable` names, which "
    "the server runs (taken by the notebook side when it registers, submits or schedules)",
)
_SNAPSHOT_ID = re.compile(r"sha256:[0-9a-f]{64}")
_KWARGS = Field("object", "keyword arguments of the callable (seen by code as `params`)")


class PythonKind(TaskKind):
    """``python``: a callable, code, or nothing (a no-op that completes)."""

    name = "python"
    description = "params of a python task: a callable or code (neither: a no-op)"
    FIELDS = {"callable": _CALLABLE, "code": _CODE, "kwargs": _KWARGS, "snapshot": _SNAPSHOT}
    EXCLUSIVE = ("callable", "code")
    EMPTY_OK = True

    def is_noop(self, params: Json) -> bool:
        return not params.get("callable") and not params.get("code")

    def run(self, job: Job, hooks: Hooks = NO_HOOKS) -> Any:
        return run_python(job)


def run_python(job: Job) -> Any:
    """A notebook function, a ``callable``, ``code``, or nothing."""
    if job.fn is not None:
        return call(job, job.fn)
    if job.params.get("callable"):
        return call(job, resolve_callable(job.params["callable"]))
    if job.params.get("code"):
        return run_code(job)
    return None


class BranchKind(TaskKind):
    """``branch``: selects the direct downstream tasks that run (static ``next``, or a
    callable or code returning one name or a list); the others are skipped."""

    name = "branch"
    description = "params of a branch task: exactly one of next, callable or code"
    FIELDS = {
        "next": Field("string-or-list", "the downstream task(s) to run"),
        "callable": _CALLABLE,
        "code": _CODE,
        "kwargs": _KWARGS,
        "snapshot": _SNAPSHOT,
    }
    EXCLUSIVE = ("next", "callable", "code")

    def check(self, params: Json, where: str, add: AddProblem, task: str) -> None:
        super().check(params, where, add, task)
        if not any(k in params for k in self.EXCLUSIVE):
            add(
                f"{where}.next",
                "required",
                "a branch task needs params.next, params.callable or params.code "
                "(without them it would select nothing)",
            )
        nxt = params.get("next")
        if isinstance(nxt, list) and not all(isinstance(n, str) for n in nxt):
            add(f"{where}.next", "type_error", "must be a task name or a list of them")

    def run(self, job: Job, hooks: Hooks = NO_HOOKS) -> Any:
        static = "next" in job.params and job.fn is None
        return selection(job.params["next"] if static else run_python(job))


def selection(value: Any) -> list[str]:
    """A branch's result as a list of task names (one name, a list, or None for none)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TaskCodeError(f"a branch must return a task name or a list of them, not {value!r:.100}")


_OUTSIDE = re.compile(r"^[\\/]|^[A-Za-z]:")


class NotebookKind(TaskKind):
    """``notebook``: runs a notebook under the server's root in a fresh kernel
    (SPEC section 9; the work is in ``notebook_task.py``)."""

    name = "notebook"
    description = "params of a notebook task: a notebook under the server's root"
    FIELDS = {
        "path": Field("string", "a .ipynb path relative to the server's root directory"),
        "parameters": Field("object", "values injected after the notebook's parameters cell"),
        "kernel": Field("string", "kernelspec name (default: the notebook's own)"),
    }
    REQUIRED = ("path",)
    USES_HOOKS = True

    def check(self, params: Json, where: str, add: AddProblem, task: str) -> None:
        super().check(params, where, add, task)
        path = params.get("path")
        if not isinstance(path, str):
            return
        if not path or "\x00" in path or _OUTSIDE.match(path) or ".." in re.split(r"[\\/]", path):
            add(
                f"{where}.path",
                "path_outside_root",
                f"{path!r} must be a relative path inside the server's root directory",
            )
        elif not path.endswith(".ipynb"):
            add(f"{where}.path", "not_a_notebook", f"{path!r} is not a notebook (.ipynb)")

    def run(self, job: Job, hooks: Hooks = NO_HOOKS) -> Any:
        from .notebook_task import run_notebook

        value, output = run_notebook(job, stop=hooks.stop, progress=hooks.progress, logs=hooks.logs)
        return Produced(value, output)


KINDS: dict[str, TaskKind] = {k.name: k for k in (PythonKind(), BranchKind(), NotebookKind())}
TASK_TYPES = tuple(KINDS)
