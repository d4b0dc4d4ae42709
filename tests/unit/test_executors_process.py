"""The process executor with real worker processes: every way a task can go wrong fails
only its own attempt, stop really ends the running code, and the pool heals itself."""

from __future__ import annotations

import dataclasses
import itertools
import os
import pickle
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import cloudpickle
import pytest

from pytaskflow_jupyter._executor import QUEUED, RUNNING, STOPPED_QUEUED
from pytaskflow_jupyter.executors import ProcessExecutor, make_executor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.tasks import Job, Logs, Outcome, Started

from .helpers import reasons, statuses, task, wait_until, wf

S = "tests.unit.sample_tasks"
MEMORY_CAP = 1 << 30  # a worker needs ~300 MB of address space; the leak asks for more


@pytest.fixture(scope="module")
def executor():
    ex = ProcessExecutor(2, memory_limit=MEMORY_CAP)
    yield ex
    ex.shutdown(wait=False)


def job(name="t", code=None, params=None, **kw):
    params = dict(params or {})
    if code is not None:
        params["code"] = textwrap.dedent(code)
    return Job("exec_p", "wf", name, 1, "python", params, **kw)


def run_one(executor, j, timeout=30):
    q: queue.SimpleQueue = queue.SimpleQueue()
    executor.submit(j, q.put)
    out = q.get(timeout=timeout)
    return out, q


