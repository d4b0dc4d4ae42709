"""Ownership: heartbeats of live loops only; who takes over the executions of dead owners."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from pytaskflow_jupyter.events import EventBus
from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.model import TaskRun
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.store import Store
from pytaskflow_jupyter.transitions import Changes
from pytaskflow_jupyter.validation import Limits, parse_workflow

from .helpers import statuses, task, wait_until, wf


@pytest.fixture
def dead_pid():
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def orphan(store, execution_id, owner, *, heartbeat=None):
    """An execution left 'running' by ``owner``: 'a' completed, 'b' running."""
    b = task("b", "a", code="result = upstream['a'] + 1", retries=1)
    store.save_workflow(parse_workflow(wf(task("a", code="result = 1"), b, name="orphans")))
    store.create_execution(execution_id, "orphans", 1, owner=owner)
    done = TaskRun("a", "completed", 1, result=1)
    store.commit(
        execution_id,
        Changes(execution={"status": "running"}, tasks=[done, TaskRun("b", "running", 1)]),
    )
    if heartbeat is not None:
        with store.write() as conn:
            conn.execute("UPDATE executions SET heartbeat=? WHERE id=?", (heartbeat, execution_id))


@pytest.fixture
def make_runner(store):
    made = []

    def make(role, **kw):
        executor = ThreadExecutor(2)
        runner = Runner(store, executor, EventBus(), role=role, **kw)
        made.append((runner, executor))
        return runner

    yield make
    for runner, executor in made:
        runner.close()
        executor.shutdown(wait=False)


@pytest.fixture
def two_orphans(store, dead_pid):
    """A dead server's execution and a dead kernel's; returns the server's owner."""
    host = socket.gethostname()
    orphan(store, "exec_server", f"{host}:{dead_pid}:aa:server")
    orphan(store, "exec_kernel", f"{host}:{dead_pid}:bb:kernel")
    return f"{host}:{dead_pid}:aa:server"


def test_a_server_resumes_a_dead_servers_execution_and_fails_a_dead_kernels(
    make_runner, two_orphans
):
    server = make_runner("server")
    assert sorted(server.recover()) == ["exec_kernel", "exec_server"]
    resumed = server.wait("exec_server", 30)
    assert resumed["status"] == "completed"
    a, b = resumed["tasks"]
    assert (a["attempts"], b["attempts"], b["result"]) == (1, 2, 2)  # a reused, b rerun
    lost = server.get("exec_kernel")
    assert (lost["status"], lost["reason"]) == ("failed", "owner_lost")
    assert statuses(lost) == {"a": "completed", "b": "failed"}


def test_a_kernel_leaves_a_dead_servers_execution_to_the_next_server(
    store, make_runner, two_orphans
):
    kernel = make_runner("kernel")
    assert kernel.recover() == ["exec_kernel"]
    row = store.execution_row("exec_server")
    assert (row["status"], row["owner"]) == ("running", two_orphans)
    assert store.execution_row("exec_kernel")["reason"] == "owner_lost"


def test_a_live_owner_elsewhere_is_left_alone_until_its_heartbeat_is_stale(store, make_runner):
    orphan(store, "exec_far", "otherhost:1:cc:server", heartbeat=time.time())
    server = make_runner("server", stale_after=30)
    assert server.recover() == []
    with store.write() as conn:
        conn.execute("UPDATE executions SET heartbeat=? WHERE id='exec_far'", (time.time() - 31,))
    assert server.recover() == ["exec_far"]
    assert server.wait("exec_far", 30)["status"] == "completed"


