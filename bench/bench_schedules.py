"""The cost of the scheduler's check with many scheduled workflows.

    python bench/bench_schedules.py [--workflows 1000] [--checks 2000]

A ``Runner`` over a real SQLite ``Store`` (a file in a temporary folder) with a driven
clock (``Store(clock=...)``, as ``TaskFlowApp.clock``), ``--workflows`` registered
workflows, half ``every`` and half ``cron`` schedules (in several time zones), each with
one no-op task. Measured, side by side in one run:

* check, nothing due: ``Runner.fire_due()`` when no slot is due (what a server does four
  times a second nearly always): one indexed read of the schedules table;
* naive check: what a scheduler without the ``next_slot`` index would do each time, for
  comparison — read every schedule row and compute its next slot (cronsim);
* claim: ``Store.fire`` when every workflow has a slot due at once (the worst minute),
  per slot fired: the transactions (``FIRE_BATCH`` workflows each) that read each
  schedule, claim the slot and create its execution;
* fire and start: ``fire_due()`` in the same case, per execution started: the claim
  plus the start of each run (its thread, its first commit competing with the runs
  already started; the no-op runs are then waited for outside the timing).

Prints µs per check and per workflow (median of ``--repeat`` runs).
"""

from __future__ import annotations

import argparse
import json
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytaskflow_jupyter.executors import ThreadExecutor  # noqa: E402
from pytaskflow_jupyter.runner import Runner, new_execution_id  # noqa: E402
from pytaskflow_jupyter.schedule import Schedule  # noqa: E402
from pytaskflow_jupyter.store import Store  # noqa: E402

T0 = 1_800_000_000.0
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo")


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def definition(i: int) -> dict[str, object]:
    if i % 2:
        schedule: dict[str, object] = {"every": 3600}
    else:
        schedule = {"cron": f"{i % 60} * * * *", "timezone": ZONES[i % len(ZONES)]}
    return {"id": f"w{i}", "name": f"w{i}", "tasks": [{"name": "a"}], "schedule": schedule}


def naive_check(path: Path, now: float) -> int:
    """Every row read and its next slot computed (no index): the comparison."""
    conn = sqlite3.connect(path)
    due = 0
    for spec, anchor, last in conn.execute("SELECT spec, anchor, last_slot FROM schedules"):
        if Schedule.from_json(json.loads(spec)).next_slot(last, anchor) <= now:
            due += 1
    conn.close()
    return due


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )
    idle, naive, claim, fire = [], [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            clock = Clock()
            path = Path(tmp) / "bench.db"
            store = Store(path, clock=clock)
            runner = Runner(store, ThreadExecutor(workers=2))
            for i in range(args.workflows):
                runner.register(definition(i))
            clock.t = T0 + 1  # nothing due for a while
            runner.fire_due()
            start = time.perf_counter()
            for _ in range(args.checks):
                runner.fire_due()
            idle.append((time.perf_counter() - start) / args.checks)
            n = max(1, args.checks // 100)
            start = time.perf_counter()
            for _ in range(n):
                naive_check(path, clock.t)
            naive.append((time.perf_counter() - start) / n)
            clock.t = T0 + 3601 + 1  # every `every` schedule and some cron ones are due
            start = time.perf_counter()
            started = runner.fire_due()
            fire.append((time.perf_counter() - start) / len(started))
            for execution_id in started:
                runner.wait(execution_id, timeout=120)
            clock.t = T0 + 2 * 3601  # the next hour's slots, claimed but not started
            due = store.due_schedules(clock.t)
            start = time.perf_counter()
            claimed = store.fire(
                due,
                clock.t,
                grace=60.0,
                new_id=new_execution_id,
                params=lambda _w, _r, given: given,
                owner="bench",
                executor=None,
            )
            claim.append((time.perf_counter() - start) / len(claimed))
            runner.close()
            runner.executor.shutdown()
    w = args.workflows
    rows = [
        ("check, nothing due (fire_due)", statistics.median(idle)),
        ("naive check (every row, next slot computed)", statistics.median(naive)),
    ]
    print(f"\n{w} scheduled workflows, median of {args.repeat}\n")
    print(f"| {'what':<46} | {'µs per check':>12} | {'µs per workflow':>15} |")
    print(f"|{'-' * 48}|{'-' * 14}|{'-' * 17}|")
    for label, seconds in rows:
        print(f"| {label:<46} | {seconds * 1e6:>12.1f} | {seconds * 1e6 / w:>15.3f} |")
    for label, values in (
        ("claim: all due at once, per slot (Store.fire)", claim),
        ("fire and start, per execution (fire_due)", fire),
    ):
        print(f"| {label:<46} | {'':>12} | {statistics.median(values) * 1e6:>15.1f} |")
    print(
        "\nratio naive / ours (nothing due): "
        f"{statistics.median(naive) / statistics.median(idle):.0f}x"
    )


if __name__ == "__main__":
    main()
