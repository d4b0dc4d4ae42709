"""SQLite persistence: the only module that talks to the database.

Design
------
One SQLite file holds every workflow revision, execution, task run, log and event, and
is shared by the Jupyter server and every kernel on the machine. So:

* WAL journal, ``synchronous=NORMAL`` (a committed transaction survives a crash of the
  process; ``TaskFlowApp.db_synchronous`` can ask for ``FULL`` to survive power loss),
  a busy timeout, and ``BEGIN IMMEDIATE`` for every writer: writers queue instead of
  failing with "database is locked". The WAL is copied back into the database file
  by a thread of the store's own (``_Checkpointer``), not inside whichever commit
  crosses SQLite's threshold.
* One connection per thread (sqlite3 connections are not shared across threads).
* ``events.seq`` is the table's INTEGER PRIMARY KEY, assigned as ``max(seq) + 1`` inside
  the writer's transaction: writers are serialised, so the sequence is global across
  processes, increasing and gap-free, and commit order equals ``seq`` order.
* The engine hands a whole batch of state changes (task rows, execution row, events) to
  ``commit``; it is written in one transaction and only then published. A task that has
  no row yet is ``pending`` (its definition says it exists), which keeps submission of a
  100,000-task workflow to one row.

Schema changes are append-only migrations (``MIGRATIONS``); a database written by a
newer schema is refused rather than misread. What a row holds and which statement
writes it (the row shapes of task runs and events) is in ``_rows.py``. The store returns
rows and records; their JSON for REST and ``/ws`` is built in ``serialize.py``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from ._rows import event_from_row, event_row, loads, read_history, task_writes
from .errors import Conflict, InvalidInput, NotFound, StorageUnavailable, StoreError
from .events import Event
from .model import TERMINAL_EXECUTION, TaskRun, TaskStatus, Trigger, Workflow, iso, utcnow
from .schedule import Schedule, plan
from .serialize import encode
from .transitions import Changes
from .validation import STORED, Limits, parse_workflow

__all__ = ["ScheduleState", "Store", "WorkflowRecord", "default_db_path"]

log = logging.getLogger(__name__)

Json = dict[str, Any]


def default_db_path() -> Path:
    """``$PYTASKFLOW_DB``, else ``<jupyter data dir>/pytaskflow/taskflow.db``."""
    env = os.environ.get("PYTASKFLOW_DB")
    if env:
        return Path(env)
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "pytaskflow" / "taskflow.db"


def _m1(db: sqlite3.Connection) -> None:
    # the text sqlite-utils wrote for these tables when it made them (kept as it was)
    db.execute(
        'CREATE TABLE "workflows" (\n   "id" TEXT,\n   "revision" INTEGER,\n   "name" TEXT,\n'
        '   "definition" TEXT,\n   "fingerprint" TEXT,\n   "created_at" TEXT,\n'
        '   "deleted" INTEGER,\n   PRIMARY KEY ("id", "revision")\n)'
    )
    db.execute(
        'CREATE TABLE "executions" (\n   "id" TEXT PRIMARY KEY,\n   "workflow_id" TEXT,\n'
        '   "revision" INTEGER,\n   "status" TEXT,\n   "params" TEXT,\n   "start_time" TEXT,\n'
        '   "end_time" TEXT,\n   "created_at" TEXT,\n   "owner" TEXT,\n   "heartbeat" REAL,\n'
        '   "parent_id" TEXT,\n   "idempotency_key" TEXT,\n   "reason" TEXT,\n'
        '   "executor" TEXT,\n   "cancel_requested" INTEGER\n)'
    )
    for column in ("workflow_id", "status"):
        db.execute(f'CREATE INDEX "idx_executions_{column}"\n    ON "executions" ("{column}")')
    db.execute(
        'CREATE UNIQUE INDEX "idx_executions_idempotency_key"\n'
        '    ON "executions" ("idempotency_key")'
    )
    db.execute(
        "CREATE TABLE task_runs (execution_id TEXT, name TEXT, status TEXT, attempts INTEGER,"
        " start_time TEXT, end_time TEXT, duration REAL, result TEXT, error TEXT,"
        " traceback TEXT, reason TEXT, history TEXT, branch TEXT,"
        " PRIMARY KEY (execution_id, name)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE task_logs (execution_id TEXT, name TEXT, attempt INTEGER, stdout TEXT,"
        " stderr TEXT, PRIMARY KEY (execution_id, name, attempt)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, execution_id TEXT, workflow_id TEXT,"
        " event TEXT, payload TEXT)"
    )
    for column in ("execution_id", "workflow_id"):
        db.execute(f'CREATE INDEX "idx_events_{column}"\n    ON "events" ("{column}")')


def _m2(db: sqlite3.Connection) -> None:
    """Events as columns: the engine writes no JSON document per event (readers build
    it, see ``_rows.event_from_row``); rows written before keep their ``payload``.

    And no index on events: each one cost a B-tree page written per commit (a tenth of a
    chain's step). An execution records ``first_seq``, the last ``seq`` before it was
    created: its events all come later, so reading them scans ``seq`` from there."""
    for column, kind in (
        ("task", "TEXT"),
        ("timestamp", "TEXT"),
        ("status", "TEXT"),
        ("attempt", "INTEGER"),
        ("duration", "REAL"),
        ("extra", "TEXT"),
    ):
        db.execute(f"ALTER TABLE events ADD COLUMN {column} {kind}")
    db.execute("ALTER TABLE executions ADD COLUMN first_seq INTEGER")
    db.execute(
        "UPDATE executions SET first_seq = coalesce((SELECT min(seq) - 1 FROM events "
        "WHERE execution_id = executions.id), (SELECT coalesce(max(seq), 0) FROM events))"
    )
    db.execute("DROP INDEX IF EXISTS idx_events_workflow_id")
    db.execute("DROP INDEX IF EXISTS idx_events_execution_id")


def _m3(db: sqlite3.Connection) -> None:
    """A task's ``output``: a file its attempt left to show (a notebook's executed copy)."""
    db.execute("ALTER TABLE task_runs ADD COLUMN output TEXT")


def _m4(db: sqlite3.Connection) -> None:
    """A task's ``interruptions``: attempts a stop of the server cut short (item 13 of
    issue 15), durable so that a task that keeps killing the server fails in the end."""
    db.execute("ALTER TABLE task_runs ADD COLUMN interruptions INTEGER")


def _m5(db: sqlite3.Connection) -> None:
    """Schedules (SPEC 12) and what started an execution.

    ``schedules``: one row per scheduled workflow — its schedule as posted, the revision
    it came with, the anchor of ``every`` slots, the newest slot handled, the next one
    (NULL while paused; indexed: a check reads only the due rows), the last scheduled
    execution and the last catch-up after a downtime. ``executions.scheduled_for`` is the
    slot an execution was fired for, unique per workflow: the claim that makes each slot
    fire once however many servers share the file. ``snapshots``: notebook functions
    pickled by value for the server to run (``snapshots.py``)."""
    db.execute(
        "CREATE TABLE schedules (workflow_id TEXT PRIMARY KEY, revision INTEGER, spec TEXT,"
        " anchor REAL, last_slot REAL, next_slot REAL, paused INTEGER DEFAULT 0,"
        " last_execution TEXT, missed TEXT, updated_at TEXT)"
    )
    db.execute("CREATE INDEX idx_schedules_next_slot ON schedules (next_slot)")
    db.execute("ALTER TABLE executions ADD COLUMN trigger TEXT")
    db.execute("ALTER TABLE executions ADD COLUMN scheduled_for TEXT")
    db.execute(
        "UPDATE executions SET trigger = CASE WHEN parent_id IS NOT NULL THEN 'retry' "
        "WHEN owner LIKE '%:kernel' THEN 'notebook' ELSE 'api' END"
    )
    db.execute("CREATE UNIQUE INDEX idx_executions_slot ON executions (workflow_id, scheduled_for)")
    db.execute(
        "CREATE TABLE snapshots (hash TEXT PRIMARY KEY, name TEXT, source TEXT, pickle BLOB,"
        " python TEXT, created_at TEXT)"
    )


def _m6(db: sqlite3.Connection) -> None:
    """Attempts given up on (cancel, timeout) whose code still runs in a thread of their
    owner (blocked in C): kept by the owner while it runs, for REST and the widget."""
    db.execute(
        "CREATE TABLE abandoned (execution_id TEXT, name TEXT, attempt INTEGER, since REAL,"
        " owner TEXT, PRIMARY KEY (execution_id, name, attempt)) WITHOUT ROWID"
    )


def _m7(db: sqlite3.Connection) -> None:
    """Mapped tasks (SPEC 11): a mapped task's counts of its instances by status
    (``task_runs.mapped``, so that reading an execution never reads its instances), the
    runs of the instances (the columns of ``task_runs`` with ``map_index``; ``branch`` and
    ``mapped`` stay NULL) and their logs."""
    db.execute("ALTER TABLE task_runs ADD COLUMN mapped TEXT")
    db.execute(
        "CREATE TABLE task_instances (execution_id TEXT, name TEXT, map_index INTEGER,"
        " status TEXT, attempts INTEGER, start_time TEXT, end_time TEXT, duration REAL,"
        " result TEXT, error TEXT, traceback TEXT, reason TEXT, history TEXT, branch TEXT,"
        " output TEXT, interruptions INTEGER, mapped TEXT,"
        " PRIMARY KEY (execution_id, name, map_index)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE TABLE instance_logs (execution_id TEXT, name TEXT, map_index INTEGER,"
        " attempt INTEGER, stdout TEXT, stderr TEXT,"
        " PRIMARY KEY (execution_id, name, map_index, attempt)) WITHOUT ROWID"
    )


def _m8(db: sqlite3.Connection) -> None:
    """Where a reused result was computed: the execution a retry (or ``reuse``) carried a
    task's or an instance's row over from, followed back to the one that ran it."""
    db.execute("ALTER TABLE task_runs ADD COLUMN reused_from TEXT")
    db.execute("ALTER TABLE task_instances ADD COLUMN reused_from TEXT")


def _m9(db: sqlite3.Connection) -> None:
    """An index that holds what ``GET /workflows`` reads of each revision but its
    definition. The columns after ``definition`` in a row (``created_at``, ``deleted``)
    are read by walking the definition's overflow pages: 140 ms for a 100,000-task
    one (22 MB) at every request; with the index, the definition is never touched."""
    db.execute("CREATE INDEX workflows_heads ON workflows (id, revision, created_at, deleted)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _m1, _m2, _m3, _m4, _m5, _m6, _m7, _m8, _m9,
]  # fmt: skip

TASK_COLUMNS = (
    "status",
    "attempts",
    "start_time",
    "end_time",
    "duration",
    "result",
    "error",
    "traceback",
    "reason",
    "history",
    "branch",
    "output",
    "interruptions",
    "mapped",
    "reused_from",
)
EXEC_COLUMNS = frozenset(
    {
        "status",
        "start_time",
        "end_time",
        "owner",
        "heartbeat",
        "reason",
        "executor",
        "cancel_requested",
    }
)
ACTIVE = ("pending", "running")
_CONTENTION = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)


class ScheduleState(NamedTuple):
    """Where a workflow's schedule stands: paused, its next slot (Unix seconds, None while
    paused), its last scheduled execution and the last catch-up after a downtime."""

    paused: bool
    next_slot: float | None
    last_execution: str | None
    last_scheduled_for: str | None
    last_status: str | None
    missed: Json | None


class WorkflowRecord(NamedTuple):
    """A stored definition (as posted), its revision and when its revisions were made,
    and its schedule's state when it has one."""

    definition: Json
    revision: int
    created_at: str
    updated_at: str
    schedule: ScheduleState | None = None