def test_heartbeats_cover_only_executions_whose_loop_is_alive(store, make_runner):
    server = make_runner("server", heartbeat_interval=0.05, stale_after=0.5)
    # an execution of this runner whose loop is gone (say, an engine failure that could
    # not even record itself): nobody renews its heartbeat, so it gets taken over
    orphan(store, "exec_mine", server.owner, heartbeat=time.time())
    live = server.submit(
        wf(
            task("slow", callable="tests.unit.sample_tasks:sleep", kwargs={"seconds": 1.5}),
            name="live",
        )
    )
    time.sleep(0.8)
    rows = {r["id"]: r for r in store.executions_where()}
    assert time.time() - rows["exec_mine"]["heartbeat"] > 0.5
    assert time.time() - rows[live["id"]]["heartbeat"] < 0.5
    assert server.recover() == ["exec_mine"]
    assert server.wait("exec_mine", 30)["status"] == "completed"
    wait_until(lambda: server.get(live["id"])["status"] == "completed")


def test_role_is_checked():
    with pytest.raises(ValueError, match="role must be one of"):
        Runner(None, ThreadExecutor(1), role="worker")  # type: ignore[arg-type]


def test_an_adopted_or_resumed_execution_records_the_executor_that_runs_it(
    store, make_runner, dead_pid
):
    server = make_runner("server")
    server.register(wf(task("a"), name="queued"))
    queued = server.enqueue("queued")
    assert store.execution_row(queued["id"])["executor"] is None
    assert server.adopt_submitted() == [queued["id"]]
    orphan(store, "exec_server", f"{socket.gethostname()}:{dead_pid}:aa:server")
    with store.write() as conn:
        conn.execute("UPDATE executions SET executor='process' WHERE id='exec_server'")
    server.recover()
    for execution_id in (queued["id"], "exec_server"):
        assert server.wait(execution_id, 30)["executor"] == "thread"


def test_the_definition_cache_is_bounded_by_tasks(store):
    store.CACHE_TASKS = 25
    for i in range(6):
        store.save_workflow(parse_workflow(wf(*[task(f"t{j}") for j in range(10)], name=f"w{i}")))
        store.load_workflow(f"w{i}", 1)
    assert sum(len(w.tasks) for w in store._workflow_cache.values()) <= 25
    assert list(store._workflow_cache) == [("w4", 1), ("w5", 1)]
    assert len(store.load_workflow("w0", 1).tasks) == 10  # evicted ones load again


def test_a_restarted_server_with_the_dead_ones_pid_resumes_at_once(store, make_runner):
    # in a container a restarted server often gets the same pid (1) as the dead one
    orphan(
        store,
        "exec_same_pid",
        f"{socket.gethostname()}:{os.getpid()}:dead:server",
        heartbeat=time.time(),
    )
    kernel_thread, kernel_process = make_runner("kernel"), make_runner("kernel")
    orphan(store, "exec_sibling", kernel_process.owner, heartbeat=time.time())
    assert kernel_thread.recover() == []  # a live runner of this process is left alone
    server = make_runner("server", stale_after=30)
    assert server.recover() == ["exec_same_pid"]
    assert server.wait("exec_same_pid", 30)["status"] == "completed"


def test_a_stored_definition_loads_whatever_the_limits_of_the_reader(tmp_path):
    big = wf(
        task("a"),
        *[task(f"t{i}", "a") for i in range(30)],
        task("join", *[f"t{i}" for i in range(30)]),
        name="wide",
    )
    writer = Store(tmp_path / "t.db", limits=Limits(max_dependencies=50))
    writer.save_workflow(parse_workflow(big, writer.limits))
    writer.close()
    reader = Store(tmp_path / "t.db", limits=Limits(max_dependencies=10))
    try:
        assert len(reader.load_workflow("wide", 1).tasks) == 32
    finally:
        reader.close()


def test_a_closed_runner_whose_loop_still_runs_is_not_taken_over_in_its_process(store, make_runner):
    old = make_runner("server")
    ex = old.submit(
        wf(
            task("slow", callable="tests.unit.sample_tasks:sleep", kwargs={"seconds": 1}),
            name="slowly",
        )
    )
    wait_until(lambda: statuses(old.get(ex["id"]))["slow"] == "running")
    old.close(wait=0)
    assert make_runner("server").recover() == []  # the loop is alive: no second run
    done = old.wait(ex["id"], 30)
    assert done["status"] == "completed" and done["tasks"][0]["attempts"] == 1
