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
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from .compare import compare_executions
from .engine import ExecutionRun, settle
from .errors import Conflict, InvalidInput, NotFound, Problem
from .events import EventBus
from .executors import Executor
from .model import TERMINAL_EXECUTION, ExecStatus, TaskRun, TaskStatus, Trigger, Workflow
from .reuse import Reuse, plan_reuse
from .serialize import (
    encode,
    execution_json,
    instances_json,
    workflow_json,
    workflow_revision_json,
    workflow_state_json,
)
from .store import Store
from .transitions import MAX_MAP_LENGTH, OWNER_LOST
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


def _check_params(params: Any) -> Json:
    """Execution parameter overrides must be a JSON object."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InvalidInput("params must be an object", code="type_error")
    return params


def _snapshots_of(definition: Json) -> set[str]:
    """The snapshot digests a stored definition's tasks name."""
    found = set()
    for task in definition.get("tasks", ()):
        params = task.get("params")
        if isinstance(params, dict) and isinstance(params.get("snapshot"), str):
            found.add(params["snapshot"])
    return found


def new_execution_id() -> str:
    """``exec_`` + 16 random hex digits."""
    return "exec_" + secrets.token_hex(8)


class Runner:
    """Registers workflows and runs their executions on one executor."""

    LISTED_BYTES = 256 * 2**20  # encoded revisions kept for GET /workflows
    COUNTS_FRESH = 1.0  # seconds a running execution's page counts may be reused

    def __init__(
        self,
        store: Store,
        executor: Executor,
        bus: EventBus | None = None,
        *,
        limits: Limits | None = None,
        resolve: Callable[[str, str | None], Callable[..., Any] | None] | None = None,
        heartbeat_interval: float = 5.0,
        stale_after: float = 30.0,
        capture: bool = True,
        log_limit: int = 64 * 1024,
        root_dir: str | None = None,
        runs_dir: str | None = None,
        fast_noop: bool = True,
        window: int = 2048,
        role: str = "server",
        max_interruptions: int = 3,
        max_map_length: int = MAX_MAP_LENGTH,
        schedule_grace: float = 60.0,
        keep_listing: bool = False,
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
        # a slot seen later than this after it fell was missed (its catch-up policy applies)
        self.schedule_grace = schedule_grace
        self.default_trigger = Trigger.NOTEBOOK if role == "kernel" else Trigger.API
        # encode each new revision for GET /workflows as it is stored (a server's)
        self.keep_listing = keep_listing
        self.run_options: Json = {
            "capture": capture,
            "log_limit": log_limit,
            "root_dir": root_dir,
            # where attempts save files (a notebook task's executed copy), absolute
            "runs_dir": runs_dir
            or os.path.join(os.path.abspath(root_dir or os.getcwd()), ".taskflow", "runs"),
            "fast_noop": fast_noop,
            "window": window,
            # a task whose attempts a stop of the server cut short this often fails
            "max_interruptions": max_interruptions,
            # instances of one mapped task at most (a longer list fails the task)
            "max_map_length": max_map_length,
        }
        _LIVE_OWNERS.add(self.owner)
        self._runs: dict[str, ExecutionRun] = {}
        self._lock = threading.Lock()
        # encoded revisions for GET /workflows (list_workflows_json), least recent first
        self._listed: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._listed_bytes = 0
        self._encoding: dict[tuple[str, int], threading.Lock] = {}  # being encoded now
        # task counts of paged executions: id -> (ended, when read, counts)
        self._counts: OrderedDict[str, tuple[bool, float, dict[str, int]]] = OrderedDict()
        self._closing = threading.Event()
        self._heart = threading.Thread(target=self._beat, name="taskflow-heartbeat", daemon=True)
        self._heart.start()

    # -- workflows ----------------------------------------------------------------------
    def register(self, definition: Any, *, workflow_id: str | None = None) -> Json:
        """Validate and store a definition without running it (``PUT /workflows/{id}``:
        ``workflow_id`` is the path's, which the body's ``id`` may only repeat); returns
        it with its revision and schedule."""
        if workflow_id is not None and isinstance(definition, dict):
            given = definition.get("id", workflow_id)
            if given != workflow_id:
                raise InvalidInput(
                    "Invalid workflow definition:",
                    [
                        Problem(
                            "id",
                            "id_mismatch",
                            f"{given!r} differs from the path's {workflow_id!r}",
                        )
                    ],
                    code="id_mismatch",
                )
            definition = {**definition, "id": workflow_id}
        wf = self._parse(definition)
        revision = self.store.save_workflow(wf)
        self._keep_listed(wf, revision)
        return self.get_workflow(wf.id, revision)

    def _parse(self, definition: Any) -> Workflow:
        """A valid definition whose snapshots (notebook functions, ``snapshots.py``) are
        all stored."""
        wf = parse_workflow(definition, self.limits)
        wanted = {
            (i, t.params["snapshot"]) for i, t in enumerate(wf.tasks) if t.params.get("snapshot")
        }
        missing = self.store.missing_snapshots({d for _, d in wanted}) if wanted else set()
        if missing:
            raise InvalidInput(
                "Invalid workflow definition:",
                [
                    Problem(
                        f"tasks[{i}].params.snapshot",
                        "unknown_snapshot",
                        f"no snapshot {d!r} is stored (snapshots are taken by the notebook "
                        "side: wf.register(), wf.submit(), wf.schedule())",
                    )
                    for i, d in sorted(wanted)
                    if d in missing
                ],
                code="unknown_snapshot",
            )
        return wf

    def pause(self, workflow_id: str, paused: bool = True) -> Json:
        """Pause (or resume) a workflow's schedule; returns the workflow. Resuming never
        fires the slots that fell while it was paused."""
        self.store.set_paused(workflow_id, paused)
        return self.get_workflow(workflow_id)

    def fire_due(self) -> list[str]:
        """The scheduler's check (every quarter second on a server): fire the due slots
        of every scheduled workflow and start their executions; returns their ids. The
        time is the store's clock (``TaskFlowApp.clock``)."""
        now = self.store.clock()
        due = self.store.due_schedules(now)
        if not due:
            return []
        rows = self.store.fire(
            due,
            now,
            grace=self.schedule_grace,
            new_id=new_execution_id,
            params=lambda wid, rev, given: self.store.load_workflow(wid, rev).resolve_params(given),
            owner=self.owner,
            executor=self.executor.name,
        )
        started = []
        for row in rows:
            wf = self.store.load_workflow(row["workflow_id"], row["revision"])
            self._launch(wf, row["id"], row["params"], None)
            started.append(row["id"])
        return started

    def list_workflows(self) -> list[Json]:
        """Every registered definition, latest revision (``GET /workflows``)."""
        records = self.store.workflows()
        named = [_snapshots_of(r.definition) for r in records]
        info = self.store.snapshot_info(set().union(*named))  # one read for all of them
        return [
            workflow_json(*record, {d: info[d] for d in digests if d in info})
            for record, digests in zip(records, named, strict=True)
        ]

    def list_workflows_json(self) -> list[bytes]:
        """``list_workflows()`` as JSON, in chunks to send one after the other (joined
        once, by the web server: a copy of 22 MB costs this VM 15-150 ms in page
        faults), for ``GET /workflows``: what a revision fixes for good is encoded once
        and kept (``_revision_bytes``); each request reads the heads of the workflows
        and their schedules' state, not their definitions (a 100,000-task one: 2 s to
        parse and encode)."""
        chunks = [b"["]
        for workflow_id, revision, created, updated, state in self.store.workflow_heads():
            if len(chunks) > 1:
                chunks.append(b",")
            chunks.append(self._revision_bytes(workflow_id, revision))  # '{...' with no '}'
            chunks.append(b"," + encode(workflow_state_json(created, updated, state))[1:])
        chunks.append(b"]")
        return chunks

    def _task_counts(self, row: Json) -> dict[str, int]:
        """The stored task rows of an execution by status, for its pages: one scan of
        its rows (30-50 ms at 100,000 tasks), kept for good once it has ended and for
        ``COUNTS_FRESH`` seconds while it runs, so that paging through it scans once."""
        key, now = row["id"], time.monotonic()
        ended = row["status"] in TERMINAL_EXECUTION
        with self._lock:
            hit = self._counts.get(key)
        if hit is not None and (hit[0] or (not ended and now - hit[1] < self.COUNTS_FRESH)):
            return hit[2]
        counts = self.store.task_counts(key)
        with self._lock:
            self._counts[key] = (ended, now, counts)
            self._counts.move_to_end(key)
            while len(self._counts) > 256:
                self._counts.popitem(last=False)
        return counts

    def _keep_listed(self, wf: Workflow, revision: int) -> None:
        """Encode a new revision for ``GET /workflows`` now, from the definition in
        memory (a server's ``keep_listing``): the request that stored it answers once it
        is kept, so no listing waits for it (a 100,000-task one: a fifth of a second,
        against a second to read it back from the store, parse and encode it)."""
        if self.keep_listing and (wf.id, revision) not in self._listed:
            definition = {**wf.source, "id": wf.id}
            self._listed_put((wf.id, revision), self._encode_revision(definition, revision))

    def _encode_revision(self, definition: Json, revision: int) -> bytes:
        """``serialize.workflow_revision_json`` encoded without its closing brace."""
        snapshots = self.store.snapshot_info(_snapshots_of(definition))
        return encode(workflow_revision_json(definition, revision, snapshots))[:-1]

    def _listed_put(self, key: tuple[str, int], data: bytes) -> None:
        """Keep an encoded revision, dropping the least recent past ``LISTED_BYTES``."""
        with self._lock:
            self._listed_bytes += len(data) - len(self._listed.pop(key, b""))
            self._listed[key] = data
            self._encoding.pop(key, None)
            while self._listed_bytes > self.LISTED_BYTES and len(self._listed) > 1:
                _, dropped = self._listed.popitem(last=False)
                self._listed_bytes -= len(dropped)

    def _revision_bytes(self, workflow_id: str, revision: int) -> bytes:
        """``serialize.workflow_revision_json`` of a revision, encoded without its
        closing brace, from an LRU cache of at most ``LISTED_BYTES`` (read back from the
        store when it is not there: a revision stored before this server started, or
        dropped); a request that comes while another encodes it waits for it instead
        of encoding it again."""
        key = (workflow_id, revision)
        with self._lock:
            busy = self._encoding.setdefault(key, threading.Lock())
        with busy:
            with self._lock:
                cached = self._listed.get(key)
                if cached is not None:
                    self._listed.move_to_end(key)
                    self._encoding.pop(key, None)
                    return cached
            try:
                record = self.store.workflow(workflow_id, revision)
                data = self._encode_revision(record.definition, revision)
            except BaseException:
                with self._lock:
                    self._encoding.pop(key, None)
                raise
            self._listed_put(key, data)
        return data

    def get_workflow(self, workflow_id: str, revision: int | None = None) -> Json:
        """One definition (``GET /workflows/{id}``); NotFound for an unknown or deleted one."""
        record = self.store.workflow(workflow_id, revision)
        return workflow_json(*record, self.store.snapshot_info(_snapshots_of(record.definition)))

    def delete_workflow(self, workflow_id: str) -> None:
        """Remove a definition (``DELETE /workflows/{id}``); Conflict while one runs."""
        self.store.delete_workflow(workflow_id)

    def submit(
        self, definition: Any, *, idempotency_key: str | None = None, params: Json | None = None
    ) -> Json:
        """Register a definition and start an execution of it (``POST /workflows``). A
        replayed ``idempotency_key`` returns the earlier execution and writes nothing,
        not even the definition (one check, in the transaction that creates it)."""
        wf = self._parse(definition)
        return self.start(wf.id, save=wf, params=params, idempotency_key=idempotency_key)

    # -- executions ---------------------------------------------------------------------
    def start(
        self,
        workflow_id: str,
        *,
        revision: int | None = None,
        save: Workflow | None = None,
        params: Json | None = None,
        idempotency_key: str | None = None,
        reuse: str | None = None,
        rerun: Iterable[str] = (),
        changed: Callable[[str], bool] | None = None,
        trigger: str | None = None,
    ) -> Json:
        """Record a new execution durably, start running it, and return it (``pending``).

        ``save``: a definition to record first, in the same transaction. ``reuse``: an
        earlier execution whose results are reused where nothing upstream changes
        (``reuse.py``; ``rerun`` forces tasks to run again, ``changed`` says whose code
        changed)."""
        params = _check_params(params)
        if save is not None:
            wf = save
        else:
            if revision is None:
                revision = self.store.workflow(workflow_id).revision
            wf = self.store.load_workflow(workflow_id, revision)
        params = wf.resolve_params(params)
        plan = None if reuse is None else self._plan(reuse, wf, rerun, changed)
        prior = None if plan is None else plan.rows
        row, created = self.store.create_execution(
            new_execution_id(),
            workflow_id,
            revision,
            save=save,
            params=params,
            owner=self.owner,
            parent_id=reuse,
            idempotency_key=idempotency_key,
            executor=self.executor.name,
            tasks=list((prior or {}).values()),
            trigger=trigger or self.default_trigger,
            instances_of=None if plan is None else plan.instances_of,
        )
        # as created, before its loop starts: a task shown completed here is a reused one
        execution = self._execution_json(row, detail=False)
        if created:
            self._launch(wf, row["id"], params, prior)
            if save is not None:
                self._keep_listed(wf, row["revision"])
        return execution

    def _plan(
        self,
        parent_id: str,
        wf: Workflow,
        rerun: Iterable[str],
        changed: Callable[[str], bool] | None,
    ) -> Reuse:
        parent = self.store.execution_row(parent_id)
        before = self.store.load_workflow(parent["workflow_id"], parent["revision"])
        runs = self.store.task_runs(parent_id)
        return plan_reuse(before, runs, wf, rerun=rerun, changed=changed)

    def _execution_json(
        self, row: Json, *, detail: bool, cursor: int = 0, limit: int | None = None
    ) -> Json:
        """An execution as REST shows it; with ``limit``, a page of its tasks from index
        ``cursor`` (definition order), with ``taskCount``, the ``counts`` of all its
        tasks by status and ``nextCursor`` (null on the last page): only the page's task
        rows are read."""
        wf = self.store.load_workflow(row["workflow_id"], row["revision"])
        abandoned = None
        if detail:  # a dead owner's threads died with it: what it reported is over
            abandoned = {
                task: (attempt, since)
                for task, (attempt, since, owner) in self.store.abandoned(row["id"]).items()
                if _owner_alive(owner)
            }
        if limit is None:
            runs = self.store.task_runs(row["id"])
            return execution_json(row, wf, runs, detail=detail, abandoned=abandoned)
        page = wf.tasks[cursor : cursor + limit]
        runs = self.store.task_runs(row["id"], names=[t.name for t in page])
        out = execution_json(row, wf, runs, detail=detail, abandoned=abandoned, specs=page)
        counts = dict(self._task_counts(row))
        counts[TaskStatus.PENDING.value] = (
            len(wf.tasks) - sum(counts.values()) + counts.get(TaskStatus.PENDING.value, 0)
        )
        nxt = cursor + limit
        out.update(
            taskCount=len(wf.tasks),
            counts={s.value: counts.get(s.value, 0) for s in TaskStatus},
            nextCursor=nxt if nxt < len(wf.tasks) else None,
        )
        return out

    def _launch(
        self, wf: Workflow, execution_id: str, params: Json, prior: dict[str, TaskRun] | None
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

    def trigger(
        self,
        workflow_id: str,
        *,
        revision: int | None = None,
        params: Json | None = None,
        idempotency_key: str | None = None,
    ) -> Json:
        """A new execution of a registered workflow (``POST /workflows/{id}/executions``);
        NotFound for an unknown or deleted workflow, even with an explicit revision."""
        self.store.workflow(workflow_id, revision)
        return self.start(
            workflow_id, revision=revision, params=params, idempotency_key=idempotency_key
        )

    def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        limit: int = 100,
        cursor: int | None = None,
    ) -> tuple[list[Json], int | None]:
        """Executions newest first (``GET /executions``): ``(page, next_cursor)``."""
        rows, after = self.store.list_executions(
            workflow_id=workflow_id, status=status, trigger=trigger, limit=limit, cursor=cursor
        )
        return [self._execution_json(row, detail=False) for row in rows], after

    def get_logs(self, execution_id: str, task: str, map_index: int | None = None) -> list[Json]:
        """Captured stdout/stderr of each attempt of a task (or of one instance of a
        mapped task). Task names are kept in NFC (validation normalizes them): a name as
        posted in another normal form (NFD from macOS, say) finds its task."""
        return self.store.get_logs(execution_id, unicodedata.normalize("NFC", task), map_index)

    def instances(
        self,
        execution_id: str,
        task: str,
        *,
        status: str | None = None,
        cursor: int = 0,
        limit: int = 100,
    ) -> Json:
        """A page of the instances of a mapped task (SPEC 11), in index order."""
        name = unicodedata.normalize("NFC", task)
        row = self.store.execution_row(execution_id)
        spec = self.store.load_workflow(row["workflow_id"], row["revision"]).task_map.get(name)
        if spec is None:
            raise NotFound(f"execution {execution_id!r} has no task {task!r}")
        if spec.map_over is None:
            raise InvalidInput(
                f"task {task!r} is not mapped (it has no map_over)", code="not_mapped"
            )
        page, after = self.store.instances(
            execution_id, name, status=status, cursor=cursor, limit=limit
        )
        run = self.store.task_runs(execution_id, name).get(name)
        return instances_json(page, after, None if run is None else run.mapped)

    def notebook_parameters(self, path: str) -> list[Json]:
        """The ``parameters`` cell of a notebook under the root, described (SPEC 9)."""
        from .notebook_task import inspect_parameters

        root = self.run_options["root_dir"] or os.getcwd()
        return inspect_parameters(path, root)

    def compare(self, a: str, b: str) -> Json:
        """Two executions of one workflow side by side (``compare.py``)."""
        return compare_executions(self.get(a), self.get(b))

    def revisions(self, workflow_id: str) -> list[Json]:
        """A workflow's revisions, newest first: when each was made, its size, its
        schedule (``GET /workflows/{id}?revision=N`` gives the definition)."""
        return [
            {
                "revision": revision,
                "createdAt": created,
                "tasks": len(definition.get("tasks", ())),
                "schedule": definition.get("schedule"),
            }
            for revision, created, definition in self.store.revisions(workflow_id)
        ]

    def get(
        self,
        execution_id: str,
        *,
        detail: bool = True,
        cursor: int = 0,
        limit: int | None = None,
    ) -> Json:
        """One execution as REST shows it (``limit``: a page of its tasks from ``cursor``,
        see ``_execution_json``)."""
        row = self.store.execution_row(execution_id)
        return self._execution_json(row, detail=detail, cursor=cursor, limit=limit)

    def status(self, execution_id: str) -> str:
        """The stored status of an execution."""
        return self.store.control(execution_id)[0]

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

    def retry(
        self, execution_id: str, *, rerun: Iterable[str] = (), idempotency_key: str | None = None
    ) -> Json:
        """A new execution that reuses the completed results of ``execution_id`` and reruns
        the rest, the ``rerun`` tasks and everything downstream of what reruns (``reuse.py``);
        branch decisions are replayed; failed tasks get a fresh retry budget."""
        row = self.store.execution_row(execution_id)
        if row["status"] not in TERMINAL_EXECUTION:
            raise Conflict(
                f"execution {execution_id!r} is still {row['status']}; "
                "cancel it or wait for it to end before retrying"
            )
        return self.start(
            row["workflow_id"],
            revision=row["revision"],
            params=row["params"],
            idempotency_key=idempotency_key,
            reuse=execution_id,
            rerun=rerun,
            trigger=Trigger.RETRY,
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
        if revision is None:
            revision = self.store.workflow(workflow_id).revision
        wf = self.store.load_workflow(workflow_id, revision)
        row, _ = self.store.create_execution(
            new_execution_id(),
            workflow_id,
            revision,
            params=wf.resolve_params(_check_params(params)),
            owner=SUBMITTED,
            idempotency_key=idempotency_key,
            trigger=Trigger.NOTEBOOK,
        )
        return self._execution_json(row, detail=False)

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
        reported: list[tuple[str, str, int, float]] = []
        while not self._closing.wait(self.heartbeat_interval):
            try:
                self.store.heartbeat(self.owner, self.active())
                # what the executor stopped but could not end (a thread blocked in C):
                # recorded for REST and the widget while it runs on
                abandoned = self.executor.abandoned()
                if abandoned != reported:
                    self.store.sync_abandoned(self.owner, abandoned)
                    reported = abandoned
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
                self._launch(wf, row["id"], row["params"], self.store.task_runs(row["id"]))
            else:
                self.mark_lost(row)
        return taken

    def mark_lost(self, row: Json) -> None:
        """Fail an execution whose owner died, with reason ``owner_lost`` (through the
        state machine, as every change of run state)."""
        wf = self.store.load_workflow(row["workflow_id"], row["revision"])
        runs = self.store.task_runs(row["id"])
        settle(self.store, self.bus, wf, row["id"], runs, OWNER_LOST)

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
