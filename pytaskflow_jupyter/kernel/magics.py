"""``%taskflow`` and ``%%taskflow``: the notebook's command line over the Python API.

A thin adapter: every subcommand parses its arguments and calls ``api.py`` or the
session's runner; nothing here holds state. Bad input (an unknown id, an invalid
definition, a typo in an option) prints ONE line to stderr, ``taskflow: error: ...``,
instead of a traceback; the cell itself does not fail, so a notebook that explores
keeps going.

Commands that start or show an execution return its ``Run`` handle, which the notebook
displays as the live widget when the magic is the cell's last line, and which can be
kept: ``run = %taskflow run etl``.

What the server runs (``submit``, ``schedule``) must not need this kernel: a task that
names a notebook function runs from its snapshot (``remote.with_snapshots``). A registered
definition keeps the snapshots it has; a task without one is snapshotted from this
kernel's function of that name, or the command is refused, saying to register the
workflow from the notebook that defines it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..errors import TaskFlowError
from ..validation import derive_id
from .api import Run, Workflow
from .remote import notebook_tasks, stored_definition, with_snapshots
from .session import get_session
from .widgets import counts_text

__all__ = ["TaskFlowMagics", "load_ipython_extension"]

# IPython 8 leaves its decorators unannotated (mypy --strict: an untyped decorator), IPython
# 9 annotates them: typed here once, for both
_line_cell_magic: Callable[[Callable[..., Any]], Callable[..., Any]] = line_cell_magic

HELP = """\
%taskflow list                                  registered workflows
%taskflow run ID [--param k=v ...] [--wait] [--executor thread|process]
                                                run a workflow in this kernel
%taskflow status [EXEC]                         an execution (default: the newest)
%taskflow executions [ID] [--limit N]           executions, newest first
%taskflow cancel EXEC                           cancel an execution
%taskflow retry EXEC [--rerun TASK ...] [--wait] rerun what did not complete
%taskflow logs EXEC TASK                        captured stdout/stderr of a task
%taskflow submit ID [--param k=v ...]           run a workflow on the Jupyter server
                                                (notebook functions run from snapshots)
%taskflow schedule ID (--cron EXPR | --every S) [--timezone TZ] [--catchup POLICY]
                      [--param k=v ...]         run it on the server on a schedule
%taskflow pause ID                              pause its schedule
%taskflow resume ID                             resume it (missed slots do not fire)
%taskflow schedules                             scheduled workflows, next and last runs
%taskflow run-notebook PATH [--param k=v ...] [--wait] [--timeout S]
                                                run one notebook as a one-task workflow
%taskflow help                                  this text

%%taskflow [--run] [--wait] [--param k=v ...] [--executor thread|process]
<a workflow definition in YAML or JSON, as POST /workflows takes it; a python task's
 `callable: name` (no ':') names a function of this notebook>
                                                register it (and run it with --run)"""


class UsageError(Exception):
    """A command line that does not parse."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting the kernel."""

    def error(self, message: str) -> Any:
        raise UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise UsageError(message or "see %taskflow help")


def _parser() -> _Parser:
    root = _Parser(prog="%taskflow", add_help=False)
    sub = root.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("list", add_help=False)
    sub.add_parser("help", add_help=False)
    run = sub.add_parser("run", add_help=False)
    run.add_argument("workflow")
    _run_options(run)
    status = sub.add_parser("status", add_help=False)
    status.add_argument("execution", nargs="?")
    execs = sub.add_parser("executions", add_help=False)
    execs.add_argument("workflow", nargs="?")
    execs.add_argument("--limit", type=int, default=20)
    sub.add_parser("cancel", add_help=False).add_argument("execution")
    retry = sub.add_parser("retry", add_help=False)
    retry.add_argument("execution")
    retry.add_argument("--rerun", nargs="+", default=[], metavar="TASK")
    retry.add_argument("--wait", action="store_true")
    logs = sub.add_parser("logs", add_help=False)
    logs.add_argument("execution")
    logs.add_argument("task")
    notebook = sub.add_parser("run-notebook", add_help=False)
    notebook.add_argument("path")
    notebook.add_argument("--param", action="append", default=[], metavar="K=V")
    notebook.add_argument("--wait", action="store_true")
    notebook.add_argument("--timeout", type=float, default=None)
    submit = sub.add_parser("submit", add_help=False)
    submit.add_argument("workflow")
    submit.add_argument("--param", action="append", default=[], metavar="K=V")
    schedule = sub.add_parser("schedule", add_help=False)
    schedule.add_argument("workflow")
    when = schedule.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", metavar="EXPR")
    when.add_argument("--every", type=_seconds, metavar="S")
    schedule.add_argument("--timezone", metavar="TZ")
    schedule.add_argument("--catchup", metavar="POLICY")
    schedule.add_argument("--param", action="append", default=[], metavar="K=V")
    sub.add_parser("pause", add_help=False).add_argument("workflow")
    sub.add_parser("resume", add_help=False).add_argument("workflow")
    sub.add_parser("schedules", add_help=False)
    return root