def alive(pid: int) -> bool:
    """Running (a zombie that nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before, or while, it was read
        return False


def read_pid(path, timeout=20):
    """The pid a task wrote to ``path`` (a Path), once it is there."""
    return wait_until(
        lambda: path.exists() and path.read_text().strip() and int(path.read_text()), timeout
    )


SEGFAULT = "import ctypes\nctypes.string_at(0)"
EXIT = "import os\nos._exit(1)"
LEAK = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))"
PID = "import os\nresult = os.getpid()"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("raise KeyError('nope')", "KeyError: 'nope'"),
        (SEGFAULT, "died (exit code -11, SIGSEGV)"),
        (EXIT, "died (exit code 1)"),
        (LEAK, "MemoryError"),
    ],
    ids=["raises", "segfault", "os_exit", "leak"],
)
def test_a_failing_task_fails_only_its_attempt(executor, code, error):
    out, q = run_one(executor, job("bad", code))
    assert not out.ok and out.task == "bad" and out.attempt == 1
    assert error in out.error
    after, _ = run_one(
        executor, job("next", params={"callable": f"{S}:add", "kwargs": {"a": 1, "b": 2}})
    )
    assert after.ok and after.result == 3
    assert q.empty()  # reported exactly once


def test_a_crash_reports_the_python_traceback_of_the_crash(executor):
    out, _ = run_one(
        executor, job("crash", "def deep():\n    " + SEGFAULT.replace("\n", "\n    ") + "\ndeep()")
    )
    assert "Segmentation fault" in out.stderr
    assert "deep" in out.traceback


def test_a_crashed_worker_is_replaced(executor):
    crashed, _ = run_one(executor, job(code=SEGFAULT))
    dead = int(crashed.error.split("worker process ")[1].split()[0])
    assert not alive(dead)
    wait_until(lambda: len(executor.pids()) == 2)
    assert dead not in executor.pids()
    outs = [run_one(executor, job(code=PID))[0] for _ in range(4)]
    assert all(o.ok for o in outs) and dead not in {o.result for o in outs}


def test_notebook_functions_and_non_json_results_travel(executor):
    offset = 10

    def closure(x):  # defined here, pickled by value like a notebook function
        return {x + offset, x}

    out, _ = run_one(executor, job("nb", params={"kwargs": {"x": 1}}, fn=closure))
    assert out.ok and out.result == {11, 1}


def test_a_result_that_cannot_travel_back_fails_clearly(executor):
    out, _ = run_one(executor, job(code="import threading\nresult = threading.Lock()"))
    assert not out.ok and "cannot be sent back from its worker process" in out.error


def test_stop_kills_the_worker_and_its_subprocesses(executor, tmp_path):
    pids = tmp_path / "pids"
    code = f"""
        import os, subprocess, time
        child = subprocess.Popen(['sleep', '600'])
        open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')
        time.sleep(600)
    """
    q: queue.SimpleQueue = queue.SimpleQueue()
    handle = executor.submit(job("hang", code), q.put)
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    worker, child = map(int, pids.read_text().split())
    executor.stop(handle)
    out = q.get(timeout=10)
    assert not out.ok and out.error.startswith("Stopped")
    wait_until(lambda: not alive(worker) and not alive(child), timeout=5)
    executor.stop(handle)  # a second stop is a no-op
    after, _ = run_one(executor, job(code=PID))
    assert after.ok and after.result != worker
    assert q.empty()


def test_stop_of_a_queued_attempt_reports_it_once_and_it_never_runs(tmp_path):
    ex = ProcessExecutor(1)
    try:
        marker = tmp_path / "ran"
        q: queue.SimpleQueue = queue.SimpleQueue()
        first = ex.submit(job("hang", "import time\ntime.sleep(600)"), q.put)
        queued = ex.submit(job("queued", f"open({str(marker)!r}, 'w').write('x')"), q.put)
        ex.stop(queued)
        out = q.get(timeout=10)
        assert out.task == "queued" and out.error.startswith("Stopped")
        ex.stop(first)
        assert q.get(timeout=10).task == "hang"
        assert run_one(ex, job(code=PID))[0].ok
        assert not marker.exists() and q.empty()
    finally:
        ex.shutdown(wait=False)


def test_concurrency_is_bounded_by_workers(executor):
    q: queue.SimpleQueue = queue.SimpleQueue()
    for i in range(8):
        executor.submit(
            job(f"t{i}", "import os, time\ntime.sleep(0.05)\nresult = os.getpid()"), q.put
        )
    outs = [q.get(timeout=30) for _ in range(8)]
    assert all(o.ok for o in outs) and len({o.result for o in outs}) <= 2


def test_worker_with_max_tasks_is_replaced():
    ex = make_executor("process", workers=1, max_tasks_per_worker=2)
    try:
        pids = [run_one(ex, job(code=PID))[0].result for _ in range(4)]
    finally:
        ex.shutdown()
    assert pids[0] == pids[1] != pids[2] == pids[3]


# -- end to end through a Runner ------------------------------------------------------
@pytest.fixture
def process_runner(store, executor):
    r = Runner(store, executor, heartbeat_interval=0.2)
    yield r
    r.close()


def test_a_chain_step_goes_from_the_slot_that_ended_it_to_its_own_worker(store, bus, executor):
    """A slot's thread that reads an outcome runs the engine's turn itself and keeps the
    one attempt that turn starts for its own worker (``ProcessExecutor.in_turn``): a
    chain runs on one worker, its steps published by the slot's thread, every state
    change committed before it is published."""
    seen: list[tuple[str, str, str]] = []  # (task, status of its row then, thread)

    def on_events(events):
        for event in events:
            if event.event == "task_started":
                row = store.task_runs(event.execution_id)[event.task]
                seen.append((event.task, row.status, threading.current_thread().name))

    bus.subscribe(on_events)
    r = Runner(store, executor, bus, heartbeat_interval=0.2)
    try:
        names = [f"t{i}" for i in range(20)]
        code = "import os\nresult = os.getpid()"
        chain = wf(*(task(n, *names[i - 1 : i], code=code) for i, n in enumerate(names)))
        done = r.wait(r.submit(chain)["id"], 60)
    finally:
        r.close()
    assert done["status"] == "completed"
    pids = [t["result"] for t in done["tasks"]]
    # the loop thread may hold the turn when an outcome comes (its control poll every
    # 0.5 s); the step then goes through the queue to either worker: nearly all steps
    assert sum(a == b for a, b in itertools.pairwise(pids)) >= 15, pids
    assert [(n, status) for n, status, _ in seen] == [(n, "running") for n in names]
    slots = [thread for _, _, thread in seen if thread.startswith("taskflow-process-slot")]
    assert len(slots) >= 15, seen


def test_only_the_last_outcome_of_a_read_may_run_the_turn(executor):
    """The outcomes a slot reads at once go to one engine turn: the ones before the last
    whole message wait in the run's queue, and the last one's report runs the turn,
    which takes them all (one commit, not one per outcome); a partial message left in
    the buffer does not count as one."""
    from pytaskflow_jupyter._process import _Slot
    from pytaskflow_jupyter._worker import FRAME, HEAD, OUTCOME, send_frame

    slot = _Slot(executor, 99)  # its thread is never started
    seen: list[tuple[int, bool]] = []
    slot._message = lambda msg, last: seen.append((HEAD.unpack_from(msg)[1], last))
    r, w = os.pipe()
    try:
        for seq in (1, 2, 3):
            send_frame(w, HEAD.pack(OUTCOME, seq) + b"x" * 10)
        os.write(w, FRAME.pack(100) + b"half")  # the start of a fourth
        assert slot._read(r)
        assert seen == [(1, False), (2, False), (3, True)]
        slot.buf = bytearray()  # forget the fourth: a read of one whole message alone
        seen.clear()
        send_frame(w, HEAD.pack(OUTCOME, 5) + b"y")
        assert slot._read(r)
        assert seen == [(5, True)]
    finally:
        os.close(r)
        os.close(w)


def test_each_failure_kind_fails_only_its_task_in_a_workflow(process_runner, tmp_path):
    ex = process_runner.submit(
        wf(
            task("segfault", code=SEGFAULT),
            task("exits", code=EXIT),
            task("leaks", code=LEAK),
            task("raises", code="raise ValueError('bad')"),
            task("fine", callable=f"{S}:add", kwargs={"a": 2, "b": 2}),
            task("after", "fine", code="result = upstream['fine'] * 10"),
        )
    )
    done = process_runner.wait(ex["id"], 60)
    assert statuses(done) == {
        "segfault": "failed",
        "exits": "failed",
        "leaks": "failed",
        "raises": "failed",
        "fine": "completed",
        "after": "completed",
    }
    assert {t["name"]: t["result"] for t in done["tasks"]}["after"] == 40


def test_a_crash_counts_as_an_attempt_and_retries_apply(process_runner, tmp_path):
    marker = tmp_path / "count"
    code = f"""
        import os, ctypes
        path = {str(marker)!r}
        n = int(open(path).read()) if os.path.exists(path) else 0
        open(path, 'w').write(str(n + 1))
        if n == 0:
            ctypes.string_at(0)
        result = n + 1
    """
    ex = process_runner.submit(wf(task("flaky", code=textwrap.dedent(code), retries=1)))
    done = process_runner.wait(ex["id"], 60)
    (t,) = done["tasks"]
    assert t["status"] == "completed" and t["attempts"] == 2 and t["result"] == 2
    assert "SIGSEGV" in t["history"][0]["error"]


def test_timeout_of_one_second_stops_a_sleeping_task(process_runner, tmp_path):
    pid_file = tmp_path / "pid"
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    ex = process_runner.submit(
        wf(
            task("sleepy", code=code, timeout=1),
            task("next", "sleepy", trigger_rule="all_done", code="result = 'ran'"),
        )
    )
    pid = read_pid(pid_file)
    done = process_runner.wait(ex["id"], 30)
    assert statuses(done) == {"sleepy": "failed", "next": "completed"}
    assert reasons(done)["sleepy"] == "timeout"
    wait_until(lambda: not alive(pid), timeout=3)


def test_cancel_stops_a_running_task(process_runner, tmp_path):
    pid_file = tmp_path / "pid"
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    ex = process_runner.submit(wf(task("sleepy", code=code), task("later", "sleepy")))
    pid = read_pid(pid_file)
    done = process_runner.cancel(ex["id"])
    assert done["status"] == "cancelled"
    assert statuses(done) == {"sleepy": "cancelled", "later": "cancelled"}
    wait_until(lambda: not alive(pid), timeout=3)


# -- the parent's death ---------------------------------------------------------------
PARENT = """
import sys, time
from pytaskflow_jupyter.executors import ProcessExecutor
from pytaskflow_jupyter.tasks import Job, Logs, Started
ex = ProcessExecutor(1)
code = "import os, time\\nopen(%r, 'w').write(str(os.getpid()))\\ntime.sleep(600)"
ex.submit(Job("e", "w", "t", 1, "python", {"code": code % sys.argv[1]}), print)
time.sleep(600)
"""


def test_workers_do_not_outlive_a_killed_parent(tmp_path):
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)], cwd=os.getcwd())
    try:
        worker = read_pid(pid_file, timeout=30)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: not alive(worker), timeout=5)
    finally:
        parent.kill()
        parent.wait()


# -- issue 15, item 5: every process a task started is gone when its attempt ends -----------
SPAWN = """
import os, subprocess, sys, time
plain = subprocess.Popen(['sleep', '600'])
session = subprocess.Popen(['sleep', '600'], start_new_session=True)
# a daemon: double fork in a new session, its parent gone at once (reparented)
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        time.sleep(600)
    os._exit(0)
