"""``TaskFlowApp``: the Jupyter server extension and the composition root of the server.

It builds the one ``Store``, ``EventBus``, executor, ``Runner`` and ``EventHub`` of the
server from its traits (``c.TaskFlowApp.<trait>`` in ``jupyter_server_config.py`` or
``--TaskFlowApp.<trait>=`` on the command line) and mounts the REST routes and ``/ws``
under the server's ``base_url``.

Lifecycle:

* ``initialize_settings`` (before the loop serves anything): open the database (creating
  and migrating it), build the executor and the runner, export ``PYTASKFLOW_DB`` so the
  kernels this server starts share the file.
* ``_start_jupyter_server_extension`` (on the running loop): start the event hub, resume
  the executions a dead previous server owned (``Runner.recover``, off the loop), and
  adopt every second the executions kernels enqueued for the server (``%taskflow submit``),
  and fire the schedules' due slots four times a second (``Runner.fire_due``).
* ``stop_extension``: stop those tasks, close the WebSocket clients, stop the runner's
  heartbeat (executions still running are resumed by the next server) and the executor.

All SQLite and task work runs in ``self.pool`` (``await app.run(fn, ...)``); the loop
only parses HTTP and moves bytes.

``jupyter taskflow`` (``main``) starts a Jupyter server on port 8000 with this extension;
every ServerApp option applies (``--port``, ``--IdentityProvider.token``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from jupyter_server.extension.application import ExtensionApp
from tornado.web import RequestHandler
from traitlets import (
    Bool,
    CaselessStrEnum,
    Dict,
    Float,
    Integer,
    List,
    TraitError,
    Unicode,
    default,
    validate,
)

from .._version import __version__
from ..events import EventBus
from ..executors import EXECUTORS, make_executor
from ..runner import Runner
from ..snapshots import SnapshotResolver
from ..store import Store, default_db_path
from ..validation import Limits
from .handlers import (
    CancelHandler,
    CompareHandler,
    ExecutionHandler,
    ExecutionsHandler,
    InstancesHandler,
    LogsHandler,
    NotebookParametersHandler,
    OpenAPIHandler,
    PauseHandler,
    ResumeHandler,
    RetryHandler,
    RevisionsHandler,
    WorkflowExecutionsHandler,
    WorkflowHandler,
    WorkflowsHandler,
)
from .headers import install as install_header_limit
from .webhook import WEBHOOK_EVENTS, Webhook
from .websocket import EventHub, EventsWebSocket

__all__ = ["TaskFlowApp", "default_handlers", "main"]

DEFAULT_PORT = 8000
P = ParamSpec("P")
T = TypeVar("T")


def default_handlers() -> list[tuple[str, type[RequestHandler]]]:
    """The route table: patterns relative to ``base_url`` (the ExtensionApp prefixes it)."""
    ident = r"(?P<{}>[^/]+)"
    wid, eid = ident.format("workflow_id"), ident.format("execution_id")
    return [
        (r"/workflows", WorkflowsHandler),
        (rf"/workflows/{wid}", WorkflowHandler),
        (rf"/workflows/{wid}/executions", WorkflowExecutionsHandler),
        (rf"/workflows/{wid}/revisions", RevisionsHandler),
        (rf"/workflows/{wid}/schedule/pause", PauseHandler),
        (rf"/workflows/{wid}/schedule/resume", ResumeHandler),
        (r"/executions", ExecutionsHandler),
        (rf"/executions/{eid}", ExecutionHandler),
        (rf"/executions/{eid}/cancel", CancelHandler),
        (rf"/executions/{eid}/retry", RetryHandler),
        (rf"/executions/{eid}/compare/{ident.format('other_id')}", CompareHandler),
        (rf"/executions/{eid}/tasks/{ident.format('task')}/logs", LogsHandler),
        (rf"/executions/{eid}/tasks/{ident.format('task')}/instances", InstancesHandler),
        (r"/taskflow/openapi.json", OpenAPIHandler),
        (r"/taskflow/notebooks/parameters", NotebookParametersHandler),
        (r"/ws", EventsWebSocket),
    ]


class TaskFlowApp(ExtensionApp):
    """PyTaskFlow's REST API and ``/ws`` on the Jupyter server."""

    name = "taskflow"
    description = "PyTaskFlow: workflow (DAG) orchestration on a Jupyter server"
    version = __version__
    extension_url = "/workflows"
    load_other_extensions = True
    # Only applied when started as `jupyter taskflow` (see _jupyter_server_config).
    serverapp_config = {"port": DEFAULT_PORT, "open_browser": False}

    # -- traits ----------------------------------------------------------------------------
    db_path = Unicode(
        help="SQLite database file shared by the server and its kernels. Default: "
        "$PYTASKFLOW_DB, else <jupyter data dir>/pytaskflow/taskflow.db.",
    ).tag(config=True)
    db_synchronous = CaselessStrEnum(
        ["NORMAL", "FULL"],
        "NORMAL",
        help="SQLite `synchronous` pragma. NORMAL survives a crash of the process; FULL "
        "also survives a power loss, at the cost of an fsync per commit.",
    ).tag(config=True)
    db_threads = Integer(
        8,
        help="Worker threads for database work and request decoding (never the loop).",
    ).tag(config=True)
    executor = Unicode(
        "process",
        help="Default executor of the server's executions: 'process' (falls back to "
        "'thread' when not available), 'thread', 'inline' or 'dask'.",
    ).tag(config=True)
    workers = Integer(
        0,
        help="Concurrency limit of the executor (0: the executor's default).",
    ).tag(config=True)
    executor_options = Dict(
        help="Extra keyword options of the executor, e.g. {'memory_limit': 2**30} for "
        "'process' (bytes per worker).",
    ).tag(config=True)
    dask_address = Unicode(
        "",
        help="Dask scheduler address for executor='dask' ('' starts a LocalCluster).",
    ).tag(config=True)
    max_tasks = Integer(100_000, help="Most tasks a definition may have.").tag(config=True)
    max_body_bytes = Integer(
        32 * 1024 * 1024,
        help="Largest request body accepted (413 above it).",
    ).tag(config=True)
    max_json_depth = Integer(
        64,
        help="Deepest nesting of arrays/objects accepted in a body (400 above it).",
    ).tag(config=True)
    runs_dir = Unicode(
        ".taskflow/runs",
        help="Where attempts save files (a notebook task's executed copy, at "
        "<runs_dir>/<execution id>/<task>.ipynb): relative to the server's root directory, "
        "or absolute.",
    ).tag(config=True)
    log_limit = Integer(
        64 * 1024,
        help="Bytes of stdout and of stderr kept per task attempt.",
    ).tag(config=True)
    ws_queue_size = Integer(
        10_000,
        help="Events a /ws client may have waiting to be sent; a client further behind is "
        "closed with code 1013 and reconnects with since=<last seq>.",
    ).tag(config=True)
    ws_poll_interval = Float(
        0.2,
        help="Seconds between reads of the event table for events committed by other "
        "processes (kernels).",
    ).tag(config=True)
    heartbeat_interval = Float(
        5.0,
        help="Seconds between heartbeats of the executions this server owns.",
    ).tag(config=True)
    stale_after = Float(
        30.0,
        help="Seconds without heartbeat after which another process takes over an "
        "execution whose owner is gone.",
    ).tag(config=True)
    adopt_interval = Float(
        1.0,
        help="Seconds between looks for executions kernels enqueued for the server.",
    ).tag(config=True)
    recover_on_start = Bool(
        True,
        help="Resume, at start, the executions a previous server left running, and "
        "keep taking over those of processes that die (a kernel's: owner_lost).",
    ).tag(config=True)
    max_interruptions = Integer(
        3,
        help="Times a task's attempt may be cut short by a shutdown or crash of the server "
        "and rerun without using up a retry; one more and the task fails with reason "
        "'interrupted' (it may be what kills the server).",
    ).tag(config=True)
    webhook_url = Unicode(
        "",
        help="POST a JSON summary of each execution that ends as webhook_events says to this "
        "URL ('' for none): from a thread of its own, retried, never blocking the engine.",
    ).tag(config=True)
    webhook_events = List(
        Unicode(),
        default_value=["failed"],
        help=f"Which ends of an execution the webhook reports: any of {list(WEBHOOK_EVENTS)}.",
    ).tag(config=True)
    webhook_retries = Integer(
        3, help="Times a webhook POST is tried again after a connection error, a 429 or a 5xx."
    ).tag(config=True)
    max_map_length = Integer(
        10_000,
        help="The most instances one mapped task (map_over) may have: a longer list fails "
        "the task with an error that says so.",
    ).tag(config=True)
    scheduler_interval = Float(
        0.25,
        help="Seconds between the scheduler's checks for due slots (each one indexed read "
        "of the schedules table, whatever their number).",
    ).tag(config=True)
    schedule_grace = Float(
        60.0,
        help="A slot the scheduler sees later than this after it fell counts as missed "
        "while no server ran: the schedule's catchup policy decides whether it fires.",
    ).tag(config=True)
    clock = Unicode(
        "",
        help="Where schedules take the time from: '' for the system clock, else "
        "'module:function' naming a function that returns Unix seconds (tests and "
        "simulations drive time with it).",
    ).tag(config=True)
    shutdown_timeout = Float(
        5.0,
        help="Seconds the server waits at shutdown for running executions to finish "
        "(those still running are resumed by the next server).",
    ).tag(config=True)
    gc_thresholds = List(
        Integer(),
        default_value=[50_000, 20, 20],
        help="Python's cyclic GC thresholds for the server's process (gc.set_threshold), "
        "set when the extension starts; [] leaves Python's own (700, 10, 10), whose full "
        "passes stop every thread for 150-200 ms at a time on a server holding a "
        "100,000-task execution.",
    ).tag(config=True)

    @default("db_path")
    def _default_db_path(self) -> str:
        return str(default_db_path())

    @validate(
        "db_threads", "max_tasks", "max_body_bytes", "max_json_depth", "ws_queue_size", "log_limit"
    )
    def _positive(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"TaskFlowApp.{proposal['trait'].name} must be at least 1")
        return int(proposal["value"])

    @validate("gc_thresholds")
    def _gc_thresholds(self, proposal: Any) -> list[int]:
        value = list(proposal["value"])
        if value and (len(value) > 3 or value[0] < 1 or min(value) < 0):
            raise TraitError(
                "TaskFlowApp.gc_thresholds must be [] or up to three numbers, the first at "
                f"least 1 (gc.set_threshold), not {value}"
            )
        return value

    @validate("ws_poll_interval", "heartbeat_interval", "adopt_interval", "scheduler_interval")
    def _positive_float(self, proposal: Any) -> float:
        if not proposal["value"] > 0:
            raise TraitError(f"TaskFlowApp.{proposal['trait'].name} must be > 0")
        return float(proposal["value"])

    @validate("webhook_events")
    def _webhook_events(self, proposal: Any) -> list[str]:
        unknown = sorted(set(proposal["value"]) - set(WEBHOOK_EVENTS))
        if unknown:
            raise TraitError(
                f"TaskFlowApp.webhook_events: unknown {unknown}; allowed: {list(WEBHOOK_EVENTS)}"
            )
        return list(proposal["value"])

    # -- wiring ----------------------------------------------------------------------------
    def _jupyter_server_config(self) -> dict[str, Any]:
        base: Callable[[], dict[str, Any]] = super()._jupyter_server_config  # untyped there
        config = base()
        given = self.serverapp.config.get("ServerApp", {}) if self.serverapp else {}
        if "port" in given or os.environ.get("JUPYTER_PORT"):
            config["ServerApp"].pop("port", None)  # an explicit --port wins over our default
        contents = self.serverapp.config.get("ContentsManager", {}) if self.serverapp else {}
        if "allow_hidden" not in contents:
            # the executed notebooks live under .taskflow/runs (SPEC 9): Lab must be able to
            # open them (an authenticated user runs code anyway; the root still bounds it)
            config.setdefault("ContentsManager", {})["allow_hidden"] = True
        return config

    def initialize_settings(self) -> None:
        path = Path(self.db_path).expanduser().resolve()
        # what kernels started by this server inherit (put back as it was when it stops)
        self._environ = {k: os.environ.get(k) for k in ("PYTASKFLOW_DB", "PYTASKFLOW_ROOT_DIR")}
        os.environ["PYTASKFLOW_DB"] = str(path)  # kernels started by this server share it
        if self.gc_thresholds:
            gc.set_threshold(*self.gc_thresholds)
        self.pool = ThreadPoolExecutor(self.db_threads, thread_name_prefix="taskflow-db")
        limits = Limits(max_tasks=self.max_tasks)
        self.store = Store(
            path, synchronous=self.db_synchronous, limits=limits, clock=self._clock()
        )
        self.bus = EventBus()
        self.task_executor = self._make_executor()
        root_dir = getattr(self.serverapp, "root_dir", None)
        if root_dir:  # kernels started by this server resolve notebook paths from it
            os.environ["PYTASKFLOW_ROOT_DIR"] = str(root_dir)
        self.runner = Runner(
            self.store,
            self.task_executor,
            self.bus,
            limits=limits,
            heartbeat_interval=self.heartbeat_interval,
            stale_after=self.stale_after,
            log_limit=self.log_limit,
            max_interruptions=self.max_interruptions,
            max_map_length=self.max_map_length,
            schedule_grace=self.schedule_grace,
            resolve=SnapshotResolver(self.store.function_snapshot),
            root_dir=root_dir,
            runs_dir=os.path.join(root_dir or os.getcwd(), os.path.expanduser(self.runs_dir)),
            keep_listing=True,
        )
        self.hub = EventHub(
            self.store, self.run, poll_interval=self.ws_poll_interval, queue_size=self.ws_queue_size
        )
        self._unsubscribe = self.bus.subscribe(self.hub.notify)
        self.webhook: Webhook | None = None
        if self.webhook_url:
            self.webhook = Webhook(
                self.webhook_url,
                self.runner.get,
                events=tuple(self.webhook_events),
                retries=self.webhook_retries,
            )
            self._unhook = self.bus.subscribe(self.webhook.notify)
        self._background: list[asyncio.Task[Any]] = []
        self.log.info(
            "PyTaskFlow %s: database %s, executor %s", __version__, path, self.task_executor.name
        )

    def _clock(self) -> Callable[[], float]:
        if not self.clock:
            return time.time
        from ..kinds import resolve_callable

        try:
            return resolve_callable(self.clock)
        except Exception as exc:
            raise TraitError(f"TaskFlowApp.clock = {self.clock!r}: {exc}") from exc

    def _make_executor(self) -> Any:
        kind = self.executor
        if kind == "process" and "process" not in EXECUTORS:
            self.log.warning("PyTaskFlow: the process executor is not available; using threads")
            kind = "thread"
        options: dict[str, Any] = {**self.executor_options, "workers": self.workers or None}
        if kind == "dask":
            options["address"] = self.dask_address or None
        return make_executor(kind, **options)

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers())

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking work (SQLite, validation, encoding) in the pool, never on the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    # -- lifecycle -------------------------------------------------------------------------
    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        # the HTTPServer exists only now (after every extension loaded): a 431 past 64 KiB
        install_header_limit(serverapp.web_app, getattr(serverapp, "http_server", None))
        # everything imported and built so far lives as long as the server: out of the
        # garbage collector's full passes, which otherwise walk it again every time
        gc.collect()
        gc.freeze()
        self.hub.start()
        loops = [
            (self.runner.fire_due, self.scheduler_interval, False, self._fired),
            (self.runner.adopt_submitted, self.adopt_interval, False, self._adopted),
        ]
        if self.recover_on_start:
            # at start, then every stale_after / 2 s: resume what a dead server left
            # running, fail (owner_lost) what a dead kernel left running
            loops.append((self.runner.recover, max(1.0, self.stale_after / 2), True, self._took))
        for fn, interval, at_once, done in loops:
            self._background.append(asyncio.create_task(self._repeat(fn, interval, at_once, done)))

    async def _repeat(
        self,
        fn: Callable[[], list[str]],
        interval: float,
        at_once: bool,
        done: Callable[[list[str]], None],
    ) -> None:
        """Run ``fn`` (off the loop) every ``interval`` seconds, first at once or after
        one interval, and hand what it returns to ``done``; a failure is logged and the
        next round runs as planned. The scheduler (``Runner.fire_due``: exactly once per
        slot across servers, see ``Store.fire``), the adoption of what kernels submitted
        and the take-over of dead owners' executions all run this way."""
        if not at_once:
            await asyncio.sleep(interval)
        while True:
            try:
                result = await self.run(fn)
            except Exception:
                self.log.exception("PyTaskFlow: %s failed", getattr(fn, "__name__", fn))
            else:
                done(result)
            await asyncio.sleep(interval)

    def _fired(self, fired: list[str]) -> None:
        if fired:
            self.log.info("PyTaskFlow: scheduled execution(s) %s", ", ".join(fired))

    def _took(self, taken: list[str]) -> None:
        if taken:
            self.log.info(
                "PyTaskFlow: took over %d execution(s) of dead owners: %s",
                len(taken),
                ", ".join(taken),
            )

    def _adopted(self, adopted: list[str]) -> None:
        from jupyter_server._tz import utcnow

        if adopted:
            self.log.info("PyTaskFlow: running submitted execution(s) %s", ", ".join(adopted))
        if self.runner.active() and self.serverapp is not None:
            # any *_last_activity setting keeps JupyterHub's culler away while we work
            self.serverapp.web_app.settings["taskflow_last_activity"] = utcnow()

    def current_activity(self) -> bool | None:
        return True if self.runner.active() else None

    async def stop_extension(self) -> None:
        if not hasattr(self, "runner"):  # initialize_settings never ran (or failed)
            return
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._background.clear()
        await self.hub.stop()
        self._unsubscribe()
        if self.webhook is not None:
            self._unhook()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._close_blocking)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _close_blocking(self) -> None:
        self.runner.close(wait=self.shutdown_timeout)
        if self.webhook is not None:
            self.webhook.close()
        self.task_executor.shutdown(wait=False)
        self.store.close()
        for key, value in self._environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# `jupyter taskflow` (argv=None: the command line); jupyter_server leaves it untyped
main: Callable[..., None] = TaskFlowApp.launch_instance
launch_new_instance = main

if __name__ == "__main__":
    main()
