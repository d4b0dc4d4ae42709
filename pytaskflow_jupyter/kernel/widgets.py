"""The live execution widget, and its text twin for frontends without widgets.

``ExecutionWidget(execution_id)`` is an ipywidgets ``DOMWidget`` whose front end is
shipped by the labextension (``labextension/src/widget.ts``): the view is the Lab
panel's own execution view, drawn by the same TypeScript (model, DAG layout, counts,
segmented status bar, task rows), so the notebook and the panel show the same thing.
This module only keeps two synced traits current: ``execution``, the execution as
``GET /executions/{id}`` shows it (without results and attempt history, which the view
never draws; a task between attempts has the panel's ``retrying`` status, and a running
notebook task its last ``progress``), and ``definition``, the workflow revision the
execution runs (id, name, revision, tasks with their type, dependencies, params and
``map_over``). Where no widget front end renders it (a terminal, plain Python, nbconvert
text) the execution shows as text (``render_text``), with the panel's counts words.

How it stays live
-----------------
It reads the shared database only, so an execution run by this kernel, by the Jupyter
server or by another kernel looks the same: a snapshot (``Store.snapshot``), then every
stored event after the snapshot's ``seq`` (``Store.events``), applied in order. A
follower thread polls every ``poll_interval`` seconds and is woken at once by the
kernel's ``EventBus`` for executions running here. Pushes to the frontend are
throttled (at most one per ``min_interval``, default 0.2 s, so <= 5 per second), sent
under ``hold_sync`` as one message, and come from that one thread, which never
displays or prints (output routing from threads is unreliable; trait updates are not).
When the execution ends, the final state is reloaded from the database and pushed, and
the thread stops. An instance's event (it carries ``map_index``) is not its mapped task's
own state change: it only marks the counts stale, and they are read again from the
task's row (one query per batch of events, however many instances ran). Displaying a
``Run`` again, or after a kernel restart, builds a new widget from the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import ipywidgets
import traitlets

from .._version import __version__
from ..events import Event, EventBus
from ..model import TERMINAL_EXECUTION
from ..serialize import event_json, execution_json
from ..store import Store

__all__ = ["ExecutionWidget", "counts_text", "mapped_text", "render_text"]

log = logging.getLogger(__name__)

#: the labextension's widget module (labextension/package.json: name, version)
FRONTEND_MODULE = "pytaskflow-jupyter"
FRONTEND_VERSION = f"^{__version__}"

SYMBOLS = {
    "pending": "\u00b7",
    "retrying": "\u21bb",
    "running": "\u25b6",
    "completed": "\u2714",
    "failed": "\u2718",
    "skipped": "\u21b7",
    "cancelled": "\u25a0",
}
MAX_ROWS = 200
#: what the view never draws: left out of every push (a result can be megabytes)
HEAVY = ("result", "history")
#: the statuses of the counts line, in the panel's order (labextension model.ts)
COUNTED = ("completed", "skipped", "failed", "cancelled", "running", "pending")


def elapsed_seconds(start: str | None, end: str | None) -> float:
    if not start:
        return 0.0
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if not end:
        return max(0.0, time.time() - begin.timestamp())
    # exact for millisecond stamps (a float subtraction of epochs gives 0.000999...)
    finish = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return max(0.0, (finish - begin).total_seconds())


def fmt_seconds(value: float | None) -> str:
    """``<1ms``, ``12ms``, ``4.25s``, ``42.1s``, ``3m 05s``, ``1h 02m``; empty for None."""
    if value is None:
        return ""
    if value < 0.001:
        return "<1ms"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 10:
        return f"{value:.2f}s"
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def shown_status(task: Mapping[str, Any]) -> str:
    """The status a task is drawn with: ``retrying`` for a pending task between attempts
    (a REST snapshot says ``pending`` with the last attempt's error)."""
    status = str(task["status"])
    if status == "pending" and (task.get("retrying") or task.get("error")):
        return "retrying"
    return status


def counts_text(tasks: list[dict[str, Any]]) -> str:
    """``6/8 completed · 2 skipped`` (the panel's ``countsText``): what ran and succeeded
    of all, then every other status that has a task; a retrying task counts as running."""
    if not tasks:
        return "no tasks"
    counts = dict.fromkeys(COUNTED, 0)
    for t in tasks:
        status = shown_status(t)
        status = "running" if status == "retrying" else status
        counts[status if status in counts else "pending"] += 1
    parts = [f"{counts['completed']}/{len(tasks)} completed"]
    parts += [
        f"{counts[s]} {s}" for s in ("skipped", "failed", "cancelled", "running") if counts[s]
    ]
    return " \u00b7 ".join(parts)


def mapped_text(counts: Mapping[str, int] | None, upstream: str | None = None) -> str:
    """``742/1000 completed · 3 failed · 20 running · 235 pending`` (the panel's words);
    ``waiting for <upstream>`` before the task expanded, ``no instances`` for ``[]``."""
    if not counts:
        return f"waiting for {upstream}" if upstream else "not expanded yet"
    if not counts.get("total"):
        return "no instances"
    parts = [f"{counts.get('completed', 0)}/{counts['total']} completed"]
    parts += [
        f"{counts[s]} {s}" for s in ("failed", "cancelled", "running", "pending") if counts.get(s)
    ]
    return " \u00b7 ".join(parts)


def cell_progress(task: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(done, total)`` cells of a running notebook task, from its last ``task_progress``
    event; None for any other task (a finished one's count says nothing more)."""
    progress = task.get("progress")
    if task["status"] != "running" or not isinstance(progress, dict):
        return None
    total = progress.get("total")
    if not isinstance(total, int) or total <= 0:
        return None
    done = progress.get("done")
    return min(max(done if isinstance(done, int) else 0, 0), total), total


def _text_bar(done: int, total: int, width: int = 8) -> str:
    filled = round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


ABANDON_WATCH = 1.5  # s after the end to watch for an attempt left running (ThreadExecutor)
ABANDONED_NOTE = "attempt {attempt} given up on but still running in its thread (blocked in C)"


def _abandoned_attempt(task: Mapping[str, Any]) -> int | None:
    gone = task.get("abandoned")
    return gone.get("attempt") if isinstance(gone, dict) else gone


def render_text(
    execution: Mapping[str, Any],
    tasks: list[dict[str, Any]],
    elapsed: float,
    map_over: Mapping[str, str | None] | None = None,
) -> str:
    """The execution as plain text: a header line (the panel's counts words) and a line
    per task. ``map_over``: a mapped task's upstream, by task (for ``waiting for ...``)."""
    ups = map_over or {}
    lines = [
        f"{execution.get('workflowId')}  {execution.get('id')}  {execution.get('status')}  "
        f"{fmt_seconds(elapsed)}  {counts_text(tasks)}"
    ]
    width = min(30, max((len(t["name"]) for t in tasks), default=4))
    for t in tasks[:MAX_ROWS]:
        status = shown_status(t)
        extra = []
        upstream = ups.get(t["name"]) or t.get("map_over")
        if upstream or "mapped" in t:
            extra.append(mapped_text(t.get("mapped"), upstream))
        cells = cell_progress(t)
        if cells is not None:
            extra.append(f"{_text_bar(*cells)} cell {cells[0]}/{cells[1]}")
        if t.get("duration") is not None:
            extra.append(fmt_seconds(t["duration"]))
        if (t.get("attempts") or 0) > 1:
            extra.append(f"{t['attempts']} attempts")
        if t.get("reason") and status in ("skipped", "cancelled", "failed"):
            extra.append(f"({t['reason']})")
        if t.get("error") and status in ("failed", "retrying"):
            extra.append(str(t["error"]).splitlines()[0][:120])
        if _abandoned_attempt(t):
            extra.append(ABANDONED_NOTE.format(attempt=_abandoned_attempt(t)))
        lines.append(
            f"  {SYMBOLS.get(status, '?')} {t['name']:<{width}}  {status:<9}  " + "  ".join(extra)
        )
    if len(tasks) > MAX_ROWS:
        lines.append(f"  ... and {len(tasks) - MAX_ROWS} more tasks")
    return "\n".join(line.rstrip() for line in lines)


class ExecutionWidget(ipywidgets.DOMWidget):  # type: ignore[misc]  # ipywidgets is untyped
    """A live view of one execution (see the module docstring)."""

    _model_name = traitlets.Unicode("ExecutionModel").tag(sync=True)
    _view_name = traitlets.Unicode("ExecutionView").tag(sync=True)
    _model_module = traitlets.Unicode(FRONTEND_MODULE).tag(sync=True)
    _view_module = traitlets.Unicode(FRONTEND_MODULE).tag(sync=True)
    _model_module_version = traitlets.Unicode(FRONTEND_VERSION).tag(sync=True)
    _view_module_version = traitlets.Unicode(FRONTEND_VERSION).tag(sync=True)

    execution_id = traitlets.Unicode(help="the execution shown").tag(sync=True)
    execution: traitlets.Dict[str, Any] = traitlets.Dict(
        help="the execution as GET /executions/{id} shows it, without results and "
        "attempt history; tasks between attempts are `retrying`, a running notebook "
        "task has its last `progress`"
    ).tag(sync=True)
    definition: traitlets.Dict[str, Any] = traitlets.Dict(
        help="the workflow revision it runs: id, name, revision, tasks (name, type, "
        "dependencies, params, map_over)"
    ).tag(sync=True)
    status = traitlets.Unicode("pending", help="the execution status (not synced)")

    def __init__(
        self,
        execution_id: str,
        *,
        store: Store | None = None,
        bus: EventBus | None = None,
        follow: bool = True,
        min_interval: float = 0.2,
        poll_interval: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if store is None:
            from .session import get_session

            session = get_session()
            store, bus = session.store, bus or session.bus
        super().__init__(**kwargs)
        self._store = store
        self.min_interval, self.poll_interval = min_interval, poll_interval
        self._lock = threading.RLock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._finished = threading.Event()
        self._exec: dict[str, Any] = {}
        self._state: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []
        self._abandoned: dict[str, int] = {}
        self._seq = 0
        self.execution_id = execution_id
        self.refresh()
        self._unsubscribe: Callable[[], None] | None = None
        if follow and self.status not in TERMINAL_EXECUTION:
            if bus is not None:
                self._unsubscribe = bus.subscribe(self._on_events)
            threading.Thread(
                target=self._follow, daemon=True, name=f"taskflow-widget-{execution_id}"
            ).start()
        else:
            self._finished.set()

    # -- public ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the execution from the database and push it."""
        with self._lock:
            self._load()
            self._push()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the widget shows the execution's final state; False on timeout."""
        return self._finished.wait(timeout)

    @property
    def following(self) -> bool:
        """True while the widget still follows a running execution."""
        return not self._finished.is_set()

    @property
    def tasks(self) -> list[dict[str, Any]]:
        """The tasks as last pushed, in definition order."""
        return list(self.execution.get("tasks", []))

    @property
    def workflow(self) -> str:
        """The workflow id."""
        return str(self.execution.get("workflowId") or "")

    @property
    def parent_id(self) -> str | None:
        """The execution this one retries."""
        return self.execution.get("parentId")

    @property
    def elapsed(self) -> float:
        """Seconds since the execution started (to its end)."""
        ex = self.execution
        return elapsed_seconds(ex.get("startTime"), ex.get("endTime"))

    def text(self) -> str:
        """The current state as plain text (what terminals show)."""
        with self._lock:
            ups = {t["name"]: t.get("map_over") for t in self.definition.get("tasks", [])}
            return render_text(self.execution, self.tasks, self.elapsed, ups)

    def close(self) -> None:
        """Stop following and close the widget."""
        self._stop.set()
        self._wake.set()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = self.text()
        return bundle

    def __repr__(self) -> str:
        return f"<ExecutionWidget {self.execution_id} {self.workflow}: {self.status}>"

    # -- reading the database ------------------------------------------------------------
    def _load(self) -> None:
        """Snapshot: the execution and its definition; events after ``_seq`` follow."""
        seq, row, runs = self._store.snapshot(self.execution_id)  # events after seq follow
        wf = self._store.load_workflow(row["workflow_id"], row["revision"])
        execution = execution_json(row, wf, runs, detail=True)
        if not self.definition or self.definition.get("revision") != row["revision"]:
            self.definition = {
                "id": wf.id,
                "name": wf.name,
                "revision": row["revision"],
                "tasks": [
                    {
                        "name": t.name,
                        "type": t.type,
                        "dependencies": list(t.dependencies),
                        "params": t.params,
                        "map_over": t.map_over,
                    }
                    for t in wf.tasks
                ],
            }
        before, self._state = self._state, {}
        for task in execution.pop("tasks"):
            old = before.get(task["name"], {})
            # progress is only in events: a reload keeps it while the same attempt runs
            same = (old.get("status"), old.get("attempts")) == ("running", task["attempts"])
            keep = same and task["status"] == "running"
            state = {k: v for k, v in task.items() if k not in HEAVY}
            state.update(status=shown_status(task), progress=old.get("progress") if keep else None)
            self._state[task["name"]] = state
        self._order = [t.name for t in wf.tasks]
        self._exec = execution
        self._seq = max(self._seq, seq)

    def _pull(self) -> bool:
        """Apply the events stored since the last look; True when anything changed."""
        changed, terminal, failed, counts = False, False, False, False
        while True:
            batch = self._store.events(self._seq, execution=self.execution_id)
            for event in map(event_json, batch):
                self._seq = event["seq"]
                changed = True
                kind = event["event"]
                if kind.startswith("execution_"):
                    self._exec["status"] = event["status"]
                    if kind == "execution_started":
                        self._exec["startTime"] = self._exec.get("startTime") or event["timestamp"]
                    else:
                        terminal = True
                elif event.get("map_index") is not None:
                    counts = True  # an instance's: its task's counts moved, not its status
                elif event.get("task") in self._state:
                    failed |= self._apply(self._state[event["task"]], kind, event)
            if len(batch) < 1000:
                break
        if terminal:
            self._load()  # exact final state (cancelled tasks emit no event of their own)
        elif failed or counts:
            for name, row in self._store.task_runs(self.execution_id).items():
                if name in self._state:
                    if failed:
                        self._state[name]["traceback"] = row.traceback
                    if row.mapped is not None:
                        self._state[name]["mapped"] = row.mapped
        return changed

    @staticmethod
    def _apply(task: dict[str, Any], kind: str, event: dict[str, Any]) -> bool:
        """Update one task from one event (as the panel's model does: model.ts
        ``taskFromEvent``); True when a traceback is worth fetching."""
        task["attempts"] = event.get("attempt") or task["attempts"]
        at = event.get("timestamp")
        if kind == "task_started":
            task.update(
                status="running", startTime=at, endTime=None, duration=None, error=None,
                progress=None,
            )  # fmt: skip
        elif kind == "task_progress":
            task["progress"] = event.get("progress")
        elif kind == "task_retrying":
            task.update(status="retrying", error=event.get("error"))
        elif kind == "task_completed":
            task.update(
                status="completed", endTime=at, duration=event.get("duration"), error=None,
                traceback=None,
            )  # fmt: skip
        elif kind == "task_failed":
            task.update(
                status="failed", endTime=at, duration=event.get("duration"),
                error=event.get("error"), reason=event.get("reason"),
            )  # fmt: skip
            return True
        elif kind == "task_skipped":
            task.update(status="skipped", reason=event.get("reason"))
        return False

    # -- pushing -------------------------------------------------------------------------
    def _push(self) -> None:
        """Set the execution trait from the state, as one comm message."""
        live = self._abandoned
        tasks = []
        for name in self._order:
            task = self._state[name]
            if name in live:
                task = {**task, "abandoned": {"attempt": live[name], "since": None}}
            tasks.append(dict(task))  # a copy: a trait compares new values with old
        execution = {**self._exec, "status": self._exec.get("status") or "pending"}
        execution["tasks"] = tasks
        with self.hold_sync():
            self.execution = execution
            self.status = execution["status"]

    # -- following -----------------------------------------------------------------------
    def _on_events(self, events: list[Event]) -> None:
        """Bus subscriber (engine thread): only wakes the follower."""
        if any(e.execution_id == self.execution_id for e in events):
            self._wake.set()

    def _follow_abandoned(self) -> None:
        """After the end: while an attempt this kernel's thread executor gave up on still
        runs (code blocked in C), say so, and say when it ended (``live_abandoned``)."""
        from .session import live_abandoned

        deadline = time.monotonic() + ABANDON_WATCH
        while not self._stop.is_set():
            live = live_abandoned(self.execution_id)
            if live != self._abandoned:
                with self._lock:
                    self._abandoned = live
                    self._push()
            if not live and time.monotonic() > deadline:
                return
            self._stop.wait(self.poll_interval)

    def _follow(self) -> None:
        last_push = time.monotonic()
        try:
            while not self._stop.is_set():
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                with self._lock:
                    changed = self._pull()
                terminal = self._exec.get("status") in TERMINAL_EXECUTION
                if not changed and not terminal and time.monotonic() - last_push < 1.0:
                    continue  # nothing new: still redraw about once a second (elapsed time)
                pause = self.min_interval - (time.monotonic() - last_push)
                if pause > 0 and self._stop.wait(pause):
                    break
                with self._lock:
                    self._pull()
                    self._push()
                last_push = time.monotonic()
                if self._exec.get("status") in TERMINAL_EXECUTION:
                    break
            self._finished.set()  # the execution ended (wait() returns)
            self._follow_abandoned()
        except Exception:  # a broken database must not kill the kernel; the widget just stops
            log.exception("widget for %s stopped", self.execution_id)
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
            self._store.close()  # this thread's connection
            self._finished.set()
