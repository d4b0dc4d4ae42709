"""Faults of issue 15 in the workers: each test runs real task code on a real executor
(threads, worker processes) and fails without its fix."""

from __future__ import annotations

import queue
import sys

import pytest

from pytaskflow_jupyter.executors import ProcessExecutor, ThreadExecutor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.tasks import Job, Outcome

from .helpers import statuses, task, wait_until, wf

GUARD = 60  # seconds before a lost report fails the test instead of hanging it


def job(name: str, code: str) -> Job:
    return Job("exec_f", "wf", name, 1, "python", {"code": code})


@pytest.fixture
def threads():
    ex = ThreadExecutor(2)
    yield ex
    ex.shutdown(wait=False)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("raise SystemExit(3)", "SystemExit: 3"),
        ("raise KeyboardInterrupt('ctrl-c')", "KeyboardInterrupt: ctrl-c"),
        ("class Odd(BaseException): pass\nraise Odd('odd')", "Odd: odd"),
    ],
    ids=["system_exit", "keyboard_interrupt", "base_exception"],
)
def test_a_base_exception_fails_its_attempt_and_the_thread_pool_keeps_its_threads(
    threads, code, error
):
    q: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    for i in range(10):  # five times as many as there are threads
        threads.submit(job(f"exit{i}", code), q.put)
    outcomes = [q.get(timeout=GUARD) for _ in range(10)]
    assert sorted(o.task for o in outcomes) == sorted(f"exit{i}" for i in range(10))
    assert all(not o.ok and o.error == error for o in outcomes)
    assert all(o.traceback and error.split(":")[0] in o.traceback for o in outcomes)
    threads.submit(job("after", "result = 42"), q.put)
    after = q.get(timeout=GUARD)
    assert after.ok and after.result == 42
    assert all(t.is_alive() for t in threads._threads)


def test_a_failing_report_does_not_cost_the_thread_pool_a_thread(threads):
    q: queue.SimpleQueue[Outcome] = queue.SimpleQueue()

    def broken(outcome: object) -> None:
        q.put(outcome)  # type: ignore[arg-type]
        raise RuntimeError("the engine's queue is gone")

    for i in range(4):
        threads.submit(job(f"t{i}", "result = 1"), broken)
    assert len([q.get(timeout=GUARD) for _ in range(4)]) == 4
    threads.submit(job("after", "result = 2"), q.put)
    assert q.get(timeout=GUARD).result == 2
    assert all(t.is_alive() for t in threads._threads)


def test_an_execution_whose_task_calls_sys_exit_fails_instead_of_running_forever(store, threads):
    runner = Runner(store, threads)
    try:
        ex = runner.submit(
            wf(
                task("quit", code="import sys\nsys.exit(3)"),
                task("after", "quit"),
                task("free", code="result = 1"),
                name="exits",
            )
        )
        done = runner.wait(ex["id"], GUARD)
    finally:
        runner.close()
    assert done["status"] == "failed"
    assert statuses(done) == {"quit": "failed", "after": "skipped", "free": "completed"}
    assert next(t for t in done["tasks"] if t["name"] == "quit")["error"] == "SystemExit: 3"


@pytest.fixture
def processes():
    ex = ProcessExecutor(1)
    yield ex
    ex.shutdown(wait=False)


def test_a_worker_that_exits_reports_its_exit_code_and_the_tail_of_its_stderr(processes):
    q: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    code = "import os\nos.write(2, b'about to leave\\nlast words\\n')\nos._exit(3)"
    processes.submit(job("leaves", code), q.put)
    out = q.get(timeout=GUARD)
    assert not out.ok
    assert "died (exit code 3)" in out.error, out.error
    assert "SIGKILL" not in out.error and "out of memory" not in out.error
    assert out.error.endswith("; its stderr ends with: last words")
    assert "about to leave\nlast words" in out.stderr
    processes.submit(job("next", "result = 7"), q.put)
    assert q.get(timeout=GUARD).result == 7  # a fresh worker took over


# the worker's pipe closes a moment before the process exits (as when SystemExit
# unwinds the worker): its exit code, not the SIGKILL of the cleanup, is reported
SLOW_EXIT = """
import gc, os, time
from multiprocessing.connection import Connection
for obj in gc.get_objects():
    if isinstance(obj, Connection) and not obj.closed:
        obj.close()
time.sleep(0.5)
os._exit(3)
"""


def test_a_worker_whose_pipe_ends_before_it_exits_reports_its_own_exit_code(processes):
    q: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
    processes.submit(job("slow", SLOW_EXIT), q.put)
    out = q.get(timeout=GUARD)
    assert not out.ok and "died (exit code 3)" in out.error, out.error
    assert "out of memory" not in out.error


