"""The Dask executor on a real LocalCluster: a worker killed mid-task is survived, finished
work is released (never recomputed), and stop ends the running code."""

from __future__ import annotations

import os
import queue
import textwrap

import dask
import distributed  # noqa: F401 -- its config defaults must load before dask.config.set
import pytest

from pytaskflow_jupyter.executors import DaskExecutor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.tasks import Job

from .helpers import reasons, statuses, task, wait_until, wf
from .test_executors_process import alive, read_pid


@pytest.fixture(scope="module")
def executor():
    ex = DaskExecutor(2)
    # one rerun after a lost worker, then KilledWorker: keeps the poison test short
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        ex.start()
    yield ex
    ex.shutdown(wait=False)


@pytest.fixture
def dask_runner(store, executor):
    r = Runner(store, executor, heartbeat_interval=0.2)
    yield r
    r.close()


def job(name="t", code="result = 1", **kw):
    return Job("exec_d", "wf", name, 1, "python", {"code": textwrap.dedent(code)}, **kw)


def counting(path, kill_on=()):
    """Code that counts its runs in ``path`` and kills its worker on the runs listed."""
    return textwrap.dedent(f"""
        import os, signal
        path = {str(path)!r}
        n = int(open(path).read()) + 1 if os.path.exists(path) else 1
        open(path, 'w').write(str(n))
        if n in {tuple(kill_on)!r} or {tuple(kill_on)!r} == ('always',):
            os.kill(os.getpid(), signal.SIGKILL)
        result = n
    """)


def runs(path) -> int:
    return int(path.read_text()) if path.exists() else 0


def test_a_worker_killed_mid_task_is_survived(dask_runner, tmp_path):
    first, victim, last = tmp_path / "first", tmp_path / "victim", tmp_path / "last"
    ex = dask_runner.submit(
        wf(
            task("first", code=counting(first)),
            task("victim", "first", code=counting(victim, kill_on=(1,)), retries=1),
            task("last", "victim", code=counting(last)),
        )
    )
    done = dask_runner.wait(ex["id"], 90)
    assert done["status"] == "completed"
    assert statuses(done) == {"first": "completed", "victim": "completed", "last": "completed"}
    assert runs(victim) == 2  # the lost run, and the one that finished
    assert runs(first) == 1 and runs(last) == 1  # finished work is never recomputed


def test_a_task_that_always_kills_its_worker_fails_its_attempt(executor, tmp_path):
    q: queue.SimpleQueue = queue.SimpleQueue()
    executor.submit(job("poison", counting(tmp_path / "n", kill_on=("always",))), q.put)
    out = q.get(timeout=90)
    assert not out.ok and out.error.startswith("WorkerDied") and "KilledWorker" in out.error
    executor.submit(job("next", "result = 'still working'"), q.put)
    assert q.get(timeout=60).result == "still working"
    assert q.empty()


def test_reported_futures_are_released(executor):
    q: queue.SimpleQueue = queue.SimpleQueue()
    handle = executor.submit(job("kept", "result = list(range(10))"), q.put)
    assert q.get(timeout=60).result == list(range(10))

    def known(key, dask_scheduler=None):
        return key in dask_scheduler.tasks

    wait_until(lambda: not executor.client.run_on_scheduler(known, handle.key), timeout=10)
    assert handle.future is None


def test_timeout_of_one_second_stops_a_sleeping_task(dask_runner, tmp_path):
    pid_file = tmp_path / "pid"
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    ex = dask_runner.submit(wf(task("sleepy", code=code, timeout=1)))
    pid = read_pid(pid_file, timeout=60)
    done = dask_runner.wait(ex["id"], 30)
    assert statuses(done) == {"sleepy": "failed"} and reasons(done)["sleepy"] == "timeout"
    wait_until(lambda: not alive(pid), timeout=5)


def test_cancel_stops_a_running_task(dask_runner, tmp_path):
    pid_file = tmp_path / "pid"
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    ex = dask_runner.submit(wf(task("sleepy", code=code), task("later", "sleepy")))
    pid = read_pid(pid_file, timeout=60)
    done = dask_runner.cancel(ex["id"])
    assert done["status"] == "cancelled"
    wait_until(lambda: not alive(pid), timeout=5)


def test_on_a_cluster_at_an_address_stop_only_abandons(executor, tmp_path):
    remote = DaskExecutor(address=executor.cluster.scheduler_address)
    assert not remote.can_stop
    try:
        q: queue.SimpleQueue = queue.SimpleQueue()
        started = tmp_path / "started"
        handle = remote.submit(
            job("slow", f"import time\nopen({str(started)!r}, 'w')\ntime.sleep(1)"), q.put
        )
        wait_until(started.exists, timeout=60)
        remote.stop(handle)
        out = q.get(timeout=30)
        assert not out.ok and out.error.startswith("Stopped")
        remote.submit(job("next", "result = 2"), q.put)
        assert q.get(timeout=60).result == 2
    finally:
        remote.shutdown()
    assert executor.client.status == "running"  # closing a client leaves the cluster alone


def test_an_unreachable_scheduler_fails_the_attempt_clearly():
    ex = DaskExecutor(address="tcp://127.0.0.1:9", connect_timeout=1)
    q: queue.SimpleQueue = queue.SimpleQueue()
    try:
        ex.submit(job(), q.put)
        out = q.get(timeout=30)
    finally:
        ex.shutdown()
    assert not out.ok and out.error.startswith("DaskUnavailable")
    assert "tcp://127.0.0.1:9" in out.error


def test_shutdown_closes_the_cluster_it_started():
    ex = DaskExecutor(1)
    q: queue.SimpleQueue = queue.SimpleQueue()
    ex.submit(job(code="import os\nresult = os.getpid()"), q.put)
    out = q.get(timeout=60)
    assert out.ok, out.error
    pid = out.result
    assert pid != os.getpid() and alive(pid)
    ex.shutdown()
    wait_until(lambda: not alive(pid), timeout=10)
    assert ex.cluster.status.name == "closed"


def test_a_lost_scheduler_fails_the_running_attempt_instead_of_hanging(tmp_path):
    import logging

    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.CRITICAL,
    )
    ex = DaskExecutor(address=cluster.scheduler_address, connect_timeout=1)
    q: queue.SimpleQueue = queue.SimpleQueue()
    try:
        started = tmp_path / "started"
        ex.submit(job("slow", f"import time\nopen({str(started)!r}, 'w')\ntime.sleep(30)"), q.put)
        wait_until(started.exists, timeout=60)
        cluster.close()
        out = q.get(timeout=60)
        assert not out.ok and out.error.startswith("Cancelled")
        ex.submit(job("next"), q.put)  # the client reconnects, and finds nobody
        out = q.get(timeout=60)
        assert not out.ok and out.error.startswith(("DaskUnavailable", "Cancelled"))
    finally:
        ex.shutdown(wait=False)
        cluster.close()