_SCHEDULE_STATE = (
    "SELECT s.workflow_id, s.paused, s.next_slot, s.last_execution, e.scheduled_for, e.status,"
    " s.missed FROM schedules s LEFT JOIN executions e ON e.id = s.last_execution"
)


def _schedule_state(r: tuple[Any, ...]) -> ScheduleState:
    return ScheduleState(bool(r[1]), r[2], r[3], r[4], r[5], loads(r[6]))


def _task_run(r: tuple[Any, ...]) -> TaskRun:
    """A ``TaskRun`` from ``SELECT name, <TASK_COLUMNS>``."""
    name, status, attempts, start, end, duration, result, error, tb, reason, history = r[:11]
    return TaskRun(
        name, status, attempts, start, end, duration, loads(result), error, tb, reason,
        read_history(history, status), loads(r[11]), r[12], r[13] or 0, loads(r[14]),
        reused_from=r[15],
    )  # fmt: skip


_INSTANCES = f"SELECT name, {', '.join(TASK_COLUMNS)}, map_index FROM task_instances"


def _instance_run(r: tuple[Any, ...]) -> TaskRun:
    """An instance's ``TaskRun`` from ``_INSTANCES`` (the task columns, then its index)."""
    run = _task_run(r)
    run.map_index = r[len(TASK_COLUMNS) + 1]
    return run


