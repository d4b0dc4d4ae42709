"""The live execution widget, and its text twin for frontends without widgets.

``ExecutionWidget(execution_id)`` is an ipywidgets ``VBox``: a header (workflow,
execution id, status, elapsed time), a progress bar, the DAG drawn as SVG and coloured
by status (``graph.py``), and a row per task (status colour, duration, attempts, the
error with its traceback one click away; a running notebook task's row adds a small bar
and ``cell k/n`` from its ``task_progress`` events). A mapped task (SPEC 11) is one node
and one row showing its instances' ``done/total`` and counts by status, in the Lab
panel's words (``graph.mapped_text``); its instances are listed in the panel, not here.

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
from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Any

import ipywidgets
import traitlets

from ..events import Event, EventBus
from ..model import TERMINAL_EXECUTION, TERMINAL_TASK
from ..serialize import event_json, execution_json
from ..store import Store
from .graph import STATUS_COLORS, histogram, mapped_text, render_svg

__all__ = ["ExecutionWidget", "render_text"]

log = logging.getLogger(__name__)

BAR_STYLES = {
    "running": "info",
    "completed": "success",
    "failed": "danger",
    "cancelled": "warning",
    "pending": "",
}
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


def shown_status(task: dict[str, Any]) -> str:
    """The status a task is drawn with: ``retrying`` for a pending task between attempts."""
    return "retrying" if task.get("retrying") and task["status"] == "pending" else task["status"]


def cell_progress(task: dict[str, Any]) -> tuple[int, int] | None:
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


def is_mapped(task: dict[str, Any]) -> bool:
    """A mapped task: by its definition (``map_over``) or by its counts."""
    return bool(task.get("map_over")) or task.get("mapped") is not None


def render_text(execution: dict[str, Any], tasks: list[dict[str, Any]], elapsed: float) -> str:
    """The execution as plain text: a header line and a line per task."""
    done = sum(t["status"] in TERMINAL_TASK for t in tasks)
    lines = [
        f"{execution.get('workflowId')}  {execution.get('id')}  {execution.get('status')}  "
        f"{fmt_seconds(elapsed)}  {done}/{len(tasks)} tasks"
    ]
    width = min(30, max((len(t["name"]) for t in tasks), default=4))
    for t in tasks[:MAX_ROWS]:
        status = shown_status(t)
        extra = []
        if is_mapped(t):
            extra.append(mapped_text(t.get("mapped"), t.get("map_over")))
        cells = cell_progress(t)
        if cells is not None:
            extra.append(f"{_text_bar(*cells)} cell {cells[0]}/{cells[1]}")
        if t.get("duration") is not None:
            extra.append(fmt_seconds(t["duration"]))
        if t.get("attempts", 0) > 1:
            extra.append(f"{t['attempts']} attempts")
        if t.get("reason") and status in ("skipped", "cancelled", "failed"):
            extra.append(f"({t['reason']})")
        if t.get("error") and status in ("failed", "retrying"):
            extra.append(str(t["error"]).splitlines()[0][:120])
        if t.get("abandoned"):
            extra.append(ABANDONED_NOTE.format(attempt=t["abandoned"]))
        lines.append(
            f"  {SYMBOLS.get(status, '?')} {t['name']:<{width}}  {status:<9}  " + "  ".join(extra)
        )
    if len(tasks) > MAX_ROWS:
        lines.append(f"  ... and {len(tasks) - MAX_ROWS} more tasks")
    return "\n".join(line.rstrip() for line in lines)


def _badge(status: str) -> str:
    fill, stroke, ink = STATUS_COLORS.get(status, STATUS_COLORS["pending"])
    return (
        f'<span class="taskflow-status" style="background:{fill};color:{ink};border:1px solid '
        f'{stroke};border-radius:10px;padding:1px 8px;font-weight:600">{escape(status)}</span>'
    )


def _cells_html(task: dict[str, Any]) -> str:
    """A running notebook task's small bar and ``cell k/n``; empty for any other task."""
    cells = cell_progress(task)
    if cells is None:
        return ""
    done, total = cells
    fill, stroke, _ = STATUS_COLORS["running"]
    return (
        f'<span class="taskflow-cells" role="progressbar" aria-valuemin="0" '
        f'aria-valuemax="{total}" aria-valuenow="{done}" style="display:inline-flex;'
        'align-items:center;gap:4px;margin-left:6px;white-space:nowrap">'
        f'<span style="display:inline-block;width:60px;height:6px;background:{fill};'
        f'border:1px solid {stroke};border-radius:3px;overflow:hidden">'
        f'<span style="display:block;height:100%;width:{100 * done / total:.0f}%;'
        f'background:{stroke}"></span></span>cell {done}/{total}</span>'
    )


