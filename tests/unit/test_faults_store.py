"""Faults of issue 15 in the store and the run state (items 7, 8 and 13), on real SQLite
files and real processes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pytaskflow_jupyter.errors import StorageUnavailable
from pytaskflow_jupyter.events import make_event
from pytaskflow_jupyter.model import TaskRun
from pytaskflow_jupyter.store import Store
from pytaskflow_jupyter.transitions import Changes
from pytaskflow_jupyter.validation import parse_workflow

from .helpers import task, wf

# One "server" process: it submits the execution (first run) or resumes what the dead
# ones left (recover), with the inline executor, so a task that exits the process kills
# the server running it. It prints the execution when it ends.
SERVER = textwrap.dedent(
    """
    import json, sys
    from pytaskflow_jupyter.executors import InlineExecutor
    from pytaskflow_jupyter.runner import Runner
    from pytaskflow_jupyter.store import Store

    store = Store(sys.argv[1])
    runner = Runner(store, InlineExecutor(), role="server", max_interruptions=2)
    if sys.argv[2] == "submit":
        execution_id = runner.submit(json.loads(sys.argv[3]))["id"]
    else:
        (execution_id,) = runner.recover()
    done = runner.wait(execution_id, 60)
    print(json.dumps({t["name"]: [t["status"], t["attempts"], t["reason"]]
                      for t in done["tasks"]}))
    runner.close()
    """
)


def serve(db, *args):
    return subprocess.run(
        [sys.executable, "-c", SERVER, str(db), *args], capture_output=True, text=True, timeout=120
    )


def test_a_task_that_keeps_killing_the_server_is_rerun_then_fails_interrupted(tmp_path):
    """Item 13: an interruption is not a failure. 'killer' (retries 0) kills the server
    running it at every attempt: each next server reruns it without using up a retry,
    until it was interrupted more than max_interruptions (2) times; then it fails with
    reason ``interrupted``. The count is durable across the processes."""
    db = tmp_path / "taskflow.db"
    definition = wf(
        task("ok", code="result = 1"),
        task("killer", "ok", code="import os; os._exit(3)", retries=0),
        name="killing",
    )
    first = serve(db, "submit", json.dumps(definition))
    assert first.returncode == 3, first.stderr
    for _ in range(2):  # two reruns: each kills its server too
        again = serve(db, "recover")
        assert again.returncode == 3, again.stdout + again.stderr
    last = serve(db, "recover")
    assert last.returncode == 0, last.stderr
    assert json.loads(last.stdout) == {
        "ok": ["completed", 1, None],
        "killer": ["failed", 3, "interrupted"],
    }
    store = Store(db)
    (runs,) = [store.task_runs(row["id"]) for row in store.list_executions()[0]]
    assert runs["killer"].interruptions == 3
    store.close()


def in_new_thread(fn):
    """``fn()`` in a thread of its own (its own connection): its result or its error."""
    out: list[object] = []

    def target():
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return out[0]


def test_a_deleted_database_is_refused_and_never_recreated(tmp_path):
    """Item 7: after the file is deleted, neither a connection open before (reads and
    writes) nor a new thread's connection uses it, and no empty database appears."""
    db = tmp_path / "taskflow.db"
    store = Store(db)
    store.save_workflow(parse_workflow(wf(task("a"))))
    assert [r.definition["id"] for r in store.workflows()] == ["wf"]
    db.unlink()
    with pytest.raises(StorageUnavailable, match="was deleted while in use") as caught:
        store.workflows()  # this thread's connection still has the old file open
    assert str(db) in caught.value.message and caught.value.status == 503
    assert caught.value.code == "storage_unavailable"
    with pytest.raises(StorageUnavailable):
        store.save_workflow(parse_workflow(wf(task("b"))))
    fresh = in_new_thread(store.workflows)  # a thread without a connection yet
    assert isinstance(fresh, StorageUnavailable), fresh
    assert not db.exists()
    store.close()


def test_the_engine_s_commits_refuse_a_deleted_database_within_recheck(tmp_path):
    """The engine's ``commit`` checks the file at most every ``RECHECK`` seconds (a
    chain commits every ~100 us): once that has passed since its last check, a
    deleted file is refused, and nothing is written to a new one."""
    db = tmp_path / "taskflow.db"
    store = Store(db)
    store.save_workflow(parse_workflow(wf(task("a"))))
    store.create_execution("exec_d", "wf", 1)
    started = Changes(
        tasks=[TaskRun("a", "running", 1, start_time="2026-01-01T00:00:00Z")],
        events=[make_event("task_started", "exec_d", "wf", "running", task="a", attempt=1)],
        execution={"status": "running"},
    )
    assert [e.seq for e in store.commit("exec_d", started) or []] == [1]
    db.unlink()
    time.sleep(store.RECHECK)
    with pytest.raises(StorageUnavailable, match="was deleted while in use"):
        store.commit("exec_d", started)
    assert not db.exists()
    store.close()


def test_a_database_replaced_by_another_file_is_refused(tmp_path):
    """Item 7: the same path, another file (a restored copy): refused, not mixed in."""
    db = tmp_path / "taskflow.db"
    store = Store(db)
    store.save_workflow(parse_workflow(wf(task("a"))))
    store.close()
    copy = tmp_path / "copy.db"
    shutil.copy(db, copy)
    os.replace(copy, db)
    error = in_new_thread(store.workflows)
    assert isinstance(error, StorageUnavailable) and "replaced" in error.message, error


def capped(store):
    """Cap this thread's connection to the pages the file has: the next write that
    needs a new page fails with SQLite's own "database or disk is full"."""
    conn = store._conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")


def test_a_full_database_is_storage_unavailable_naming_the_cause(tmp_path, bus):
    """Item 8: a write that the disk cannot take raises StorageUnavailable naming
    SQLite's cause (not "cannot rollback - no transaction is active"), and nothing of
    it is written: neither through ``write`` nor through the engine's ``commit``."""
    store = Store(tmp_path / "taskflow.db")
    w = parse_workflow(wf(task("a")))
    store.save_workflow(w)
    store.create_execution("exec_f", "wf", 1)
    capped(store)
    big = parse_workflow(wf(task("a"), name="big", description="x" * 200_000))
    with pytest.raises(StorageUnavailable, match="database or disk is full") as caught:
        store.save_workflow(big)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert [r.definition["id"] for r in store.workflows()] == ["wf"]
    changes = Changes(
        tasks=[TaskRun("a", "running", 1, start_time="2026-01-01T00:00:00Z")],
        events=[make_event("task_started", "exec_f", "wf", "running", task="a", attempt=1)],
        execution={"status": "running"},
        logs=[("a", 1, "y" * 200_000, "")],
    )
    with pytest.raises(StorageUnavailable, match="database or disk is full"):
        store.commit("exec_f", changes)
    assert store.task_runs("exec_f") == {} and store.events(0) == []
    assert store.control("exec_f") == ("pending", False)
    store.close()
