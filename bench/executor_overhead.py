"""Per-attempt overhead of each executor, and how fast stop ends a running task.

    python bench/executor_overhead.py [--tasks 1000] [--workers 2] [--kinds thread process dask]

Overhead: ``--tasks`` attempts of a no-op callable submitted at once straight to the
executor (no engine, no database), wall time divided by the number of attempts; then
the same attempts as one workflow through a Runner (engine + SQLite included).
Stop: a ``time.sleep(600)`` attempt is stopped; the time from ``stop`` until its
worker process is gone (process, dask). Through a Runner: a task with ``timeout: 1``
sleeping 600 s, seconds from its start until its process is gone (>= 1 s by design);
and ``Runner.cancel`` of a running execution, seconds from the call until it is gone.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytaskflow_jupyter.executors import EXECUTORS, make_executor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.store import Store
from pytaskflow_jupyter.tasks import Job

NOOP = "tests.unit.sample_tasks:add"


def direct(executor, n: int) -> float:
    q: queue.SimpleQueue = queue.SimpleQueue()
    start = time.perf_counter()
    for i in range(n):
        executor.submit(
            Job("e", "w", f"t{i}", 1, "python", {"callable": NOOP, "kwargs": {"a": i, "b": 1}}),
            q.put,
        )
    outs = [q.get(timeout=120) for _ in range(n)]
    elapsed = time.perf_counter() - start
    assert all(o.ok for o in outs)
    return elapsed


def through_runner(executor, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        runner = Runner(store, executor)
        definition = {
            "name": "overhead",
            "tasks": [
                {
                    "name": f"t{i}",
                    "type": "python",
                    "params": {"callable": NOOP, "kwargs": {"a": i, "b": 1}},
                }
                for i in range(n)
            ],
        }
        start = time.perf_counter()
        ex = runner.submit(definition)
        done = runner.wait(ex["id"], 600)
        elapsed = time.perf_counter() - start
        runner.close()
        store.close()
    assert done["status"] == "completed", done["status"]
    return elapsed


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_latency(executor) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        pid_file = Path(tmp) / "pid"
        code = (
            f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "time.sleep(600)"
        )
        q: queue.SimpleQueue = queue.SimpleQueue()
        handle = executor.submit(Job("e", "w", "sleepy", 1, "python", {"code": code}), q.put)
        while not (pid_file.exists() and pid_file.read_text()):
            time.sleep(0.01)
        pid = int(pid_file.read_text())
        start = time.perf_counter()
        executor.stop(handle)
        if pid == os.getpid():  # threads: nothing to kill; the outcome never comes
            return float("nan")
        while alive(pid):
            time.sleep(0.005)
        return time.perf_counter() - start


def sleeper(pid_file: Path, **fields: object) -> dict:
    code = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)"
    return {
        "name": "sleeper",
        "tasks": [{"name": "sleepy", "type": "python", "params": {"code": code}, **fields}],
    }


def wait_pid(pid_file: Path) -> tuple[int, float]:
    while not (pid_file.exists() and pid_file.read_text()):
        time.sleep(0.005)
    return int(pid_file.read_text()), time.perf_counter()


def runner_stops(executor) -> tuple[float, float]:
    """(timeout: start -> process gone, cancel: call -> process gone) through a Runner."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        runner = Runner(store, executor)
        pid_file = Path(tmp) / "t.pid"
        runner.submit(sleeper(pid_file, timeout=1))
        pid, started = wait_pid(pid_file)
        while alive(pid):
            time.sleep(0.005)
        timeout = time.perf_counter() - started
        pid_file = Path(tmp) / "c.pid"
        ex = runner.submit(sleeper(pid_file))
        pid, _ = wait_pid(pid_file)
        called = time.perf_counter()
        runner.cancel(ex["id"])
        while alive(pid):
            time.sleep(0.005)
        cancel = time.perf_counter() - called
        runner.close()
        store.close()
    return timeout, cancel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kinds", nargs="*", default=["thread", "process", "dask"])
    args = parser.parse_args()
    print(f"{args.tasks} no-op attempts, {args.workers} workers, {os.cpu_count()} CPUs\n")
    print(
        f"{'executor':<10}{'direct us/task':>16}{'runner us/task':>16}{'stop -> gone s':>16}"
        f"{'timeout 1 s':>13}{'cancel s':>10}"
    )
    for kind in args.kinds:
        if kind not in EXECUTORS:
            continue
        executor = make_executor(kind, workers=args.workers)
        try:
            direct(executor, min(args.tasks, 20))  # warm up: workers started, imports done
            d = direct(executor, args.tasks) / args.tasks * 1e6
            r = through_runner(executor, args.tasks) / args.tasks * 1e6
            s = stop_latency(executor) if executor.can_stop else float("nan")
            t, c = runner_stops(executor) if executor.can_stop else (float("nan"),) * 2
        finally:
            executor.shutdown(wait=False)
        print(f"{kind:<10}{d:>16.0f}{r:>16.0f}{s:>16.3f}{t:>13.2f}{c:>10.3f}")


if __name__ == "__main__":
    main()