def _mapped_html(task: dict[str, Any]) -> str:
    """A mapped task's small histogram of its instances and their counts in words."""
    if not is_mapped(task):
        return ""
    counts = task.get("mapped")
    segments = "".join(
        f'<span data-segment="{status}" style="display:inline-block;height:100%;'
        f'width:{width:.2f}px;background:{STATUS_COLORS[status][1]}"></span>'
        for status, _, _, width in histogram(counts, 80)
    )
    return (
        f'<span class="taskflow-mapped" style="display:inline-flex;align-items:center;'
        'gap:4px;margin-left:6px;white-space:nowrap">'
        '<span style="display:inline-flex;width:80px;height:6px;border-radius:3px;'
        f'overflow:hidden;background:#eaeef2">{segments}</span>'
        f"{escape(mapped_text(counts, task.get('map_over')))}</span>"
    )


def _abandoned_html(task: dict[str, Any]) -> str:
    if not task.get("abandoned"):
        return ""
    note = escape(ABANDONED_NOTE.format(attempt=task["abandoned"]))
    return f'<div class="taskflow-abandoned" style="color:#9a6700">&#9888; {note}</div>'


def _error_html(task: dict[str, Any]) -> str:
    """The first line of a task's error; the full error on hover, the traceback on click."""
    if not task.get("error"):
        return ""
    first = str(task["error"]).splitlines()[0]
    short = escape(first[:100] + ("\u2026" if len(first) > 100 else ""))
    detail = escape(task.get("traceback") or str(task["error"]))
    return (
        f'<details title="{escape(str(task["error"]))}"><summary style="cursor:pointer;'
        f'color:#cf222e">{short}</summary><pre style="white-space:pre-wrap;font-size:11px;'
        f'margin:2px 0">{detail}</pre></details>'
    )


