"""The Runner: one object that registers workflows and runs executions.

It is the manager that both front ends sit on (the server's handlers, the kernel's
magics and Python API): it validates, stores, starts an ``ExecutionRun`` per execution
in its own thread, keeps a heartbeat for the executions it owns, cancels, retries
("resume from failure") and, at start-up, resumes what it owned before a crash.

Ownership: every execution row names its owner (``host:pid:random:role``) and carries a
heartbeat, renewed only for the executions whose loop is alive in that process. Another
runner may take over an execution whose heartbeat is older than ``stale_after`` seconds
(or whose owner's pid is gone on this host):

* an execution of a dead *server* is resumed by the next server (its tasks are
  importable: ``module:function`` or code); kernels leave it alone, since a kernel always
  has a Jupyter server, which resumes it when it (re)starts;
* an execution of a dead *kernel* (its tasks may be notebook functions that died with
  it) is marked failed with reason ``owner_lost`` by whoever notices first; ``retry``
  resumes it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .engine import ExecutionRun
from .errors import Conflict
from .events import EventBus, make_event
from .executors import Executor
from .model import TERMINAL_EXECUTION, ExecStatus, Reason, TaskStatus, Workflow, utcnow
from .store import Store, TaskRow
from .validation import Limits, parse_workflow

__all__ = ["Runner", "new_execution_id"]

log = logging.getLogger(__name__)

Json = dict[str, Any]
SUBMITTED = "submitted"  # owner of executions waiting for the server to adopt them
ROLES = ("server", "kernel")


def _role(owner: str | None) -> str:
    """``server`` or ``kernel``: the last part of an owner (rows of 0.1 have none)."""
    return "kernel" if (owner or "").endswith(":kernel") else "server"


# Owners of the runners alive in this process (a kernel has one per executor kind).
_LIVE_OWNERS: set[str] = set()


def _owner_alive(owner: str | None) -> bool:
    """False when ``owner`` names a process of this host that no longer exists, or this
    very process under an owner it does not have (a restarted server that got the dead
    one's pid, as in a container where the server is always pid 1)."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only the heartbeat can tell
    if int(pid) == os.getpid():
        return owner in _LIVE_OWNERS
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_execution_id() -> str:
    """``exec_`` + 16 random hex digits."""
    return "exec_" + secrets.token_hex(8)


class Runner:
    """Registers workflows and runs their executions on one executor."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        bus: EventBus | None = None,
        *,
        limits: Limits | None = None,
        resolve: Callable[[str], Callable[..., Any] | None] | None = None,
        heartbeat_interval: float = 5.0,
        stale_after: float = 30.0,
        capture: bool = True,
        log_limit: int = 64 * 1024,
        root_dir: str | None = None,
        fast_noop: bool = True,
        window: int = 2048,
        role: str = "server",
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        self.store, self.executor = store, executor
        self.role = role
        self.bus = bus or EventBus()
        self.limits = limits or store.limits
        self.resolve = resolve
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}:{role}"
        self.heartbeat_interval, self.stale_after = heartbeat_interval, stale_after
        self.run_options: Json = {
            "capture": capture,
            "log_limit": log_limit,
            "root_dir": root_dir,
            "fast_noop": fast_noop,
            "window": window,
        }
        _LIVE_OWNERS.add(self.owner)
        self._runs: dict[str, ExecutionRun] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._heart = threading.Thread(target=self._beat, name="taskflow-heartbeat", daemon=True)
        self._heart.start()

    # -- workflows ----------------------------------------------------------------------
    def register(self, definition: Any) -> Json:
        """Validate and store a definition; returns it with its revision."""
        wf = parse_workflow(definition, self.limits)
        return self.store.get_workflow(wf.id, self.store.save_workflow(wf))

    def submit(
        self, definition: Any, *, idempotency_key: str | None = None, params: Json | None = None
    ) -> Json:
        """Register a definition and start an execution of it (``POST /workflows``)."""
        wf = parse_workflow(definition, self.limits)
        if idempotency_key is not None:
            # a replay returns the earlier execution and writes nothing, not even the
            # definition; a key of another workflow is refused before anything is stored
            earlier = self.store.execution_for_key(idempotency_key)
            if earlier is not None:
                if earlier["workflowId"] != wf.id:
                    raise Conflict(
                        f"Idempotency-Key {idempotency_key!r} was already used for "
                        f"workflow {earlier['workflowId']!r}",
                        code="idempotency_key_reused",
                    )
                return earlier
        revision = self.store.save_workflow(wf)
        return self.start(wf.id, revision=revision, params=params, idempotency_key=idempotency_key)

    # -- executions ---------------------------------------------------------------------
    def start(
        self,
        workflow_id: str,
        *,
        revision: int | None = None,
        params: Json | None = None,
        idempotency_key: str | None = None,
        parent_id: str | None = None,
        prior: dict[str, TaskRow] | None = None,
    ) -> Json:
        """Record a new execution durably, start running it, and return it (``pending``)."""
        params = self.store.check_params(params)
        if revision is None:
            revision = self.store.get_workflow(workflow_id)["revision"]
        wf = self.store.load_workflow(workflow_id, revision)
        execution, created = self.store.create_execution(
            new_execution_id(),
            workflow_id,
            revision,
            params=params,
            owner=self.owner,
            parent_id=parent_id,
            idempotency_key=idempotency_key,
            executor=self.executor.name,
            tasks=list((prior or {}).values()),
        )
        if created:
            self._launch(wf, execution["id"], params, prior)
        return execution

    def _launch(
        self, wf: Workflow, execution_id: str, params: Json, prior: dict[str, TaskRow] | None
    ) -> ExecutionRun:
        run = ExecutionRun(
            self.store,
            self.executor,
            self.bus,
            wf,
            execution_id,
            params=params,
            prior=prior,
            resolve=self.resolve,
            **self.run_options,
        )
        with self._lock:
            self._runs[execution_id] = run
        thread = threading.Thread(
            target=self._drive, args=(run,), daemon=True, name=f"taskflow-{execution_id}"
        )
        thread.start()
        return run

    def _drive(self, run: ExecutionRun) -> None:
        try:
            run.run()
        finally:
            with self._lock:
                self._runs.pop(run.execution_id, None)
                self._release_owner()

    def _release_owner(self) -> None:
        """Once closed and without running loops, this owner is dead to this process
        too (until then another runner here must not take its executions at once)."""
        if self._closing.is_set() and not self._runs:
            _LIVE_OWNERS.discard(self.owner)

    def get(self, execution_id: str, *, detail: bool = True) -> Json:
        """One execution as REST shows it."""
        return self.store.get_execution(execution_id, detail=detail)

    def wait(self, execution_id: str, timeout: float | None = None) -> Json:
        """Block until the execution is terminal (or ``timeout``); return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                run = self._runs.get(execution_id)
            if run is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                run.done.wait(min(left, 0.5) if left is not None else 0.5)
            status = self.store.control(execution_id)[0]
            if status in TERMINAL_EXECUTION:
                return self.get(execution_id)
            if deadline is not None and time.monotonic() >= deadline:
                return self.get(execution_id)
            if run is None:
                time.sleep(0.05)

    def cancel(self, execution_id: str) -> Json:
        """Cancel an execution (final). 409 when it has already ended."""
        self.store.request_cancel(execution_id)  # also reaches owners in other processes
        with self._lock:
            run = self._runs.get(execution_id)
        if run is not None:
            run.cancel()
            run.done.wait(10)
        return self.get(execution_id)

    def retry(self, execution_id: str, *, idempotency_key: str | None = None) -> Json:
        """A new execution that reuses completed results of ``execution_id`` and reruns the
        rest; branch decisions are replayed; failed tasks get a fresh retry budget."""
        row = self.store.execution_row(execution_id)
        if row["status"] not in TERMINAL_EXECUTION:
            raise Conflict(
                f"execution {execution_id!r} is still {row['status']}; "
                "cancel it or wait for it to end before retrying"
            )
        prior = {}
        for name, task in self.store.task_rows(execution_id).items():
            if task.status == TaskStatus.COMPLETED:
                prior[name] = task
        return self.start(
            row["workflow_id"],
            revision=row["revision"],
            params=row["params"],
            parent_id=execution_id,
            prior=prior,
            idempotency_key=idempotency_key,
        )

    def enqueue(
        self,
        workflow_id: str,
        *,
        revision: int | None = None,
        params: Json | None = None,
        idempotency_key: str | None = None,
    ) -> Json:
        """Record an execution for the SERVER to run (``%taskflow submit``): it is stored
        ``pending`` with owner ``SUBMITTED`` and adopted by the server's runner."""
        params = self.store.check_params(params)
        if revision is None:
            revision = self.store.get_workflow(workflow_id)["revision"]
        execution, _ = self.store.create_execution(
            new_execution_id(),
            workflow_id,
            revision,
            params=params,
            owner=SUBMITTED,
            idempotency_key=idempotency_key,
        )
        return execution

    def adopt_submitted(self) -> list[str]:
        """Start the executions other processes enqueued for this (server) runner."""
        adopted = []
        for row in self.store.executions_where(statuses=(ExecStatus.PENDING,), owner=SUBMITTED):
            if self.store.claim(row["id"], self.owner, SUBMITTED, self.executor.name):
                wf = self.store.load_workflow(row["workflow_id"], row["revision"])
                self._launch(wf, row["id"], row["params"], None)
                adopted.append(row["id"])
        return adopted

    # -- ownership, recovery ------------------------------------------------------------
    def _beat(self) -> None:
        while not self._closing.wait(self.heartbeat_interval):
            try:
                self.store.heartbeat(self.owner, self.active())
            except Exception:
                log.exception("heartbeat failed")

    def recover(self) -> list[str]:
        """Take over the active executions whose owner is gone (stale heartbeat, or a
        dead pid on this host), this runner's own included when their loop is no
        longer alive: resume a dead server's (only a server does), mark a dead kernel's
        failed with reason ``owner_lost``. Returns the ids taken over."""
        taken = []
        now = time.time()
        running_here = set(self.active())
        for row in self.store.executions_where():
            owner = row["owner"]
            if owner == SUBMITTED or (owner == self.owner and row["id"] in running_here):
                continue
            if now - (row["heartbeat"] or 0) < self.stale_after and _owner_alive(owner):
                continue
            resume = _role(owner) == "server"
            if resume and self.role != "server":
                continue  # the next server resumes it
            if not self.store.claim(
                row["id"], self.owner, owner, self.executor.name if resume else None
            ):
                continue
            taken.append(row["id"])
            if resume:
                wf = self.store.load_workflow(row["workflow_id"], row["revision"])
                self._launch(wf, row["id"], row["params"], self.store.task_rows(row["id"]))
            else:
                self.mark_lost(row)
        return taken

    def mark_lost(self, row: Json) -> None:
        """Fail an execution whose owner died, with reason ``owner_lost``."""
        wf_id, exec_id = row["workflow_id"], row["id"]
        now = utcnow()
        tasks = []
        for task in self.store.task_rows(exec_id).values():
            if task.status in (TaskStatus.RUNNING, TaskStatus.PENDING):
                task.status, task.reason, task.end_time = TaskStatus.FAILED, Reason.OWNER_LOST, now
                task.error = "the process that ran this execution stopped"
                tasks.append(task)
        event = make_event(
            "execution_failed", exec_id, wf_id, ExecStatus.FAILED, reason=Reason.OWNER_LOST
        )
        events = self.store.commit(
            exec_id,
            tasks=tasks,
            events=[event],
            execution={"status": ExecStatus.FAILED, "end_time": now, "reason": Reason.OWNER_LOST},
        )
        self.bus.publish(events or [])

    def active(self) -> list[str]:
        """Ids of the executions this runner is running now."""
        with self._lock:
            return list(self._runs)

    def close(self, *, wait: float = 5.0) -> None:
        """Stop heartbeats; running executions stay ``running`` in the store and are
        resumed by the next runner (this is what makes a restart safe)."""
        self._closing.set()
        with self._lock:
            runs = list(self._runs.values())
            self._release_owner()
        for run in runs:
            run.done.wait(wait / max(1, len(runs)))