def _seconds(text: str) -> int | float:
    """``--every 90`` is the integer 90 (shown as such), ``--every 0.5`` a float."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _cell_parser() -> _Parser:
    cell = _Parser(prog="%%taskflow", add_help=False)
    cell.add_argument("--run", action="store_true")
    _run_options(cell)
    return cell


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--param", action="append", default=[], metavar="K=V")
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--executor", default="thread")


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["n=3", "name=x", 'cfg={"a": 1}']`` -> ``{"n": 3, "name": "x", "cfg": {"a": 1}}``:
    a value that reads as JSON is taken as JSON, anything else as a string."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r} must look like key=value")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


class _Table:
    """Rows shown as an HTML table in notebooks and aligned text elsewhere."""

    def __init__(self, columns: list[str], rows: list[list[Any]], empty: str) -> None:
        self.columns, self.rows, self.empty = columns, rows, empty

    def __repr__(self) -> str:
        if not self.rows:
            return self.empty
        cells = [self.columns, *[["" if v is None else str(v) for v in r] for r in self.rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        return "\n".join(
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
        )

    def _repr_html_(self) -> str:
        from html import escape

        if not self.rows:
            return f"<i>{escape(self.empty)}</i>"
        head = "".join(f"<th style='text-align:left'>{escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td style='text-align:left'>{escape(str(v or ''))}</td>" for v in row)
            + "</tr>"
            for row in self.rows
        )
        return f"<table class='taskflow-list'><tr>{head}</tr>{body}</table>"


@magics_class
class TaskFlowMagics(Magics):
    """``%taskflow`` (line) and ``%%taskflow`` (cell)."""

    @_line_cell_magic
    def taskflow(self, line: str, cell: str | None = None) -> Any:
        """Run ``%taskflow help`` for the commands."""
        try:
            if cell is not None:
                return self._cell(line, cell)
            return self._line(line)
        except (TaskFlowError, UsageError, ValueError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            print(f"taskflow: error: {message}", file=sys.stderr)
            return None

    # -- line commands -----------------------------------------------------------------
    def _line(self, line: str) -> Any:
        args = _parser().parse_args(shlex.split(line) or ["help"])
        handler = getattr(self, f"_cmd_{args.command.replace('-', '_')}")
        return handler(args)

    def _cmd_help(self, args: argparse.Namespace) -> None:
        print(HELP)

    def _cmd_list(self, args: argparse.Namespace) -> _Table:
        rows = [
            [w["id"], w.get("name"), w["revision"], len(w.get("tasks", [])), w["updatedAt"]]
            for w in get_session().runner().list_workflows()
        ]
        return _Table(
            ["id", "name", "revision", "tasks", "updated"], rows, "no workflows registered yet"
        )

    def _cmd_run(self, args: argparse.Namespace) -> Run:
        session = get_session()
        runner = session.runner(args.executor)
        execution = runner.start(args.workflow, params=parse_params(args.param))
        run = Run(execution["id"])
        return run.wait() if args.wait else run

    def _cmd_status(self, args: argparse.Namespace) -> Run:
        return Run(args.execution) if args.execution else Run.last()

    def _cmd_executions(self, args: argparse.Namespace) -> _Table:
        runner = get_session().runner()
        if args.workflow:
            runner.get_workflow(args.workflow)  # NotFound names an unknown id
        page, _ = runner.list_executions(workflow_id=args.workflow, limit=max(1, args.limit))
        rows = []
        for e in page:
            rows.append(
                [
                    e["id"],
                    e["workflowId"],
                    e["status"],
                    counts_text(e["tasks"]),  # the panel's and the widget's words
                    e["startTime"] or e["createdAt"],
                    e["executor"] or "",
                ]
            )
        return _Table(
            ["execution", "workflow", "status", "tasks", "started", "executor"],
            rows,
            "no executions yet",
        )

    def _cmd_cancel(self, args: argparse.Namespace) -> None:
        run = Run(args.execution).cancel()
        print(f"cancel requested for {run.id} ({run.workflow_id}): {run.status}")

    def _cmd_retry(self, args: argparse.Namespace) -> Run:
        run = Run(args.execution).retry(rerun=args.rerun)
        return run.wait() if args.wait else run

    def _cmd_logs(self, args: argparse.Namespace) -> None:
        attempts = Run(args.execution).logs(args.task)
        if not attempts:
            print(f"{args.task}: nothing captured")
        for entry in attempts:
            print(f"--- {args.task}, attempt {entry['attempt']} ---")
            if entry["stdout"]:
                print(entry["stdout"].rstrip("\n"))
            if entry["stderr"]:
                print(entry["stderr"].rstrip("\n"), file=sys.stderr)

    def _cmd_run_notebook(self, args: argparse.Namespace) -> Run:
        """One notebook as a one-task workflow (id ``notebook_<path>``): its parameters
        from ``--param``, run in this kernel's runner (a fresh kernel for the notebook)."""
        stem = args.path.rsplit("/", 1)[-1].removesuffix(".ipynb") or "notebook"
        wf = Workflow(f"notebook {args.path}", id=derive_id(f"notebook {args.path}"))
        wf.notebook(stem, args.path, parameters=parse_params(args.param), timeout=args.timeout)
        return wf.run(wait=args.wait)

    def _cmd_submit(self, args: argparse.Namespace) -> Run:
        runner = get_session().runner()
        revision, note = _runnable_on_server(args.workflow)
        execution = runner.enqueue(
            args.workflow, revision=revision, params=parse_params(args.param)
        )
        if not _server_running():
            note += "; no Jupyter server is running: it starts when one using this database does"
        print(f"submitted {execution['id']} ({args.workflow}) to the Jupyter server{note}")
        return Run(execution["id"])

    # -- schedules -----------------------------------------------------------------------
    def _cmd_schedule(self, args: argparse.Namespace) -> None:
        """Schedule a registered workflow: its definition again, with the schedule and
        a snapshot for each notebook function (kept, or taken from this kernel)."""
        runner = get_session().runner()
        definition, _ = stored_definition(args.workflow)
        given = {
            "cron": args.cron,
            "every": args.every,
            "timezone": args.timezone,
            "catchup": args.catchup,
            "params": parse_params(args.param) if args.param else None,
        }
        definition["schedule"] = {k: v for k, v in given.items() if v is not None}
        saved = runner.register(with_snapshots(definition))
        print(
            f"scheduled {saved['id']!r} (revision {saved['revision']}): "
            f"{saved['scheduleText']}; "
            + (
                "paused (%taskflow resume to go on)"
                if saved["paused"]
                else f"next run {saved['nextRunTime']}"
            )
        )

    def _cmd_pause(self, args: argparse.Namespace) -> None:
        saved = get_session().runner().pause(args.workflow, True)
        print(f"paused the schedule of {saved['id']!r} ({saved['scheduleText']})")

    def _cmd_resume(self, args: argparse.Namespace) -> None:
        saved = get_session().runner().pause(args.workflow, False)
        print(
            f"resumed the schedule of {saved['id']!r} ({saved['scheduleText']}); "
            f"next run {saved['nextRunTime']}"
        )

    def _cmd_schedules(self, args: argparse.Namespace) -> _Table:
        rows = []
        for w in get_session().runner().list_workflows():
            if w.get("schedule") is None:
                continue
            last = w.get("lastScheduledRun")
            rows.append(
                [
                    w["id"],
                    w["scheduleText"],
                    "yes" if w["paused"] else "no",
                    w["nextRunTime"] or "",
                    f"{last['scheduledFor']} {last['status']}" if last else "",
                ]
            )
        return _Table(
            ["id", "schedule", "paused", "next run", "last scheduled run"],
            rows,
            "no scheduled workflows",
        )

    # -- the cell --------------------------------------------------------------------------
    def _cell(self, line: str, cell: str) -> Run | None:
        import yaml

        args = _cell_parser().parse_args(shlex.split(line))
        try:
            definition = yaml.safe_load(cell)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UsageError(f"the cell is not valid YAML or JSON{where}: {problem}") from exc
        session = get_session()
        runner = session.runner(args.executor)
        saved = runner.register(definition)
        print(
            f"registered workflow {saved['id']!r} (revision {saved['revision']}, "
            f"{len(saved.get('tasks', []))} tasks)"
        )
        if not args.run:
            return None
        execution = runner.start(
            saved["id"], revision=saved["revision"], params=parse_params(args.param)
        )
        run = Run(execution["id"])
        return run.wait() if args.wait else run


def _runnable_on_server(workflow_id: str) -> tuple[int, str]:
    """The revision of ``workflow_id`` the server can run, and a note for the user:
    the latest one when every notebook-function task has a snapshot, else a new one
    with the functions of this kernel snapshotted (refused, naming the task, when this
    kernel does not define one)."""
    definition, revision = stored_definition(workflow_id)
    missing = [t["name"] for _, t in notebook_tasks(definition) if not t["params"].get("snapshot")]
    if not missing:
        return revision, ""
    saved = get_session().runner().register(with_snapshots(definition))
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return saved["revision"], (
        f"; snapshotted the notebook function(s) of {shown} from this kernel "
        f"(revision {saved['revision']})"
    )


def _server_running() -> bool:
    try:
        from jupyter_server.serverapp import list_running_servers

        return any(True for _ in list_running_servers())
    except Exception:  # no runtime dir, unreadable files: we only use it for a hint
        return False


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext pytaskflow_jupyter``)."""
    ipython.register_magics(TaskFlowMagics)
