"""The Python API: build a workflow from notebook functions, run it, hold the run.

::

    wf = Workflow("etl")

    @wf.task
    def extract():
        return [1, 2, 3]

    @wf.task(depends_on=extract, retries=2, timeout=60)
    def transform(extract):            # a parameter named like a dependency gets its result
        return [x * 10 for x in extract]

    run = wf.run()                     # returns at once; the run goes on in the background
    run                                # the live widget (text outside a widget frontend)
    run.wait().results                 # {"extract": [1, 2, 3], "transform": [10, 20, 30]}

A ``Workflow`` is only a builder of the definition that ``POST /workflows`` takes: each
decorated function becomes a python (or branch) task whose ``callable`` is
``"<workflow id>.<task name>"``, registered in this kernel (``session.py``). Running it
registers the definition in the shared database, so the server, ``/ws`` and JupyterLab
see the execution as they see any other.

Reusing finished results
------------------------
``run.retry()`` resumes from failure: completed tasks keep their results, the rest run
again with the functions as they are now. ``run.retry(rerun=["transform"])`` also reruns
the named tasks and everything downstream of them. ``wf.run(reuse=run)`` starts from
the current definition and reuses every completed task of ``run`` that is unchanged:
same definition entry, same function source (as seen by this kernel when ``run``
started), and only unchanged dependencies. So after editing one function, only that
task and its downstream tasks run again.

On the server: snapshots and schedules
--------------------------------------
The server cannot call a function of this kernel, so ``wf.register()``,
``wf.submit()`` and ``wf.schedule()`` snapshot every notebook function of the
workflow (``snapshots.py``: pickled by value, with the globals and helpers it uses),
save the snapshots, and register a definition whose tasks carry ``params.snapshot``;
the server (a schedule's slot, the panel's Run button, ``POST
/workflows/{id}/executions``) then runs them after this kernel is gone. A function
that cannot be snapshotted is refused at that call, naming it and the object.

``wf.run()`` runs in this kernel (the live functions, never the snapshots) and
snapshots what it can, so that the latest revision stays runnable by the server: with
snapshots when every function can be taken, else without them (kernel-only), unless
the workflow has a schedule, where it refuses as ``register()`` does. So the latest
revision of a scheduled workflow always carries snapshots.

The builder keeps its schedule (``wf.schedule(...)``) for every later registration;
until it sets one (or ``wf.unschedule()`` removes it) a registration keeps the
schedule stored for the workflow (``%taskflow schedule``, say) instead of dropping it.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..compare import rows as compare_rows
from ..errors import InvalidInput, NotFound
from ..events import Event
from ..model import TERMINAL_EXECUTION, TaskStatus
from ..model import Workflow as WorkflowModel
from ..validation import derive_id, parse_workflow
from .remote import WorkflowSchedule, with_snapshots
from .session import current_shell, find_function, get_session, recall, register_function
from .widgets import ExecutionWidget, elapsed_seconds, render_text

__all__ = ["Run", "Workflow", "WorkflowSchedule"]

Json = dict[str, Any]
TaskRef = str | Callable[..., Any]
_UNSET: Any = object()  # the builder never set (nor removed) a schedule
_code_hashes: dict[str, dict[str, str]] = {}  # execution id -> task -> hash of its code
_TASK_FIELDS = ("retries", "retry_delay", "retry_backoff", "timeout", "trigger_rule", "map_over")


def code_hash(fn: Callable[..., Any]) -> str:
    """A fingerprint of a function's code: its source when known, else its bytecode."""
    target = getattr(fn, "__wrapped_task__", fn)
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        code = getattr(target, "__code__", None)
        text = repr((code.co_code, code.co_consts, code.co_names)) if code else repr(target)
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def current_hashes(wf: WorkflowModel) -> dict[str, str]:
    """Code fingerprints of the notebook functions the tasks of ``wf`` name, as now."""
    out = {}
    for spec in wf.tasks:
        ref = spec.params.get("callable")
        if isinstance(ref, str) and ":" not in ref and (fn := find_function(ref)) is not None:
            out[spec.name] = code_hash(fn)
    return out