daemon = int(os.read(r, 32))
open({path!r}, 'w').write(f'{{plain.pid}} {{session.pid}} {{daemon}}')
{then}
"""


def spawned(path) -> list[int]:
    wait_until(lambda: path.exists() and len(path.read_text().split()) == 3)
    return [int(p) for p in path.read_text().split()]


def test_a_completed_attempt_leaves_no_process_behind(executor, tmp_path):
    path = tmp_path / "pids"
    out, _ = run_one(executor, job("spawns", SPAWN.format(path=str(path), then="result = 1")))
    assert out.ok, out.error
    pids = spawned(path)
    # gone before the outcome was reported: no waiting needed
    assert [pid for pid in pids if alive(pid)] == []
    after, _ = run_one(executor, job(code=PID))  # the worker serves on
    assert after.ok


def test_a_timed_out_attempt_leaves_no_process_behind(process_runner, tmp_path):
    path = tmp_path / "pids"
    code = SPAWN.format(path=str(path), then="time.sleep(600)")
    execution = process_runner.submit(wf(task("slow", code=textwrap.dedent(code), timeout=3)))
    pids = spawned(path)
    done = process_runner.wait(execution["id"], timeout=60)
    assert reasons(done) == {"slow": "timeout"}
    wait_until(lambda: not any(alive(pid) for pid in pids), timeout=5)


SPAWNING_PARENT = """
import sys, time
from pytaskflow_jupyter.executors import ProcessExecutor
from pytaskflow_jupyter.tasks import Job, Logs, Started
ex = ProcessExecutor(1)
ex.submit(Job("e", "w", "t", 1, "python", {"code": sys.argv[1]}), print)
time.sleep(600)
"""


def test_no_process_of_a_task_outlives_a_killed_parent(tmp_path):
    path = tmp_path / "pids"
    code = SPAWN.format(path=str(path), then="time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", SPAWNING_PARENT, textwrap.dedent(code)])
    try:
        pids = spawned(path)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: not any(alive(pid) for pid in pids), timeout=10)
    finally:
        parent.kill()
        parent.wait()


# -- issue 15, item 10: limits on by default, leaky workers recycled -------------------------
def test_memory_limit_defaults_to_the_physical_memory():
    import psutil

    ex = ProcessExecutor(1)
    try:
        out, _ = run_one(
            ex, job(code="import resource\nresult = resource.getrlimit(resource.RLIMIT_AS)")
        )
        ram = max(2 << 30, psutil.virtual_memory().total)
        assert out.ok and out.result == (ram, ram)
    finally:
        ex.shutdown(wait=False)
    unlimited = ProcessExecutor(1, memory_limit=0)
    try:
        out, _ = run_one(
            unlimited,
            job(code="import resource\nresult = resource.getrlimit(resource.RLIMIT_AS)[0]"),
        )
        assert out.ok and out.result == -1  # RLIM_INFINITY
    finally:
        unlimited.shutdown(wait=False)


NICE = "import os\nresult = os.getpriority(os.PRIO_PROCESS, 0)"


@pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="Linux only: elsewhere a thread has no priority of its own and the `nice` option "
    "does nothing (docs/executors.md); runs on Linux, as in CI",
)
def test_workers_run_at_a_lower_priority_than_the_server_and_keep_it_when_replaced():
    own = os.getpriority(os.PRIO_PROCESS, 0)
    ex = ProcessExecutor(1)
    try:
        out, _ = run_one(ex, job(code=NICE))
        assert out.ok and out.result == min(19, own + ProcessExecutor.NICE) != own
        crashed, _ = run_one(ex, job(code=SEGFAULT))
        assert "SIGSEGV" in crashed.error
        out, _ = run_one(ex, job(code=NICE))  # a fresh worker, started by the same slot
        assert out.ok and out.result == min(19, own + ProcessExecutor.NICE)
        assert os.getpriority(os.PRIO_PROCESS, 0) == own  # the caller's thread as it was
    finally:
        ex.shutdown(wait=False)
    same = make_executor("process", workers=1, nice=0)
    try:
        out, _ = run_one(same, job(code=NICE))
        assert out.ok and out.result == own
    finally:
        same.shutdown(wait=False)


@pytest.mark.parametrize("nice", [-1, 20, "5", True, 2.5])
def test_a_nice_outside_0_to_19_is_refused(nice):
    with pytest.raises(ValueError, match="nice must be an integer from 0 to 19"):
        ProcessExecutor(1, nice=nice)


@pytest.mark.parametrize(
    "leak",
    [
        "import builtins\nbuiltins._kept = [open('/dev/null') for _ in range(40)]",
        "import builtins\nbuiltins._kept = b'x' * (100 << 20)",
    ],
    ids=["descriptors", "memory"],
)
def test_a_worker_is_replaced_after_an_attempt_that_leaked(leak, monkeypatch):
    # the class default is 1 GiB; set before the executor starts its worker
    monkeypatch.setattr(ProcessExecutor, "LEAKED_RSS", 64 << 20)
    ex = ProcessExecutor(1)
    try:
        first, _ = run_one(ex, job(code=PID))
        same, _ = run_one(ex, job(code=PID))
        assert first.result == same.result  # a clean attempt keeps its worker
        leaked, _ = run_one(ex, job(code=leak + "\nimport os\nresult = os.getpid()"))
        assert leaked.ok and leaked.result == first.result
        after, _ = run_one(ex, job(code=PID))
        assert after.ok and after.result != first.result  # a fresh worker
    finally:
        ex.shutdown(wait=False)


# -- batches: a worker holds several attempts; each ends exactly once ---------------------
def _gate(gate, ran):
    """An attempt that records that it ran, then prints (each print is a message to the
    parent, which then tops up the worker's batch) until ``gate`` exists."""
    return f"""
        import os, time
        open({str(ran)!r}, 'a').write('gate\\n')
        while not os.path.exists({str(gate)!r}):
            print('waiting', flush=True)
            time.sleep(0.05)
        result = os.getpid()
    """


def _records(name, ran, tail=""):
    return f"open({str(ran)!r}, 'a').write({name!r} + '\\n')\n" + tail


def _batch(ex, tmp_path, first_code, names, tails=None):
    """Submit a first attempt, then ``names`` while it runs, and wait until the one worker
    holds them all (taken off the queue into its batch)."""
    ran = tmp_path / "ran"
    q: queue.SimpleQueue = queue.SimpleQueue()
    first = ex.submit(job("first", first_code), q.put)
    wait_until(ran.exists)  # the first began; the rest is sent behind it
    handles = {
        name: ex.submit(job(name, _records(name, ran, (tails or {}).get(name, ""))), q.put)
        for name in names
    }
    wait_until(lambda: all(h.state == RUNNING for h in handles.values()))
    return q, first, handles, ran


def _ran(ran):
    return sorted(ran.read_text().split())


def _reports_now(q):
    """The reports waiting, other than ``Logs``."""
    got = []
    while not q.empty():
        report = q.get()
        if not isinstance(report, Logs):
            got.append(report)
    return got


def _reports(q, n, timeout=30):
    """The next ``n`` reports other than ``Logs`` (the gate's prints)."""
    got = []
    while len(got) < n:
        report = q.get(timeout=timeout)
        if not isinstance(report, Logs):
            got.append(report)
    return got


@pytest.fixture
def batched():
    ex = ProcessExecutor(1, prefetch=4)
    ex.RECALL_AFTER = 60  # what waits behind the first attempt stays in its batch
    yield ex
    ex.shutdown(wait=False)


def test_a_crash_in_a_batch_fails_its_attempt_and_the_rest_run_once(batched, tmp_path):
    gate = tmp_path / "gate"
    q, _, _, ran = _batch(
        batched, tmp_path, _gate(gate, tmp_path / "ran"), ["a", "crash", "b"],
        {"crash": EXIT},
    )  # fmt: skip
    gate.touch()
    outs = {o.task: o for o in _reports(q, 4)}
    assert outs["first"].ok and outs["a"].ok and outs["b"].ok
    assert "died (exit code 1)" in outs["crash"].error
    assert "'crash'" in outs["crash"].error  # the attempt that was running is named
    assert _ran(ran) == ["a", "b", "crash", "gate"]  # each began exactly once
    assert not _reports_now(q)


def test_a_stop_in_a_batch_kills_only_its_attempt_and_the_rest_run_once(batched, tmp_path):
    gate = tmp_path / "gate"  # never made: the first attempt runs until it is stopped
    q, first, _, ran = _batch(batched, tmp_path, _gate(gate, tmp_path / "ran"), ["a", "b"])
    batched.stop(first)
    outs = {o.task: o for o in _reports(q, 3)}
    assert outs["first"].error.startswith("Stopped: the attempt was stopped and its worker")
    assert outs["a"].ok and outs["b"].ok
    assert _ran(ran) == ["a", "b", "gate"]
    assert not _reports_now(q)


def test_stop_of_an_attempt_waiting_in_a_batch_reports_it_at_once_and_it_never_runs(
    batched, tmp_path
):
    gate = tmp_path / "gate"
    q, _, handles, ran = _batch(
        batched, tmp_path, _gate(gate, tmp_path / "ran"), ["a", "skipped", "b"]
    )
    worker = batched.pids()
    batched.stop(handles["skipped"])
    (out,) = _reports(q, 1, timeout=5)  # while the first still runs
    assert out.task == "skipped" and out.error == STOPPED_QUEUED
    assert batched.pids() == worker  # nothing was killed
    gate.touch()
    outs = {o.task: o for o in _reports(q, 3)}
    assert all(o.ok for o in outs.values()) and set(outs) == {"first", "a", "b"}
    assert _ran(ran) == ["a", "b", "gate"]
    batched.stop(handles["skipped"])  # a second stop is a no-op
    assert run_one(batched, job(code=PID))[0].result == worker[0]  # the same worker
    assert not _reports_now(q)


def test_a_timed_attempt_waiting_in_a_batch_starts_its_clock_when_it_begins(batched, tmp_path):
    gate = tmp_path / "gate"
    ran = tmp_path / "ran"
    q: queue.SimpleQueue = queue.SimpleQueue()
    batched.submit(job("first", _gate(gate, ran)), q.put)
    wait_until(ran.exists)
    timed = batched.submit(job("timed", _records("timed", ran), timeout=60), q.put)
    wait_until(lambda: timed.state == RUNNING)  # in the worker's batch, not begun
    time.sleep(0.3)
    assert not _reports_now(q)  # no Started yet
    gate.touch()
    first, started, out = _reports(q, 3)
    assert first.task == "first" and first.ok
    assert isinstance(started, Started) and started.task == "timed"
    assert out.task == "timed" and out.ok


def test_attempts_waiting_behind_a_long_one_go_back_to_the_queue_and_run_once(batched, tmp_path):
    batched.RECALL_AFTER = ProcessExecutor.RECALL_AFTER
    gate = tmp_path / "gate"
    q, _, handles, ran = _batch(batched, tmp_path, _gate(gate, tmp_path / "ran"), ["a", "b"])
    # no message for 50 ms while the first runs: a and b are recalled, for another
    # worker (here there is none, and this one takes nothing more until its outcome)
    wait_until(lambda: all(h.state == QUEUED for h in handles.values()), timeout=5)
    time.sleep(0.2)
    assert all(h.state == QUEUED for h in handles.values())
    gate.touch()
    outs = {o.task: o for o in _reports(q, 3)}
    assert all(o.ok for o in outs.values()) and set(outs) == {"first", "a", "b"}
    assert _ran(ran) == ["a", "b", "gate"]  # each began exactly once
    assert not _reports_now(q)


def test_a_crash_is_reported_when_the_parent_has_descriptors_past_1023(tmp_path):
    """``select`` refuses descriptors past 1,023; a server with many open files (the
    whole test suite has ~1,900) gets its pipes there: the executor polls instead."""
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    ex = ProcessExecutor(1, prefetch=4)
    ex.RECALL_AFTER = 60
    try:
        gate = tmp_path / "gate"
        q, _, _, _ = _batch(
            ex, tmp_path, _gate(gate, tmp_path / "ran"), ["a", "crash", "b"], {"crash": EXIT}
        )
        gate.touch()
        outs = {o.task: o for o in _reports(q, 4)}
        assert outs["first"].ok and outs["a"].ok and outs["b"].ok
        assert "died (exit code 1)" in outs["crash"].error
    finally:
        ex.shutdown(wait=False)
        for fd in held:
            os.close(fd)


def test_an_outcome_comes_back_from_its_pickle_with_every_field():
    """A worker's outcome is pickled as its fields in order (``Outcome.__reduce__``):
    each field, none left at its default, comes back in its own place."""
    values = {
        "task": "t",
        "attempt": 3,
        "ok": False,
        "result": {"rows": [1, 2.5, None]},
        "error": "boom",
        "traceback": "Traceback ...",
        "stdout": "out",
        "stderr": "err",
        "started": 1.25,
        "finished": 2.5,
        "timed_out": True,
        "output": "report.html",
        "map_index": 7,
    }
    assert set(values) == {f.name for f in dataclasses.fields(Outcome)}
    outcome = Outcome(**values)
    for dumps in (lambda o: pickle.dumps(o, 5), cloudpickle.dumps):
        back = pickle.loads(dumps(outcome))
        assert type(back) is Outcome and dataclasses.asdict(back) == values


def test_spin_returns_what_is_ready_or_nothing_once_its_time_is_up():
    import select

    from pytaskflow_jupyter._worker import spin

    r, w = os.pipe()
    try:
        poller = select.poll()
        poller.register(r, select.POLLIN)
        assert spin(poller, 0.002) == []  # nothing came: it gave up (and then sleeps)
        os.write(w, b"x")
        assert spin(poller, 10.0) == [(r, select.POLLIN)]  # at once, not after 10 s
    finally:
        os.close(r)
        os.close(w)


def test_a_slot_spins_only_while_it_alone_has_work():
    """Spinning (docs/executors.md) is for a serial run: not while attempts wait in the
    queue or another slot's worker holds some (a wide run, whose CPUs are busy). The
    decision, on an executor's state without its threads (which would take from the
    queue)."""
    from types import SimpleNamespace

    first, second = SimpleNamespace(running={}), SimpleNamespace(running={})
    ex = SimpleNamespace(_queue=queue.SimpleQueue(), _slots=[first, second])
    alone = ProcessExecutor.alone
    assert alone(ex, first) and alone(ex, second)
    second.running[1] = object()  # the other slot's worker holds an attempt
    assert not alone(ex, first)
    assert alone(ex, second)  # its own attempts do not count
    del second.running[1]
    ex._queue.put(object())  # an attempt waits for a slot
    assert not alone(ex, first) and not alone(ex, second)
    ex._queue.get_nowait()
    assert alone(ex, first)


@pytest.mark.parametrize("value", [-0.001, 0.5, "0.001", True, None])
def test_spin_is_a_few_milliseconds_at_most(value):
    if value is None:  # the default
        ex = ProcessExecutor(1)
        try:
            assert ex.spin == ProcessExecutor.SPIN
        finally:
            ex.shutdown(wait=True)
        return
    with pytest.raises(ValueError, match=r"spin must be a number of seconds from 0 to 0\.01"):
        ProcessExecutor(1, spin=value)
