"""``%taskflow`` and ``%%taskflow``: the notebook's command line over the Python API.

A thin adapter: every subcommand parses its arguments and calls ``api.py`` or the
session's runner; nothing here holds state. Bad input (an unknown id, an invalid
definition, a typo in an option) prints ONE line to stderr, ``taskflow: error: ...``,
instead of a traceback; the cell itself does not fail, so a notebook that explores
keeps going.

Commands that start or show an execution return its ``Run`` handle, which the notebook
displays as the live widget when the magic is the cell's last line, and which can be
kept: ``run = %taskflow run etl``.
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
from .session import get_session

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
    return root


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
            done = sum(t["status"] in ("completed", "skipped") for t in e["tasks"])
            rows.append(
                [
                    e["id"],
                    e["workflowId"],
                    e["status"],
                    f"{done}/{len(e['tasks'])}",
                    e["startTime"] or e["createdAt"],
                    e["executor"] or "",
                ]
            )
        return _Table(
            ["execution", "workflow", "status", "done", "started", "executor"],
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
        session = get_session()
        definition = session.runner().get_workflow(args.workflow)
        local = [
            t["name"]
            for t in definition.get("tasks", [])
            if (t.get("params") or {}).get("callable") and ":" not in t["params"]["callable"]
        ]
        execution = session.runner().enqueue(args.workflow, params=parse_params(args.param))
        note = ""
        if local:
            note = (
                f"; note: {', '.join(local[:5])} name notebook functions, which the server "
                "cannot run (those tasks will fail)"
            )
        if not _server_running():
            note += "; no Jupyter server is running: it starts when one using this database does"
        print(f"submitted {execution['id']} ({args.workflow}) to the Jupyter server{note}")
        return Run(execution["id"])

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


def _server_running() -> bool:
    try:
        from jupyter_server.serverapp import list_running_servers

        return any(True for _ in list_running_servers())
    except Exception:  # no runtime dir, unreadable files: we only use it for a hint
        return False


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext pytaskflow_jupyter``)."""
    ipython.register_magics(TaskFlowMagics)
