"""Memory of task results: peak RSS while an execution runs, and RSS after it ended.

    python bench/bench_results.py                 # every case, each in a fresh process
    python bench/bench_results.py --mb 200 --tasks 10 --workers 2
    PYTHONPATH=/tmp/results_before python bench/bench_results.py   # another checkout

A Runner on a real Store (a SQLite file in a temporary folder), the thread and the
process executor with ``--workers`` workers each, and two workflows:

* ``independent``: ``--tasks`` tasks without dependencies, each returning a numpy array
  of ``--mb`` MB (bytes when numpy is missing);
* ``chain``: the same tasks in a chain, each returning its upstream array plus one
  (a new array of the same size).

Each case runs in its own Python process, so that one case's leftovers do not count in
the next; the RSS of that process (the "server") is sampled every 10 ms with psutil
from before the execution starts until it ends, then read again after ``gc.collect()``
and half a second. ``workers`` is the sum of the worker processes' peak RSS (process
executor only), for scale. The figures of one machine are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import psutil

MB = 1 << 20


def _code(mb: int, upstream: str | None) -> str:
    try:
        import numpy  # noqa: F401

        make = f"import numpy as np\nresult = np.ones({mb * MB // 8}, dtype='float64')"
        add = "result = upstream[{!r}] + 1"
    except ImportError:
        make = f"result = bytes({mb * MB})"
        add = "result = bytes(len(upstream[{!r}]))"
    return make if upstream is None else add.format(upstream)


def _definition(shape: str, tasks: int, mb: int) -> dict[str, object]:
    steps = []
    for i in range(tasks):
        prev = f"t{i - 1}" if shape == "chain" and i else None
        steps.append(
            {
                "name": f"t{i}",
                "type": "python",
                "params": {"code": _code(mb, prev)},
                "dependencies": [prev] if prev else [],
            }
        )
    return {"name": f"bench-results-{shape}", "tasks": steps}


class _Sampler(threading.Thread):
    """Peak RSS of this process (and of its children) while running."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.peak = self.me.memory_info().rss
        self.children: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, self.me.memory_info().rss)
            for child in self.me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                self.children[child.pid] = max(self.children.get(child.pid, 0), rss)


def one_case(executor_kind: str, shape: str, tasks: int, mb: int, workers: int) -> dict:
    from pytaskflow_jupyter.executors import make_executor
    from pytaskflow_jupyter.runner import Runner
    from pytaskflow_jupyter.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        store = Store(os.path.join(tmp, "taskflow.db"))
        executor = make_executor(executor_kind, workers=workers)
        runner = Runner(store, executor, runs_dir=os.path.join(tmp, "runs"))
        if executor_kind == "process":  # start the workers before measuring
            warm = runner.submit({"name": "warm", "tasks": [{"name": "w", "type": "python",
                                  "params": {"code": "result = 1"}}]})  # fmt: skip
            runner.wait(warm["id"], 120)
        gc.collect()
        start = psutil.Process().memory_info().rss
        sampler = _Sampler()
        sampler.start()
        t0 = time.perf_counter()
        ex = runner.submit(_definition(shape, tasks, mb))
        done = runner.wait(ex["id"], 600)
        elapsed = time.perf_counter() - t0
        while runner.active():
            time.sleep(0.01)
        sampler.stop.set()
        sampler.join()
        gc.collect()
        time.sleep(0.5)
        after = psutil.Process().memory_info().rss
        spilled = sum(len(files) for _, _, files in os.walk(os.path.join(tmp, "runs")))
        runner.close()
        executor.shutdown(wait=False)
        store.close()
    return {
        "executor": executor_kind,
        "shape": shape,
        "status": done["status"],
        "start_mb": round(start / MB),
        "peak_mb": round(sampler.peak / MB),
        "after_mb": round(after / MB),
        "workers_peak_mb": round(sum(sampler.children.values()) / MB),
        "seconds": round(elapsed, 1),
        "files_left": spilled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default="thread,process")
    parser.add_argument("--shapes", default="independent,chain")
    parser.add_argument("--json", action="store_true", help="the cases as a last JSON line")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # executor:shape, in a child
    args = parser.parse_args()
    if args.case:
        kind, shape = args.case.split(":")
        print(json.dumps(one_case(kind, shape, args.tasks, args.mb, args.workers)))
        return
    import pytaskflow_jupyter

    print(f"# {pytaskflow_jupyter.__file__}")
    print(f"# {args.tasks} tasks x {args.mb} MB, {args.workers} workers, {os.cpu_count()} CPUs")
    print("executor  shape        status     start MB  peak MB  after MB  workers MB  s")
    cases = []
    for kind in args.executors.split(","):
        for shape in args.shapes.split(","):
            out = subprocess.run(
                [sys.executable, __file__, "--case", f"{kind}:{shape}", "--tasks",
                 str(args.tasks), "--mb", str(args.mb), "--workers", str(args.workers)],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            r = json.loads(out.strip().splitlines()[-1])
            cases.append(r)
            print(
                f"{r['executor']:<9} {r['shape']:<12} {r['status']:<10} {r['start_mb']:>8} "
                f"{r['peak_mb']:>8} {r['after_mb']:>9} {r['workers_peak_mb']:>11} "
                f"{r['seconds']:>4}"
            )
    if args.json:
        print(json.dumps(cases))


if __name__ == "__main__":
    main()