def _code_changed(parent_id: str, hashes: dict[str, str]) -> Callable[[str], bool]:
    """Whether a task's notebook function changed since ``parent_id`` ran (as seen by
    this kernel; unknown counts as unchanged)."""
    old = _code_hashes.get(parent_id)

    def changed(name: str) -> bool:
        return old is not None and name in hashes and old.get(name) != hashes[name]

    return changed


def _record_hashes(
    execution_id: str, now: dict[str, str], reused: Iterable[str], parent_id: str | None
) -> None:
    """Remember which code produced each result: a reused result keeps its parent's."""
    old = _code_hashes.get(parent_id or "", {})
    _code_hashes[execution_id] = {**now, **{n: old[n] for n in reused if n in old}}


def _reused(execution: dict[str, Any]) -> list[str]:
    """The tasks of a just-created execution that reuse an earlier result (the only
    ones already completed)."""
    return [t["name"] for t in execution["tasks"] if t["status"] == TaskStatus.COMPLETED]


def _has_widget_frontend() -> bool:
    shell = current_shell()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _execution_id(ref: Run | str) -> str:
    return ref.id if isinstance(ref, Run) else str(ref)


class Workflow:
    """A workflow built from notebook functions (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        id: str | None = None,
        description: str | None = None,
        version: str | int | None = None,
        tags: list[str] | None = None,
        owner: str | None = None,
        max_parallel: int | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.id = id or derive_id(name)
        self._header = {
            k: v
            for k, v in {
                "description": description,
                "version": version,
                "tags": tags,
                "owner": owner,
                "max_parallel": max_parallel,
                "parameters": parameters,
            }.items()
            if v is not None
        }
        self._tasks: dict[str, dict[str, Any]] = {}
        self._functions: dict[str, Callable[..., Any]] = {}
        self._schedule: Json | None = _UNSET

    # -- building ------------------------------------------------------------------------
    def task(
        self,
        fn: Callable[..., Any] | str | None = None,
        *,
        name: str | None = None,
        depends_on: TaskRef | Iterable[TaskRef] = (),
        kwargs: dict[str, Any] | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        retry_backoff: float | None = None,
        timeout: float | None = None,
        trigger_rule: str | None = None,
        map_over: TaskRef | None = None,
    ) -> Any:
        """Decorator: the function becomes a python task (named after it unless ``name``).

        Use bare (``@wf.task``) or with options. The function is returned unchanged, so
        it can still be called directly. Defining a task again replaces it.
        ``map_over``: a task (function or name) returning a list; this one then runs once
        per element, which it receives as ``item`` (and its index as ``map_index``), and
        its result is the list of their results (SPEC 11). It depends on that task.
        """
        fields = {
            "retries": retries,
            "retry_delay": retry_delay,
            "retry_backoff": retry_backoff,
            "timeout": timeout,
            "trigger_rule": trigger_rule,
            "map_over": map_over,
        }
        return self._decorator("python", fn, name, depends_on, kwargs, fields, {})

    def branch(
        self,
        fn: Callable[..., Any] | str | None = None,
        *,
        name: str | None = None,
        depends_on: TaskRef | Iterable[TaskRef] = (),
        kwargs: dict[str, Any] | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        trigger_rule: str | None = None,
    ) -> Any:
        """Decorator: the function becomes a branch task. It returns the name (or list of
        names) of the direct downstream tasks to run; the others are skipped."""
        fields = {"retries": retries, "timeout": timeout, "trigger_rule": trigger_rule}
        return self._decorator("branch", fn, name, depends_on, kwargs, fields, {})

    def add(
        self,
        name: str,
        *,
        type: str = "python",
        depends_on: TaskRef | Iterable[TaskRef] = (),
        params: dict[str, Any] | None = None,
        **fields: Any,
    ) -> Workflow:
        """Add a task given as the definition spells it (``params`` with ``code``,
        ``callable: "module:function"``, ``next``, a notebook ``path``...); returns the
        workflow, so calls chain."""
        unknown = sorted(set(fields) - set(_TASK_FIELDS))
        if unknown:
            raise InvalidInput(f"unknown task option(s) {unknown}; allowed: {list(_TASK_FIELDS)}")
        self._put(name, type, depends_on, dict(params or {}), fields)
        self._functions.pop(name, None)
        return self

    def notebook(
        self,
        name: str,
        path: str,
        *,
        parameters: dict[str, Any] | None = None,
        depends_on: TaskRef | Iterable[TaskRef] = (),
        kernel: str | None = None,
        **fields: Any,
    ) -> Workflow:
        """Add a notebook task (SPEC section 9): ``path`` relative to the server's root
        (or this kernel's working directory without a server), ``parameters`` injected
        after its ``parameters`` cell, ``upstream`` beside them; returns the workflow.
        With ``map_over=<task>`` the notebook runs once per element of that task's list,
        injected as the parameter ``item`` (and ``map_index``)."""
        params: dict[str, Any] = {"path": path}
        if parameters is not None:
            params["parameters"] = dict(parameters)
        if kernel is not None:
            params["kernel"] = kernel
        return self.add(name, type="notebook", depends_on=depends_on, params=params, **fields)

    def _decorator(
        self,
        kind: str,
        fn: Any,
        name: str | None,
        depends_on: Any,
        kwargs: dict[str, Any] | None,
        fields: dict[str, Any],
        params: dict[str, Any],
    ) -> Any:
        if isinstance(fn, str):  # @wf.task("name")
            name, fn = fn, None

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            task_name = name or getattr(func, "__name__", "")
            if not task_name or task_name == "<lambda>":
                raise InvalidInput("a task needs a name: pass name=... for a lambda")
            key = f"{self.id}.{task_name}"
            call_params = {**params, "callable": key}
            if kwargs:
                call_params["kwargs"] = dict(kwargs)
            self._put(task_name, kind, depends_on, call_params, fields)
            declared = self._header.get("parameters")
            if isinstance(declared, dict) and declared:  # the names a run may pass are known
                try:
                    self._check_signature(task_name, func, declared)
                except InvalidInput:
                    del self._tasks[task_name]
                    raise
            self._functions[task_name] = func
            register_function(key, func)
            return func

        return decorate(fn) if fn is not None else decorate

    def _put(
        self, name: str, kind: str, depends_on: Any, params: dict[str, Any], fields: dict[str, Any]
    ) -> None:
        task: dict[str, Any] = {
            "name": name,
            "type": kind,
            "params": params,
            "dependencies": self._dep_names(depends_on),
        }
        task.update((k, v) for k, v in fields.items() if v is not None)
        if task.get("map_over") is not None:  # a function or a name; a dependency too
            over = task["map_over"] = self._dep_names(task["map_over"])[0]
            if over not in task["dependencies"]:
                task["dependencies"].append(over)
        self._tasks[name] = task

    def _dep_names(self, depends_on: Any) -> list[str]:
        items = (
            [depends_on]
            if isinstance(depends_on, str) or callable(depends_on)
            else list(depends_on or ())
        )
        names = []
        for item in items:
            if isinstance(item, str):
                names.append(item)
            else:
                found = [n for n, f in self._functions.items() if f is item]
                names.append(found[0] if found else getattr(item, "__name__", repr(item)))
        return names

    # -- the definition ------------------------------------------------------------------
    @property
    def definition(self) -> dict[str, Any]:
        """The definition, as ``POST /workflows`` takes it (with the builder's schedule;
        snapshots are added when it is registered)."""
        definition = {
            "id": self.id,
            "name": self.name,
            **self._header,
            "tasks": [dict(t) for t in self._tasks.values()],
        }
        if isinstance(self._schedule, dict):
            definition["schedule"] = dict(self._schedule)
        return definition

    @property
    def tasks(self) -> list[str]:
        """Task names in definition order."""
        return list(self._tasks)

    def validate(self) -> WorkflowModel:
        """Check the definition (raises ``ValidationError`` naming every problem)."""
        return parse_workflow(self.definition, get_session().store.limits)

    def register(self) -> dict[str, Any]:
        """Store the definition in the shared database, with a snapshot of each notebook
        function (so the server can run it); returns it with its ``revision``.
        ``InvalidInput`` (``not_snapshottable``) names a function that cannot be
        snapshotted and the object it uses."""
        return get_session().runner().register(self._prepared())

    def submit(
        self,
        params: dict[str, Any] | None = None,
        *,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Run:
        """Register with snapshots (as ``register()``) and hand an execution to the
        Jupyter server, which runs it even after this kernel is gone; returns its
        ``Run`` (followed from the database)."""
        runner = get_session().runner()
        saved = runner.register(self._prepared(params=params))
        execution = runner.enqueue(self.id, revision=saved["revision"], params=params)
        run = Run(execution["id"])
        return run.wait(timeout) if wait else run

    def schedule(
        self,
        cron: str | None = None,
        *,
        every: float | None = None,
        timezone: str | None = None,
        catchup: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> WorkflowSchedule:
        """Run the workflow on the server on a schedule (SPEC section 12): exactly one of
        ``cron`` (5 fields, in ``timezone``, default UTC) or ``every`` (seconds);
        ``catchup`` ``none`` (default), ``latest`` or ``all``; ``params`` for each
        scheduled execution. Registers at once, with snapshots (as ``register()``); the
        builder keeps the schedule for later ``run()``/``register()``. Returns where the
        schedule stands (``next_run_time``...)."""
        spec = {
            k: v
            for k, v in {
                "cron": cron,
                "every": every,
                "timezone": timezone,
                "catchup": catchup,
                "params": params,
            }.items()
            if v is not None
        }
        saved = get_session().runner().register(self._prepared(spec))
        self._schedule = spec  # only once valid: a refused schedule leaves the builder as it was
        return WorkflowSchedule(saved)

    def unschedule(self) -> WorkflowSchedule:
        """Remove the schedule (a new revision without one; later registrations of this
        builder have none either)."""
        saved = get_session().runner().register(self._prepared(None, strict=False))
        self._schedule = None
        return WorkflowSchedule(saved)

    def pause(self) -> WorkflowSchedule:
        """Pause the schedule (``Conflict`` ``no_schedule`` without one)."""
        return WorkflowSchedule(get_session().runner().pause(self.id, True))

    def resume(self) -> WorkflowSchedule:
        """Resume the schedule from now: the slots that fell while paused never fire."""
        return WorkflowSchedule(get_session().runner().pause(self.id, False))

    def _check_signature(self, task: str, fn: Callable[..., Any], given: Iterable[str]) -> None:
        """Refuse a function with a parameter nothing will fill (issue 15, item 14): a
        required one that names neither a dependency, a kwarg, an execution parameter
        (``given``) nor ``upstream``/``context``; a positional-only one without default."""
        try:
            parameters = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return
        spec = self._tasks[task]
        sources = {
            "dependencies": set(spec.get("dependencies", ())),
            "kwargs": set((spec.get("params") or {}).get("kwargs") or {}),
            "execution parameters": set(given),
        }
        known = set().union(*sources.values()) | {"upstream", "context"}
        if spec.get("map_over") is not None:  # an instance gets its element and index
            known |= {"item", "map_index"}
        for p in parameters:
            if p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.kind is p.POSITIONAL_ONLY or p.name not in known:
                have = "; ".join(
                    f"{kind}: {', '.join(sorted(names))}"
                    for kind, names in sources.items()
                    if names
                )
                raise InvalidInput(
                    f"task {task!r}: {getattr(fn, '__name__', task)}() needs {p.name!r}, which "
                    + (
                        "is positional-only (tasks are called with keywords)"
                        if p.kind is p.POSITIONAL_ONLY
                        else "names no dependency, kwarg, execution parameter, 'upstream' or "
                        "'context'"
                    )
                    + (f" ({have})" if have else "")
                    + f"; give it a default, depend on a task named {p.name!r}, pass "
                    f"kwargs={{{p.name!r}: ...}}, or declare it: Workflow(..., parameters="
                    f"{{{p.name!r}: ...}})",
                    code="unfilled_parameter",
                )

    def _check_signatures(self, *given: Iterable[str] | None) -> None:
        names = {n for g in given for n in (g or ())}
        for task, fn in self._functions.items():
            if task in self._tasks:
                self._check_signature(task, fn, names)

    def _prepared(
        self, schedule: Any = _UNSET, *, strict: bool = True, params: Json | None = None
    ) -> Json:
        """The definition to register: with ``schedule`` (default: the builder's, or
        the stored one if the builder never set one) and with snapshots. ``strict=False``
        (``run()``): without snapshots when one cannot be taken, unless scheduled.
        Every function's parameters must be filled by something (``_check_signature``;
        ``params``: those the execution about to start is given)."""
        definition = self.definition
        if schedule is _UNSET:
            schedule = self._schedule
        if schedule is _UNSET:
            schedule = self._stored_schedule()
        definition.pop("schedule", None)
        if schedule is not None:
            definition["schedule"] = schedule
        self._check_signatures(
            definition.get("parameters"),
            params,
            (schedule or {}).get("params") if isinstance(schedule, dict) else None,
        )
        try:
            return with_snapshots(definition, self._functions)
        except InvalidInput as exc:
            if (
                strict
                or schedule is not None
                or exc.code not in ("not_snapshottable", "no_snapshot")
            ):
                raise
            return definition

    def _stored_schedule(self) -> Json | None:
        try:
            schedule: Json | None = get_session().runner().get_workflow(self.id)["schedule"]
        except NotFound:
            return None
        return schedule

    # -- running -------------------------------------------------------------------------
    def run(
        self,
        params: dict[str, Any] | None = None,
        *,
        executor: str = "thread",
        reuse: Run | str | None = None,
        rerun: Iterable[str] = (),
        wait: bool = False,
        timeout: float | None = None,
    ) -> Run:
        """Register the definition and start an execution in this kernel; returns its
        ``Run`` at once (or when it has ended, with ``wait=True``).

        ``params`` are execution parameters (passed to functions that name them);
        ``executor`` is ``"thread"`` (default) or ``"process"``; ``reuse`` an earlier run
        whose unchanged completed tasks are not run again (``rerun`` forces some).
        The revision carries snapshots when every function can be taken (see the
        module docstring); it runs the live functions of this kernel either way.
        """
        session = get_session()
        runner = session.runner(executor)
        saved = runner.register(self._prepared(strict=False, params=params))
        model = session.store.load_workflow(self.id, saved["revision"])
        hashes = current_hashes(model)
        parent = _execution_id(reuse) if reuse is not None else None
        execution = runner.start(
            self.id,
            revision=saved["revision"],
            params=params,
            reuse=parent,
            rerun=rerun,
            changed=None if parent is None else _code_changed(parent, hashes),
        )
        _record_hashes(execution["id"], hashes, _reused(execution), parent)
        run = Run(execution["id"])
        return run.wait(timeout) if wait else run

    def runs(self, limit: int = 20) -> list[Run]:
        """The executions of this workflow, newest first."""
        page, _ = get_session().runner().list_executions(workflow_id=self.id, limit=limit)
        return [Run(e["id"]) for e in page]

    # -- display -------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<Workflow {self.id!r}: {len(self._tasks)} tasks>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        lines = [repr(self)]
        for t in self._tasks.values():
            deps = f" <- {', '.join(t['dependencies'])}" if t["dependencies"] else ""
            lines.append(f"  {t['name']} ({t['type']}){deps}")
        p.text("\n".join(lines))


class Run:
    """A handle on one execution: of this kernel, of the server or of another kernel."""

    def __init__(self, execution_id: str) -> None:
        self.id = execution_id
        row = get_session().store.execution_row(execution_id)  # NotFound for a bad id
        self.workflow_id: str = row["workflow_id"]
        self._widget: ExecutionWidget | None = None

    @classmethod
    def last(cls, workflow_id: str | None = None) -> Run:
        """The newest execution (of ``workflow_id``)."""
        page, _ = get_session().runner().list_executions(workflow_id=workflow_id, limit=1)
        if not page:
            raise NotFound("no execution yet" + (f" of {workflow_id!r}" if workflow_id else ""))
        return cls(page[0]["id"])

    # -- state ---------------------------------------------------------------------------
    @property
    def execution(self) -> dict[str, Any]:
        """The execution as ``GET /executions/{id}`` shows it (tasks with results)."""
        return get_session().runner().get(self.id, detail=True)

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``completed``, ``failed`` or ``cancelled``."""
        return get_session().runner().status(self.id)

    @property
    def done(self) -> bool:
        """True once the execution has ended."""
        return self.status in TERMINAL_EXECUTION

    @property
    def tasks(self) -> dict[str, str]:
        """Each task's status."""
        return {t["name"]: t["status"] for t in self.execution["tasks"]}

    @property
    def results(self) -> dict[str, Any]:
        """Results of the completed tasks: the Python objects when this kernel computed
        them (or reused them), else what the database holds (JSON, or a summary)."""
        out = {}
        for task in self.execution["tasks"]:
            if task["status"] == TaskStatus.COMPLETED:
                found, value = recall(self.id, task["name"])
                out[task["name"]] = value if found else task["result"]
        return out

    @property
    def errors(self) -> dict[str, str]:
        """The error of each failed task."""
        return {t["name"]: t["error"] for t in self.execution["tasks"] if t["status"] == "failed"}

    def logs(self, task: str, map_index: int | None = None) -> list[dict[str, Any]]:
        """Captured stdout/stderr of each attempt of ``task`` (of its instance
        ``map_index`` for a mapped task)."""
        return get_session().runner().get_logs(self.id, task, map_index)

    def instances(self, task: str, status: str | None = None) -> list[dict[str, Any]]:
        """The instances of a mapped task in index order (only those in ``status``), as
        ``GET /executions/{id}/tasks/{task}/instances`` shows them, every page."""
        runner, out, cursor = get_session().runner(), [], 0
        while True:
            page = runner.instances(self.id, task, status=status, cursor=cursor, limit=1000)
            out.extend(page["instances"])
            if page["nextCursor"] is None:
                return out
            cursor = page["nextCursor"]

    @staticmethod
    def compare(a: Run | str, b: Run | str) -> Any:
        """Two executions of one workflow side by side (``GET /executions/{a}/compare/{b}``):
        a pandas ``DataFrame`` (index: what, name, field; columns ``a``, ``b``, ``differs``)
        when pandas is installed, else the list of those rows as dicts."""
        comparison = get_session().runner().compare(_execution_id(a), _execution_id(b))
        table = compare_rows(comparison)
        try:
            import pandas as pd
        except ImportError:
            return table
        return pd.DataFrame(table).set_index(["what", "name", "field"])

    # -- control -------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> Run:
        """Block until the execution has ended (or ``timeout`` seconds); returns the run."""
        session = get_session()
        ended = threading.Event()

        def on_events(events: list[Event]) -> None:
            if any(e.execution_id == self.id and e.task is None for e in events):
                ended.set()

        unsubscribe = session.bus.subscribe(on_events)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while session.runner().status(self.id) not in TERMINAL_EXECUTION:
                left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                if left <= 0:
                    break
                ended.wait(left)  # woken by this kernel's engine; polls for other owners
                ended.clear()
        finally:
            unsubscribe()
        return self

    def cancel(self) -> Run:
        """Cancel the execution (409 ``Conflict`` when it has already ended)."""
        get_session().cancel(self.id)
        return self

    def retry(
        self,
        rerun: Iterable[str] = (),
        *,
        executor: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Run:
        """A new execution in this kernel that reuses the completed tasks' results and
        runs the rest (and the ``rerun`` tasks and their downstream tasks) again."""
        session = get_session()
        row = session.store.execution_row(self.id)
        kind = executor or (
            row["executor"] if row["executor"] in ("thread", "process") else "thread"
        )
        runner = session.runner(kind)
        model = session.store.load_workflow(row["workflow_id"], row["revision"])
        execution = runner.retry(self.id, rerun=rerun)
        _record_hashes(execution["id"], current_hashes(model), _reused(execution), self.id)
        run = Run(execution["id"])
        return run.wait(timeout) if wait else run

    # -- display -------------------------------------------------------------------------
    def widget(self) -> ExecutionWidget:
        """The live widget of this execution (one per run; a new one once closed)."""
        if self._widget is None or self._widget.comm is None:
            self._widget = ExecutionWidget(self.id)
        return self._widget

    def text(self) -> str:
        """The execution's state as plain text."""
        ex = get_session().runner().get(self.id, detail=False)
        return render_text(ex, ex["tasks"], elapsed_seconds(ex["startTime"], ex["endTime"]))

    def __repr__(self) -> str:
        return f"<Run {self.id} of {self.workflow_id!r}: {self.status}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if _has_widget_frontend():
            return self.widget()._repr_mimebundle_()
        return {"text/plain": self.text()}