class _Checkpointer:
    """Copies the WAL back into the database file in a thread of its own, every
    ``EVERY`` commits of this store, so that no commit pays for it: a checkpoint syncs
    the WAL and the database (two ``fsync`` calls, 5-15 ms on a VM's disk), which
    SQLite's own automatic checkpoint does inside whichever commit crosses its
    threshold (a fifth of a chain step's cost, amortized). ``PASSIVE``: it never waits
    for, nor blocks, readers and writers; SQLite's automatic checkpoint stays as the
    fallback, at ``FALLBACK`` pages. The thread ends after ``IDLE`` seconds without work
    (a store that stops writing keeps no thread) and starts again when needed."""

    EVERY = 256
    FALLBACK = 10_000
    IDLE = 5.0

    def __init__(self, connect: weakref.WeakMethod[Callable[[], sqlite3.Connection]]) -> None:
        self._connect = connect  # weakly: the store is not held in a cycle through us
        self._commits = 0  # since the last wake-up; increments may race: it only paces
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        self._commits += 1
        if self._commits < self.EVERY:
            return
        self._commits = 0
        self._wake.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="taskflow-checkpoint", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """End the thread now, with its connection (the store is closing; the next
        ``EVERY`` commits would start another)."""
        with self._lock:
            self._thread = None
            self._wake.set()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        me = threading.current_thread()
        try:
            while True:
                woken = self._wake.wait(self.IDLE)
                with self._lock:
                    if self._thread is not me:
                        return  # stopped
                    if not woken and not self._wake.is_set():
                        self._thread = None
                        return
                self._wake.clear()
                try:
                    connect = self._connect()
                    if connect is None:
                        return  # the store is gone
                    conn = conn or connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except (sqlite3.Error, StorageUnavailable):
                    log.debug("checkpoint of the WAL failed", exc_info=True)
        finally:
            if conn is not None:
                conn.close()