class ExecutionWidget(ipywidgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A live view of one execution (see the module docstring)."""

    execution_id = traitlets.Unicode(help="the execution shown")
    workflow = traitlets.Unicode(help="its workflow id")
    status = traitlets.Unicode("pending", help="the execution status")
    elapsed = traitlets.Float(0.0, help="seconds since the execution started (to its end)")
    tasks: traitlets.List[dict[str, Any]] = traitlets.List(
        help="one dict per task: name, status, attempts, duration, error, reason, retrying, "
        "dependencies, traceback, progress (a notebook task's last {done, total} of cells), "
        "map_over and mapped (a mapped task's instances by status, with total)"
    )
    parent_id = traitlets.Unicode(None, allow_none=True, help="the execution this one retries")

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
        self.header = ipywidgets.HTML()
        self.progress = ipywidgets.IntProgress(
            value=0, min=0, max=1, layout=ipywidgets.Layout(width="100%")
        )
        self.graph = ipywidgets.HTML(layout=ipywidgets.Layout(overflow="auto", max_height="420px"))
        self.table = ipywidgets.HTML(layout=ipywidgets.Layout(overflow="auto", max_height="480px"))
        super().__init__(children=[self.header, self.progress, self.graph, self.table], **kwargs)
        self.add_class("taskflow-execution")
        self._store = store
        self.min_interval, self.poll_interval = min_interval, poll_interval
        self._lock = threading.RLock()
        self._wake, self._stop = threading.Event(), threading.Event()
        self._finished = threading.Event()
        self._exec: dict[str, Any] = {}
        self._state: dict[str, dict[str, Any]] = {}
        self._order: list[tuple[str, list[str]]] = []
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
        """Reload the execution from the database and redraw it."""
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

    def text(self) -> str:
        """The current state as plain text (what terminals show)."""
        with self._lock:
            return render_text({**self._exec, "status": self.status}, self.tasks, self.elapsed)

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
        self._order = [(t.name, list(t.dependencies)) for t in wf.tasks]
        before, self._state = self._state, {}
        deps = dict(self._order)
        maps = {t.name: t.map_over for t in wf.tasks}
        for task in execution["tasks"]:
            retrying = task["status"] == "pending" and bool(task.get("error"))
            old = before.get(task["name"], {})
            # progress is only in events: a reload keeps it while the same attempt runs
            same = (old.get("status"), old.get("attempts")) == ("running", task["attempts"])
            self._state[task["name"]] = {
                "name": task["name"],
                "status": task["status"],
                "attempts": task["attempts"],
                "duration": task["duration"],
                "error": task["error"],
                "reason": task["reason"],
                "traceback": task.get("traceback"),
                "retrying": retrying,
                "dependencies": deps[task["name"]],
                "progress": old.get("progress") if same and task["status"] == "running" else None,
                "map_over": maps[task["name"]],
                "mapped": task.get("mapped"),
            }
        self._exec = {
            k: execution.get(k)
            for k in (
                "id",
                "workflowId",
                "status",
                "startTime",
                "endTime",
                "parentId",
                "reason",
                "params",
            )
        }
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
        """Update one task from one event; True when a traceback is worth fetching."""
        task["attempts"] = event.get("attempt") or task["attempts"]
        if kind == "task_started":
            task.update(status="running", duration=None, retrying=False, progress=None)
        elif kind == "task_progress":
            task["progress"] = event.get("progress")
        elif kind == "task_retrying":
            task.update(status="pending", retrying=True, error=event.get("error"))
        elif kind == "task_completed":
            task.update(
                status="completed",
                duration=event.get("duration"),
                error=None,
                traceback=None,
                retrying=False,
            )
        elif kind == "task_failed":
            task.update(
                status="failed",
                duration=event.get("duration"),
                retrying=False,
                error=event.get("error"),
                reason=event.get("reason"),
            )
            return True
        elif kind == "task_skipped":
            task.update(status="skipped", reason=event.get("reason"))
        return False

    # -- drawing -----------------------------------------------------------------------
    def _push(self) -> None:
        """Set every trait from the state, as one comm message."""
        live = getattr(self, "_abandoned", {})
        tasks = [{**self._state[name], "abandoned": live.get(name)} for name, _ in self._order]
        status = self._exec.get("status") or "pending"
        elapsed = elapsed_seconds(self._exec.get("startTime"), self._exec.get("endTime"))
        done = sum(t["status"] in TERMINAL_TASK for t in tasks)
        with self.hold_sync(), self.progress.hold_sync():
            self.workflow = self._exec.get("workflowId") or ""
            self.parent_id = self._exec.get("parentId")
            self.status = status
            self.elapsed = round(elapsed, 3)
            self.tasks = tasks
            self.progress.max = max(1, len(tasks))
            self.progress.value = done
            self.progress.bar_style = BAR_STYLES.get(status, "")
            self.progress.description = f"{done}/{len(tasks)}"
            self.header.value = self._header_html(done, len(tasks))
            self.graph.value = render_svg(
                self._order, {t["name"]: {**t, "status": shown_status(t)} for t in tasks}
            )
            self.table.value = self._table_html(tasks)

    def _header_html(self, done: int, total: int) -> str:
        status = self._exec.get("status") or "pending"
        parts = [
            _badge(status),
            f"<b>{escape(self.workflow)}</b>",
            f"<code>{escape(self.execution_id)}</code>",
            f'<span class="taskflow-elapsed">{escape(fmt_seconds(self.elapsed))}</span>',
            f"<span>{done}/{total} tasks</span>",
        ]
        if self._exec.get("parentId"):
            parts.append(f"<span>retry of <code>{escape(self._exec['parentId'])}</code></span>")
        if self._exec.get("reason"):
            parts.append(f"<span>({escape(str(self._exec['reason']))})</span>")
        return (
            f'<div class="taskflow-header" data-status="{escape(status)}" style="display:flex;'
            "flex-wrap:wrap;gap:10px;align-items:center;font-family:var(--jp-ui-font-family);"
            'font-size:13px">' + "".join(parts) + "</div>"
        )

    @staticmethod
    def _table_html(tasks: list[dict[str, Any]]) -> str:
        cell = "padding:3px 10px;border-bottom:1px solid var(--jp-border-color2, #eaeef2)"
        rows = []
        for t in tasks[:MAX_ROWS]:
            status = shown_status(t)
            fill, stroke, _ = STATUS_COLORS.get(status, STATUS_COLORS["pending"])
            note = t.get("reason") if status != "failed" else None
            dot = (
                f'<span style="display:inline-block;width:10px;height:10px;border-radius:50%;'
                f'background:{fill};border:1px solid {stroke}"></span>'
            )
            values = [
                ("left", dot),
                ("left", f"<b>{escape(t['name'])}</b>"),
                (
                    "left",
                    escape(status)
                    + (f" ({escape(note)})" if note else "")
                    + _cells_html(t)
                    + _mapped_html(t),
                ),
                ("right", str(t.get("attempts") or 0)),
                ("right", escape(fmt_seconds(t.get("duration")))),
                ("left", _error_html(t) + _abandoned_html(t)),
            ]
            rows.append(
                f'<tr class="taskflow-task" data-task="{escape(t["name"])}" '
                f'data-status="{escape(status)}">'
                + "".join(
                    f'<td style="{cell};text-align:{align}">{value}</td>' for align, value in values
                )
                + "</tr>"
            )
        if len(tasks) > MAX_ROWS:
            rows.append(
                f'<tr><td colspan="6" style="{cell}">\u2026 and '
                f"{len(tasks) - MAX_ROWS} more tasks</td></tr>"
            )
        head = "".join(
            f'<th style="{cell};text-align:{align}">{title}</th>'
            for title, align in (
                ("", "left"),
                ("task", "left"),
                ("status", "left"),
                ("attempts", "right"),
                ("duration", "right"),
                ("error", "left"),
            )
        )
        return (
            '<table class="taskflow-tasks" style="border-collapse:collapse;font-size:12px;'
            'font-family:var(--jp-ui-font-family)"><thead><tr>'
            + head
            + "</tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
        )

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
            if live != getattr(self, "_abandoned", {}):
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