def test_a_worker_that_dies_at_start_up_reports_why(tmp_path):
    # an install the workers cannot import: a package of the same name that fails first
    # on their sys.path (this process has the real one imported already)
    fake = tmp_path / "pytaskflow_jupyter"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('broken install: no module spam')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        ex = ProcessExecutor(1)
        wait_until(ex.pids)  # spawned: its sys.path is fixed
    finally:
        sys.path.remove(str(tmp_path))
    try:
        q: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        ex.submit(job("first", "result = 1"), q.put)
        out = q.get(timeout=GUARD)
    finally:
        ex.shutdown(wait=False)
    assert not out.ok and out.error.startswith("WorkerDied: worker process ")
    assert "(exit code 1)" in out.error
    assert "ImportError: broken install: no module spam" in out.error
    assert "Traceback" in out.stderr and "broken install" in out.traceback


# -- item 11: cancel and timeout stop Python code in the thread executor --------------------
def test_a_stopped_attempt_in_a_thread_stops_and_frees_its_thread(tmp_path):
    """One thread: a busy loop is stopped (before, it held the only thread for good)."""
    ex = ThreadExecutor(1)
    try:
        q: queue.SimpleQueue = queue.SimpleQueue()
        marker = tmp_path / "after"
        code = f"while True:\n    pass\nopen({str(marker)!r}, 'w')"
        handle = ex.submit(job("spin", code), q.put)
        wait_until(lambda: handle.state == 1)  # RUNNING
        ex.stop(handle)
        stopped: Outcome = q.get(timeout=GUARD)
        assert not stopped.ok and "TaskStopped" in (stopped.error or "")
        ex.submit(job("next", "result = 42"), q.put)
        after: Outcome = q.get(timeout=GUARD)  # the thread serves again
        assert after.ok and after.result == 42
        assert not marker.exists()
    finally:
        ex.shutdown(wait=False)


def test_code_blocked_in_c_ends_when_it_returns_to_python(tmp_path):
    ex = ThreadExecutor(1)
    try:
        q: queue.SimpleQueue = queue.SimpleQueue()
        marker = tmp_path / "after"
        code = f"import time\ntime.sleep(1.5)\nopen({str(marker)!r}, 'w')"
        handle = ex.submit(job("sleeps", code), q.put)
        wait_until(lambda: handle.state == 1)
        ex.stop(handle)
        stopped: Outcome = q.get(timeout=GUARD)  # once the sleep returned
        assert not stopped.ok and "TaskStopped" in (stopped.error or "")
        assert not marker.exists()  # the line after the sleep never ran
    finally:
        ex.shutdown(wait=False)


def test_a_timeout_in_the_thread_executor_stops_the_task_code(store, tmp_path):
    runner = Runner(store, ThreadExecutor(1))
    try:
        marker = tmp_path / "after"
        spin = (
            "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 30:\n    pass\n"
            f"open({str(marker)!r}, 'w')"
        )
        execution = runner.submit(wf(task("spin", code=spin, timeout=0.5)))
        done = runner.wait(execution["id"], timeout=GUARD)
        assert statuses(done) == {"spin": "failed"}
        assert done["tasks"][0]["reason"] == "timeout"
        again = runner.submit(wf(task("quick", code="result = 2"), name="again"))
        assert runner.wait(again["id"], timeout=10)["status"] == "completed"  # the thread is free
        assert not marker.exists()
    finally:
        runner.close()
        runner.executor.shutdown(wait=False)


def test_an_attempt_blocked_in_c_is_shown_abandoned_while_it_runs_on(store):
    """REST (``Runner.get``, as ``GET /executions/{id}``) says that a timed-out attempt
    still runs in its thread, and stops saying it once the code returned."""
    runner = Runner(store, ThreadExecutor(1), heartbeat_interval=0.1)
    try:
        execution = runner.submit(
            wf(task("sleeps", code="import time\ntime.sleep(2.5)", timeout=0.3))
        )
        done = runner.wait(execution["id"], timeout=GUARD)
        assert done["tasks"][0]["reason"] == "timeout"

        def shown():
            return runner.get(execution["id"])["tasks"][0]["abandoned"]

        flagged = wait_until(shown, timeout=GUARD)
        assert flagged["attempt"] == 1 and flagged["since"].endswith("Z")
        wait_until(lambda: shown() is None, timeout=GUARD)  # the sleep returned: it ended
        assert runner.get(execution["id"], detail=False)["tasks"][0].get("abandoned") is None
    finally:
        runner.close()
        runner.executor.shutdown(wait=False)