class Store:
    """The SQLite store shared by the server and kernels (see the module docstring)."""

    CACHE_TASKS = 200_000  # parsed definitions kept, counted in tasks (LRU)
    # How long the engine's commits go without checking the file (``_conn``): a chain
    # commits every ~100 us, and the check was a twentieth of its step. A file deleted
    # or replaced is refused by the next read or write (REST and every other write
    # check each time) and by the engine's next commit after at most this long; what
    # it committed meanwhile went to the file being deleted, as a commit just before a
    # check's ``stat`` would anyway.
    RECHECK = 0.05
    BEGIN = "BEGIN IMMEDIATE"  # every writer takes the write lock first (module docstring)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 60_000,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.clock = clock  # the time schedules are computed from (``TaskFlowApp.clock``)
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self.limits = limits or Limits()
        self._local = threading.local()
        self._workflow_cache: OrderedDict[tuple[str, int], Workflow] = OrderedDict()
        self._cached_tasks = 0
        self._cache_lock = threading.Lock()
        self._checkpointer = _Checkpointer(weakref.WeakMethod(self._connect))
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # Task parameters may hold secrets: the file is private to its user.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        # Only construction creates the file: connections open it read-write, never
        # create (``mode=rw``), and the file's identity is checked at each use, so a
        # database deleted or replaced under a running store is refused, not recreated.
        self._uri = self.path.absolute().as_uri() + "?mode=rw"
        info = os.stat(self.path)
        self._identity = (info.st_dev, info.st_ino)
        self._migrate()

    # -- connections and transactions -------------------------------------------------
    def _conn(self, recheck: float = 0.0) -> sqlite3.Connection:
        """This thread's connection, after checking that the file is still the one
        opened: one ``stat`` (2-6 us on this VM) before every read and write
        transaction, or with ``recheck`` only when this thread last checked more than
        that many seconds ago (the engine's commits, ``RECHECK``)."""
        local = self._local
        if recheck:
            now = time.monotonic()
            if now - getattr(local, "checked", -recheck) >= recheck:
                self._check_file()
                local.checked = now
        else:
            self._check_file()
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = self._connect()
        return conn

    def _connect(self) -> sqlite3.Connection:
        """A new connection with the store's PRAGMAs."""
        try:
            conn = sqlite3.connect(
                self._uri,
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=self.busy_timeout_ms / 1000,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint={_Checkpointer.FALLBACK}")
        except sqlite3.OperationalError as exc:  # deleted between the check and here
            raise self._unavailable("cannot be opened", exc) from exc
        return conn

    def _check_file(self) -> None:
        """StorageUnavailable when the database file vanished or was replaced."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError as exc:
            raise self._unavailable("was deleted while in use", exc) from exc
        except OSError as exc:
            raise self._unavailable("cannot be read", exc) from exc
        if (info.st_dev, info.st_ino) != self._identity:
            raise StorageUnavailable(
                f"the database {str(self.path)!r} was replaced by another file while in use; "
                "nothing is read from or written to it (restart the server to use it)"
            )

    def _unavailable(self, what: str, exc: BaseException) -> StorageUnavailable:
        if isinstance(exc, FileNotFoundError):
            cause = "the file is gone; a new one is never created under a running server"
        else:
            cause = str(exc)
        return StorageUnavailable(f"the database {str(self.path)!r} {what}: {cause}")

    def _abort_write(self, conn: sqlite3.Connection, exc: BaseException) -> BaseException:
        """Roll back a failed write transaction (if SQLite has not already: a full disk
        or an I/O error ends it) and return what to raise: a storage fault becomes
        StorageUnavailable naming its cause, anything else stays as it is."""
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback after a failed write of %s failed", self.path)
        if not isinstance(exc, sqlite3.OperationalError) and type(exc) is not sqlite3.DatabaseError:
            return exc
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _CONTENTION:
            return exc  # "database is locked": contention, not a fault of the storage
        return self._unavailable("cannot be written", exc)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One writer transaction (``BEGIN IMMEDIATE``): all or nothing."""
        conn = self._conn()
        try:
            conn.execute(self.BEGIN)
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            error = self._abort_write(conn, exc)
            if error is exc:
                raise
            raise error from exc
        self._checkpointer.committed()

    def close(self) -> None:
        """Close this thread's connection, and stop the checkpoint thread (which held
        the store, its cache of definitions included, for ``IDLE`` seconds more)."""
        self._checkpointer.stop()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _migrate(self) -> None:
        with self.write() as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
                conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path} has schema version {version}; this version of "
                    f"pytaskflow-jupyter knows up to {len(MIGRATIONS)}"
                )
            for number in range(version, len(MIGRATIONS)):
                MIGRATIONS[number](conn)
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(len(MIGRATIONS)),)
            )

    # -- workflows ----------------------------------------------------------------------
    def save_workflow(self, wf: Workflow) -> int:
        """Record a definition and return its revision: a changed one gets a new revision,
        an unchanged one reuses it."""
        encoded = self._encode_workflow(wf)
        with self.write() as conn:
            revision = self._save_workflow(conn, wf.id, *encoded)
        self._cache_put((wf.id, revision), wf)
        return revision

    @staticmethod
    def _encode_workflow(wf: Workflow) -> tuple[str, str, str, str | None, bool]:
        spec = wf.source.get("schedule")
        return (
            wf.name,
            encode({**wf.source, "id": wf.id}).decode(),
            wf.fingerprint(),
            None if spec is None else json.dumps(spec, sort_keys=True),
            "id" not in wf.source,  # derived from the name
        )

    def _save_workflow(
        self,
        conn: sqlite3.Connection,
        workflow_id: str,
        name: str,
        text: str,
        fingerprint: str,
        schedule: str | None,
        derived: bool = False,
    ) -> int:
        """Inside a writer's transaction: the revision of this definition (a new one when
        it changed, or when the workflow was deleted), and its schedule's row. An id
        ``derived`` from the name that a workflow of another name has is a Conflict
        (``Café Report`` and ``cafe-report`` both derive ``cafe_report``)."""
        last = conn.execute(
            "SELECT revision, fingerprint, deleted, name FROM workflows WHERE id=? "
            "ORDER BY revision DESC LIMIT 1",
            (workflow_id,),
        ).fetchone()
        if derived and last and not last[2] and last[3] != name:
            raise Conflict(
                f"the name {name!r} derives the id {workflow_id!r}, which the workflow "
                f"{last[3]!r} already has; give an 'id' to make it another workflow, or "
                f"id {workflow_id!r} to make it a new revision of that one",
                code="id_collision",
            )
        if last and last[1] == fingerprint and not last[2]:
            return int(last[0])
        revision = (last[0] if last else 0) + 1
        conn.execute("UPDATE workflows SET deleted=0 WHERE id=?", (workflow_id,))
        conn.execute(
            "INSERT INTO workflows VALUES (?,?,?,?,?,?,0)",
            (workflow_id, revision, name, text, fingerprint, utcnow()),
        )
        self._sync_schedule(conn, workflow_id, revision, schedule)
        return int(revision)

    def _sync_schedule(
        self, conn: sqlite3.Connection, workflow_id: str, revision: int, spec: str | None
    ) -> None:
        """A new revision's schedule: the same one keeps its state (slots, paused); a new
        or changed one starts now (no slot before it fires); none removes the row."""
        if spec is None:
            conn.execute("DELETE FROM schedules WHERE workflow_id=?", (workflow_id,))
            return
        row = conn.execute(
            "SELECT spec, paused FROM schedules WHERE workflow_id=?", (workflow_id,)
        ).fetchone()
        if row is not None and row[0] == spec:
            conn.execute(
                "UPDATE schedules SET revision=? WHERE workflow_id=?", (revision, workflow_id)
            )
            return
        now = self.clock()
        paused = bool(row[1]) if row else False
        nxt = None if paused else Schedule.from_json(json.loads(spec)).next_slot(now, now)
        values = (revision, spec, now, now, nxt, int(paused), utcnow(), workflow_id)
        if row is None:
            conn.execute(
                "INSERT INTO schedules (revision, spec, anchor, last_slot, next_slot, paused,"
                " updated_at, workflow_id) VALUES (?,?,?,?,?,?,?,?)",
                values,
            )
        else:
            conn.execute(
                "UPDATE schedules SET revision=?, spec=?, anchor=?, last_slot=?, next_slot=?,"
                " paused=?, updated_at=? WHERE workflow_id=?",
                values,
            )

    def workflow(self, workflow_id: str, revision: int | None = None) -> WorkflowRecord:
        """A definition as posted (the latest revision unless ``revision``); NotFound for
        an unknown or deleted workflow."""
        conn = self._conn()
        first = conn.execute(
            "SELECT min(created_at), max(created_at), max(revision) FROM "
            "workflows WHERE id=? AND deleted=0",
            (workflow_id,),
        ).fetchone()
        if first[2] is None:
            raise NotFound(f"unknown workflow {workflow_id!r}")
        rev = first[2] if revision is None else revision
        row = conn.execute(
            "SELECT definition, created_at FROM workflows WHERE id=? AND revision=?",
            (workflow_id, rev),
        ).fetchone()
        if row is None:
            raise NotFound(f"workflow {workflow_id!r} has no revision {revision!r}")
        state = conn.execute(_SCHEDULE_STATE + " WHERE s.workflow_id=?", (workflow_id,)).fetchone()
        return WorkflowRecord(
            loads(row[0]),
            rev,
            first[0],
            first[1] if revision is None else row[1],
            None if state is None else _schedule_state(state),
        )

    def load_workflow(self, workflow_id: str, revision: int) -> Workflow:
        """The parsed definition of one revision (deleted ones included: executions keep theirs)."""
        key = (workflow_id, revision)
        with self._cache_lock:
            if key in self._workflow_cache:
                self._workflow_cache.move_to_end(key)
                return self._workflow_cache[key]
        row = (
            self._conn()
            .execute("SELECT definition FROM workflows WHERE id=? AND revision=?", key)
            .fetchone()
        )
        if row is None:
            raise NotFound(f"workflow {workflow_id!r} has no revision {revision!r}")
        wf = parse_workflow(loads(row[0]), STORED)
        self._cache_put(key, wf)
        return wf

    def _cache_put(self, key: tuple[str, int], wf: Workflow) -> None:
        with self._cache_lock:
            old = self._workflow_cache.pop(key, None)
            self._cached_tasks += len(wf.tasks) - (len(old.tasks) if old else 0)
            self._workflow_cache[key] = wf
            while self._cached_tasks > self.CACHE_TASKS and len(self._workflow_cache) > 1:
                _, evicted = self._workflow_cache.popitem(last=False)  # least recently used
                self._cached_tasks -= len(evicted.tasks)

    def workflows(self) -> list[WorkflowRecord]:
        """Every registered definition (latest revision), by id."""
        return [
            WorkflowRecord(loads(d), r, c, u, state)
            for _, d, r, c, u, state in self._latest("w.definition")
        ]

    def workflow_heads(self) -> list[tuple[str, int, str, str, ScheduleState | None]]:
        """``workflows()`` without the definitions (the text of a 100,000-task one takes
        seconds to parse): ``(id, revision, created_at, updated_at, schedule)``."""
        return [(i, r, c, u, state) for i, _, r, c, u, state in self._latest("NULL")]

    def _latest(self, definition: str) -> list[tuple[Any, ...]]:
        conn = self._conn()
        conn.execute("BEGIN")  # one read transaction: definitions and schedules agree
        try:
            rows = conn.execute(
                f"SELECT w.id, {definition}, w.revision, f.created, w.created_at FROM workflows"
                f" w {'INDEXED BY workflows_heads' if definition == 'NULL' else ''}"
                " JOIN (SELECT id, max(revision) AS rev, min(created_at) AS created FROM "
                "workflows WHERE deleted=0 GROUP BY id) f ON w.id=f.id AND w.revision=f.rev "
                "ORDER BY w.id"
            ).fetchall()
            states = {r[0]: _schedule_state(r) for r in conn.execute(_SCHEDULE_STATE)}
        finally:
            conn.execute("COMMIT")
        return [(*row, states.get(row[0])) for row in rows]

    def delete_workflow(self, workflow_id: str) -> None:
        """Remove a definition; its executions stay readable. 409 while one is active."""
        with self.write() as conn:
            if not conn.execute(
                "SELECT 1 FROM workflows WHERE id=? AND deleted=0", (workflow_id,)
            ).fetchone():
                raise NotFound(f"unknown workflow {workflow_id!r}")
            active = conn.execute(
                "SELECT id FROM executions WHERE workflow_id=? AND status IN (?,?) LIMIT 1",
                (workflow_id, *ACTIVE),
            ).fetchone()
            if active:
                raise Conflict(
                    f"workflow {workflow_id!r} has an active execution {active[0]!r}; "
                    "cancel it first"
                )
            conn.execute("UPDATE workflows SET deleted=1 WHERE id=?", (workflow_id,))
            conn.execute("DELETE FROM schedules WHERE workflow_id=?", (workflow_id,))

    # -- executions ---------------------------------------------------------------------
    def create_execution(
        self,
        execution_id: str,
        workflow_id: str,
        revision: int | None = None,
        *,
        save: Workflow | None = None,
        params: Json | None = None,
        owner: str | None = None,
        parent_id: str | None = None,
        idempotency_key: str | None = None,
        executor: str | None = None,
        tasks: list[TaskRun] | None = None,
        trigger: str = Trigger.API,
        instances_of: list[str] | None = None,
    ) -> tuple[Json, bool]:
        """Record a new ``pending`` execution; returns ``(execution row, created)``.

        ``save``: the definition to record first (its revision is the execution's), in
        the same transaction. With an ``idempotency_key`` already used, the earlier
        execution is returned and nothing is written, not even the definition (a key of
        another workflow is a Conflict). ``tasks``: rows carried over (reused results);
        ``instances_of``: mapped tasks whose completed instances of ``parent_id`` are
        carried over (their rows copied by one statement, however many there are).
        """
        encoded = None if save is None else self._encode_workflow(save)
        with self.write() as conn:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT id, workflow_id FROM executions WHERE idempotency_key=?",
                    (idempotency_key,),
                ).fetchone()
                if row is not None:
                    if row[1] != workflow_id:
                        raise Conflict(
                            f"Idempotency-Key {idempotency_key!r} was already used "
                            f"for workflow {row[1]!r}",
                            code="idempotency_key_reused",
                        )
                    return self.execution_row(row[0]), False
            if encoded is not None:
                revision = self._save_workflow(conn, workflow_id, *encoded)
            elif revision is None:
                revision = self.workflow(workflow_id).revision
            self._insert_execution(
                conn,
                execution_id,
                workflow_id,
                revision,
                params=params,
                owner=owner,
                parent_id=parent_id,
                idempotency_key=idempotency_key,
                executor=executor,
                trigger=trigger,
            )
            for run in tasks or []:  # carried over: where each ran first
                run.reused_from = run.reused_from or parent_id
            for sql, rows in task_writes(execution_id, tasks or []).items():
                conn.executemany(sql, rows)
            if instances_of and parent_id is not None:
                columns = ", ".join(TASK_COLUMNS[:-1])  # then where it ran first
                conn.execute(
                    f"INSERT INTO task_instances SELECT ?, name, map_index, {columns}, "
                    "coalesce(reused_from, ?) FROM task_instances WHERE execution_id=? AND "
                    f"status=? AND name IN ({','.join('?' * len(instances_of))})",
                    (
                        execution_id, parent_id, parent_id, TaskStatus.COMPLETED.value,
                        *instances_of,
                    ),
                )  # fmt: skip
        if save is not None:
            self._cache_put((workflow_id, revision), save)
        return self.execution_row(execution_id), True

    @staticmethod
    def _insert_execution(
        conn: sqlite3.Connection,
        execution_id: str,
        workflow_id: str,
        revision: int,
        *,
        params: Json | None,
        owner: str | None,
        executor: str | None,
        trigger: str,
        parent_id: str | None = None,
        idempotency_key: str | None = None,
        scheduled_for: str | None = None,
    ) -> None:
        """Inside a writer's transaction: the row of a new ``pending`` execution."""
        conn.execute(
            "INSERT INTO executions (id, workflow_id, revision, status, params, "
            "created_at, owner, heartbeat, parent_id, idempotency_key, executor, "
            "trigger, scheduled_for, first_seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,"
            "(SELECT coalesce(max(seq), 0) FROM events))",
            (
                execution_id,
                workflow_id,
                revision,
                "pending",
                json.dumps(params or {}),
                utcnow(),
                owner,
                time.time(),
                parent_id,
                idempotency_key,
                executor,
                str(trigger),
                scheduled_for,
            ),
        )

    # -- schedules ----------------------------------------------------------------------
    def due_schedules(self, now: float) -> list[str]:
        """Ids of the workflows with a slot due at ``now`` (not paused): one indexed read,
        whatever the number of schedules."""
        rows = (
            self._conn()
            .execute("SELECT workflow_id FROM schedules WHERE next_slot <= ?", (now,))
            .fetchall()
        )
        return [r[0] for r in rows]

    FIRE_BATCH = 200  # workflows fired per transaction (the write lock is held that long)

    def fire(
        self,
        workflow_ids: list[str],
        now: float,
        *,
        grace: float,
        new_id: Callable[[], str],
        params: Callable[[str, int, Json], Json],
        owner: str,
        executor: str | None,
    ) -> list[Json]:
        """Fire the due slots of these workflows (``schedule.plan``) and return the rows
        of the executions created. One transaction (per ``FIRE_BATCH`` workflows) reads
        each schedule, claims each slot (an execution with ``scheduled_for``, unique per
        workflow: a slot another server already fired is skipped) and moves the schedule
        on, so each slot fires once. ``params(workflow id, revision, schedule params)``:
        the execution's parameters. A workflow whose firing fails is left as it was (a
        savepoint) and logged; the others fire."""
        created: list[str] = []

        def claim(
            conn: sqlite3.Connection, workflow_id: str, revision: int, sched: Schedule, when: str
        ) -> str:
            """Create the execution that claims slot ``when``; its id."""
            execution_id = new_id()
            self._insert_execution(
                conn,
                execution_id,
                workflow_id,
                revision,
                params=params(workflow_id, revision, sched.params),
                owner=owner,
                executor=executor,
                trigger=Trigger.SCHEDULE,
                scheduled_for=when,
            )
            return execution_id

        for i in range(0, len(workflow_ids), self.FIRE_BATCH):
            with self.write() as conn:
                for workflow_id in workflow_ids[i : i + self.FIRE_BATCH]:
                    conn.execute("SAVEPOINT fire")
                    try:
                        created += self._fire_one(conn, workflow_id, now, grace, claim)
                    except (sqlite3.OperationalError, sqlite3.DatabaseError):
                        raise  # the storage itself: the whole batch fails and is retried
                    except Exception:
                        conn.execute("ROLLBACK TO fire")
                        log.exception("firing the schedule of workflow %r failed", workflow_id)
                    conn.execute("RELEASE fire")
        return [self.execution_row(e) for e in created]

    @staticmethod
    def _fire_one(
        conn: sqlite3.Connection,
        workflow_id: str,
        now: float,
        grace: float,
        claim: Callable[[sqlite3.Connection, str, int, Schedule, str], str],
    ) -> list[str]:
        """Inside ``fire``'s transaction: one workflow's due slots claimed (``claim``
        creates the execution of a slot), its schedule moved on."""
        row = conn.execute(
            "SELECT revision, spec, anchor, last_slot, next_slot FROM schedules "
            "WHERE workflow_id=? AND next_slot IS NOT NULL",
            (workflow_id,),
        ).fetchone()
        if row is None or row[4] > now:
            return []  # paused, removed, or fired by another server meanwhile
        revision, spec, anchor, last_slot = row[:4]
        sched = Schedule.from_json(json.loads(spec))
        fire = plan(sched, anchor, last_slot, now, grace)
        created = []
        for slot in fire.slots:
            when = iso(slot)
            if conn.execute(
                "SELECT 1 FROM executions WHERE workflow_id=? AND scheduled_for=?",
                (workflow_id, when),
            ).fetchone():
                continue
            created.append(claim(conn, workflow_id, revision, sched, when))
        conn.execute(
            "UPDATE schedules SET last_slot=?, next_slot=?, "
            "last_execution=coalesce(?, last_execution), missed=coalesce(?, missed) "
            "WHERE workflow_id=?",
            (
                fire.last_slot,
                fire.next_slot,
                created[-1] if created else None,
                None if fire.missed is None else json.dumps(fire.missed),
                workflow_id,
            ),
        )
        return created

    def set_paused(self, workflow_id: str, paused: bool) -> None:
        """Pause or resume a workflow's schedule. Resuming starts from now: the slots
        that fell while paused never fire. NotFound for an unknown workflow, Conflict
        (``no_schedule``) for one without a schedule."""
        with self.write() as conn:
            if not conn.execute(
                "SELECT 1 FROM workflows WHERE id=? AND deleted=0", (workflow_id,)
            ).fetchone():
                raise NotFound(f"unknown workflow {workflow_id!r}")
            row = conn.execute(
                "SELECT spec, anchor, paused FROM schedules WHERE workflow_id=?", (workflow_id,)
            ).fetchone()
            if row is None:
                raise Conflict(
                    f"workflow {workflow_id!r} has no schedule; register it with a 'schedule' "
                    "first (PUT /workflows/{id})",
                    code="no_schedule",
                )
            if bool(row[2]) == paused:
                return
            now = self.clock()
            nxt = None if paused else Schedule.from_json(json.loads(row[0])).next_slot(now, row[1])
            conn.execute(
                "UPDATE schedules SET paused=?, next_slot=?, last_slot=CASE WHEN ? THEN "
                "last_slot ELSE ? END, updated_at=? WHERE workflow_id=?",
                (int(paused), nxt, int(paused), now, utcnow(), workflow_id),
            )

    # -- attempts abandoned but still running ---------------------------------------------
    def sync_abandoned(self, owner: str, rows: list[tuple[str, str, int, float]]) -> None:
        """Make ``rows`` (execution, task, attempt, since) the attempts ``owner`` reports
        abandoned but still running (those it no longer reports have ended)."""
        with self.write() as conn:
            conn.execute("DELETE FROM abandoned WHERE owner=?", (owner,))
            conn.executemany(
                "INSERT OR REPLACE INTO abandoned VALUES (?,?,?,?,?)",
                [(*row, owner) for row in rows],
            )

    def abandoned(self, execution_id: str) -> dict[str, tuple[int, float, str]]:
        """Task -> (attempt, since, owner) of an execution's attempts abandoned but still
        running, as their owners last reported them."""
        rows = (
            self._conn()
            .execute(
                "SELECT name, attempt, since, owner FROM abandoned WHERE execution_id=?",
                (execution_id,),
            )
            .fetchall()
        )
        return {name: (attempt, since, owner) for name, attempt, since, owner in rows}

    # -- snapshots ------------------------------------------------------------------------
    def save_snapshots(self, snapshots: list[tuple[str, str, str, bytes, str]]) -> None:
        """Record ``(hash, name, source, pickle, python version)`` rows (a hash already
        there is kept: it is the same bytes)."""
        if not snapshots:
            return
        now = utcnow()
        with self.write() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO snapshots VALUES (?,?,?,?,?,?)",
                [(*snap, now) for snap in snapshots],
            )

    def function_snapshot(self, digest: str) -> tuple[str, str, bytes, str, str] | None:
        """``(name, source, pickle, python version, created_at)`` of a snapshot, or None."""
        row = (
            self._conn()
            .execute(
                "SELECT name, source, pickle, python, created_at FROM snapshots WHERE hash=?",
                (digest,),
            )
            .fetchone()
        )
        return None if row is None else (row[0], row[1], bytes(row[2]), row[3], row[4])

    def snapshot_info(self, digests: set[str]) -> dict[str, tuple[str, str, str, str]]:
        """``digest -> (function name, source, python version, created_at)`` of those
        stored (no pickle bytes)."""
        found: dict[str, tuple[str, str, str, str]] = {}
        wanted = sorted(digests)
        conn = self._conn()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            for row in conn.execute(
                "SELECT hash, name, source, python, created_at FROM snapshots WHERE hash IN "
                f"({','.join('?' * len(chunk))})",
                chunk,
            ):
                found[row[0]] = (row[1], row[2], row[3], row[4])
        return found

    def missing_snapshots(self, digests: set[str]) -> set[str]:
        """Those of ``digests`` that are not stored."""
        conn = self._conn()
        return {
            d
            for d in digests
            if not conn.execute("SELECT 1 FROM snapshots WHERE hash=?", (d,)).fetchone()
        }

    def commit(self, execution_id: str, changes: Changes) -> list[Event] | None:
        """Write one batch of state changes of an execution in one transaction (the
        engine's port, see ``engine.RunStore``).

        Events get their ``seq`` here. Nothing is written for an execution that is
        already terminal in the database (a late update never overwrites a final state)
        and None is returned; else the events, with their ``seq``.
        """
        # everything but the seq is encoded before the write lock is taken
        events = changes.events
        task_rows = task_writes(execution_id, changes.tasks) if changes.tasks else None
        if changes.instances:
            task_rows = {
                **(task_rows or {}),
                **task_writes(execution_id, changes.instances, instances=True),
            }
        event_rows = [event_row(event) for event in events] if events else None
        execution, logs = changes.execution, changes.logs
        conn = self._conn(self.RECHECK)
        try:
            conn.execute(self.BEGIN)
            # the execution's status and the last seq, in one statement
            status, last = conn.execute(
                "SELECT (SELECT status FROM executions WHERE id=?), "
                "(SELECT coalesce(max(seq), 0) FROM events)",
                (execution_id,),
            ).fetchone()
            if status is None or status in TERMINAL_EXECUTION:
                conn.execute("ROLLBACK")
                return None
            if event_rows:
                by_sql: dict[str, list[tuple[Any, ...]]] = {}
                for seq, (sql, row) in enumerate(event_rows, last + 1):
                    by_sql.setdefault(sql, []).append((seq, *row))
                for sql, rows in by_sql.items():
                    conn.executemany(sql, rows)
            if task_rows:
                for sql, rows in task_rows.items():
                    conn.executemany(sql, rows)
            if logs:
                conn.executemany(
                    "INSERT OR REPLACE INTO task_logs VALUES (?,?,?,?,?)",
                    [(execution_id, *entry) for entry in logs],
                )
            if changes.instance_logs:
                conn.executemany(
                    "INSERT OR REPLACE INTO instance_logs VALUES (?,?,?,?,?,?)",
                    [(execution_id, *entry) for entry in changes.instance_logs],
                )
            if execution:
                cols = sorted(set(execution) & EXEC_COLUMNS)
                conn.execute(
                    f"UPDATE executions SET {', '.join(c + '=?' for c in cols)} WHERE id=?",
                    [execution[c] for c in cols] + [execution_id],
                )
            conn.execute("COMMIT")
        except BaseException as exc:
            error = self._abort_write(conn, exc)
            if error is exc:
                raise
            raise error from exc
        self._checkpointer.committed()
        if event_rows:
            for seq, event in enumerate(events, last + 1):
                event.seq = seq
        return events

    def request_cancel(self, execution_id: str) -> None:
        """Ask the owner of an execution (maybe another process) to cancel it."""
        with self.write() as conn:
            row = conn.execute(
                "SELECT status FROM executions WHERE id=?", (execution_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"unknown execution {execution_id!r}")
            if row[0] in TERMINAL_EXECUTION:
                raise Conflict(f"execution {execution_id!r} is already {row[0]}")
            conn.execute("UPDATE executions SET cancel_requested=1 WHERE id=?", (execution_id,))

    def control(self, execution_id: str) -> tuple[str, bool]:
        """``(status, cancel_requested)`` of an execution, for its owner's loop to poll."""
        row = (
            self._conn()
            .execute("SELECT status, cancel_requested FROM executions WHERE id=?", (execution_id,))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"unknown execution {execution_id!r}")
        return row[0], bool(row[1])

    def task_runs(
        self, execution_id: str, name: str | None = None, *, names: list[str] | None = None
    ) -> dict[str, TaskRun]:
        """Stored task runs of an execution (a task with no row is pending); of the task
        ``name`` only, or of ``names`` (a page of tasks), when given: those rows read,
        not the execution's thousands."""
        sql = f"SELECT name, {', '.join(TASK_COLUMNS)} FROM task_runs WHERE execution_id=?"
        args: tuple[str, ...] = (execution_id,)
        if name is not None:
            sql, args = sql + " AND name=?", (execution_id, name)
        elif names is not None:  # at most a page (1,000): under SQLite's 32,766 variables
            sql += f" AND name IN ({','.join('?' * len(names))})"
            args = (execution_id, *names)
        rows = self._conn().execute(sql, args).fetchall()
        return {r[0]: _task_run(r) for r in rows}

    def task_counts(self, execution_id: str) -> dict[str, int]:
        """How many of an execution's stored task rows are in each status."""
        rows = self._conn().execute(
            "SELECT status, count(*) FROM task_runs WHERE execution_id=? GROUP BY status",
            (execution_id,),
        )
        return dict(rows.fetchall())

    def instance_runs(self, execution_id: str) -> dict[str, dict[int, TaskRun]]:
        """Stored runs of the instances of an execution's mapped tasks, by task and index."""
        rows = self._conn().execute(_INSTANCES + " WHERE execution_id=?", (execution_id,))
        out: dict[str, dict[int, TaskRun]] = {}
        for run in map(_instance_run, rows.fetchall()):
            assert run.map_index is not None  # every instance row has one
            out.setdefault(run.name, {})[run.map_index] = run
        return out

    def instances(
        self,
        execution_id: str,
        name: str,
        *,
        status: str | None = None,
        cursor: int = 0,
        limit: int = 100,
    ) -> tuple[list[TaskRun], int | None]:
        """A page of a mapped task's instance runs from index ``cursor`` on, in index
        order (only those in ``status``); returns ``(page, next_cursor)``."""
        sql = _INSTANCES + " WHERE execution_id=? AND name=? AND map_index>=?"
        args: list[Any] = [execution_id, name, cursor]
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        rows = self._conn().execute(sql + " ORDER BY map_index LIMIT ?", [*args, limit + 1])
        page = [_instance_run(r) for r in rows.fetchall()]
        more = len(page) > limit
        page = page[:limit]
        return page, (page[-1].map_index + 1 if more and page[-1].map_index is not None else None)

    def revisions(self, workflow_id: str) -> list[tuple[int, str, Json]]:
        """Every revision of a workflow, newest first: ``(revision, created_at,
        definition)``; NotFound for an unknown or deleted workflow."""
        rows = (
            self._conn()
            .execute(
                "SELECT revision, created_at, definition FROM workflows WHERE id=? AND "
                "deleted=0 ORDER BY revision DESC",
                (workflow_id,),
            )
            .fetchall()
        )
        if not rows:
            raise NotFound(f"unknown workflow {workflow_id!r}")
        return [(rev, created, loads(text)) for rev, created, text in rows]

    def execution_row(self, execution_id: str) -> Json:
        """The raw execution row (snake_case), or NotFound."""
        cur = self._conn().execute("SELECT * FROM executions WHERE id=?", (execution_id,))
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"unknown execution {execution_id!r}")
        data = dict(zip([c[0] for c in cur.description], row, strict=True))
        data["params"] = loads(data["params"]) or {}
        return data

    def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        limit: int = 100,
        cursor: int | None = None,
    ) -> tuple[list[Json], int | None]:
        """Execution rows newest first; returns ``(page, next_cursor)``."""
        where = ["1=1"]
        args: list[Any] = []
        for column, value in (
            ("workflow_id", workflow_id),
            ("status", status),
            ("trigger", trigger),
        ):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if cursor is not None:
            where.append("rowid<?")
            args.append(cursor)
        cur = self._conn().execute(
            f"SELECT rowid AS _rowid, * FROM executions WHERE {' AND '.join(where)} "
            "ORDER BY rowid DESC LIMIT ?",
            [*args, limit + 1],
        )
        cols = [c[0] for c in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        for row in rows:
            row["params"] = loads(row["params"]) or {}
        return rows, (rows[-1]["_rowid"] if more else None)

    def executions_where(
        self, *, statuses: tuple[str, ...] = ACTIVE, owner: str | None = None
    ) -> list[Json]:
        """Raw rows of executions in ``statuses`` (optionally of one owner)."""
        sql = f"SELECT * FROM executions WHERE status IN ({','.join('?' * len(statuses))})"
        args: list[Any] = list(statuses)
        if owner is not None:
            sql += " AND owner=?"
            args.append(owner)
        cur = self._conn().execute(sql, args)
        cols = [c[0] for c in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        for row in rows:
            row["params"] = loads(row["params"]) or {}
        return rows

    def heartbeat(self, owner: str, execution_ids: list[str]) -> None:
        """Mark these active executions of ``owner`` (those it is running now) alive."""
        if not execution_ids:
            return  # nothing running: no write transaction at all
        now = time.time()
        with self.write() as conn:
            for i in range(0, len(execution_ids), 500):
                chunk = execution_ids[i : i + 500]
                conn.execute(
                    f"UPDATE executions SET heartbeat=? WHERE owner=? AND status IN "
                    f"(?,?) AND id IN ({','.join('?' * len(chunk))})",
                    (now, owner, *ACTIVE, *chunk),
                )

    def claim(
        self, execution_id: str, owner: str, previous: str | None, executor: str | None = None
    ) -> bool:
        """Take ownership of an active execution if ``previous`` still owns it (and
        record the ``executor`` that runs it from now on)."""
        with self.write() as conn:
            cur = conn.execute(
                "UPDATE executions SET owner=?, heartbeat=?, "
                "executor=COALESCE(?, executor) WHERE id=? AND "
                "owner IS ? AND status IN (?,?)",
                (owner, time.time(), executor, execution_id, previous, *ACTIVE),
            )
            return cur.rowcount == 1

    # -- logs and events ----------------------------------------------------------------
    def get_logs(self, execution_id: str, name: str, map_index: int | None = None) -> list[Json]:
        """Captured stdout/stderr of each attempt of a task (of one of its instances when
        ``map_index`` is given)."""
        row = self.execution_row(execution_id)
        spec = self.load_workflow(row["workflow_id"], row["revision"]).task_map.get(name)
        if spec is None:
            raise NotFound(f"execution {execution_id!r} has no task {name!r}")
        args: tuple[Any, ...] = (execution_id, name)
        if map_index is None:
            sql = "FROM task_logs WHERE execution_id=? AND name=?"
        else:
            if spec.map_over is None:
                raise InvalidInput(
                    f"task {name!r} is not mapped; map_index applies to mapped tasks only",
                    code="not_mapped",
                )
            sql = "FROM instance_logs WHERE execution_id=? AND name=? AND map_index=?"
            args += (map_index,)
        rows = (
            self._conn()
            .execute(f"SELECT attempt, stdout, stderr {sql} ORDER BY attempt", args)
            .fetchall()
        )
        return [{"attempt": a, "stdout": o, "stderr": e} for a, o, e in rows]

    def snapshot(self, execution_id: str) -> tuple[int, Json, dict[str, TaskRun]]:
        """The last event ``seq``, the execution row and its task runs, read in one
        transaction: the execution as it was when that event was the last (separate reads
        could show a task running in an execution still ``pending``)."""
        conn = self._conn()
        conn.execute("BEGIN")  # deferred: a read transaction, no lock taken
        try:
            row = self.execution_row(execution_id)
            return self.last_seq(), row, self.task_runs(execution_id)
        finally:
            conn.execute("COMMIT")

    def last_seq(self) -> int:
        """The highest committed event ``seq`` (0 when there is none)."""
        return int(self._conn().execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    def events(
        self,
        seq: int,
        *,
        execution: str | None = None,
        workflow: str | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Stored events after ``seq``, oldest first, as published."""
        conn = self._conn()
        sql = (
            "SELECT seq, execution_id, workflow_id, event, task, timestamp, status, attempt,"
            " duration, extra, payload FROM events WHERE seq>?"
        )
        args: list[Any] = []
        if execution is not None:
            sql += " AND execution_id=?"
            args.append(execution)
            first = "SELECT first_seq FROM executions WHERE id=?"
        if workflow is not None:
            sql += " AND execution_id IN (SELECT id FROM executions WHERE workflow_id=?)"
            args.append(workflow)
            if execution is None:
                first = "SELECT min(first_seq) FROM executions WHERE workflow_id=?"
        if args:  # no index on events: start the scan where the first execution began
            row = conn.execute(first, args[:1]).fetchone()
            seq = max(seq, row[0] or 0) if row else seq
        rows = conn.execute(sql + " ORDER BY seq LIMIT ?", [seq, *args, limit]).fetchall()
        return [event_from_row(r) for r in rows]
