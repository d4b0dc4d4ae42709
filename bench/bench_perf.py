"""Issue 16's table in one run: the engine on each executor, the server, the floor, Dask.

    python bench/bench_perf.py [--write] [--quick] [--sizes 1000 10000]
        [--shapes chain fanout grid branch sleep] [--only COLUMN ...]
        [--workers 2] [--repeat 3] [--pairs 7]

The shapes of ``bench/_floor.py`` (chain, fan-out, 10-layer grid, branch: no-op tasks
calling ``bench._floor:noop``) at each of ``--sizes``, and ``sleep``: a fan-out of 1,000
tasks whose n-2 middle tasks call ``bench._floor:sleep10`` (10 ms off the CPU each; at
best n * 10 ms / workers in all). Columns, each with ``--workers`` workers (default 2):

* floor: ``run_floor``, a bare thread pool with one SQLite row per state change,
  committed once per turn (``_floor.py``);
* thread, process, dask: the engine in this process, a ``Runner`` on a real SQLite
  ``Store`` and the executor ``make_executor(kind, workers=...)`` builds (dask: the
  ``DaskExecutor``'s own ``LocalCluster``, one single-threaded worker process each),
  from ``runner.submit`` to the publication of the terminal event (``bench_engine``'s
  ``engine_once``);
* server, server-thread: a real ``jupyter taskflow`` (``bench_server.Server``) with its
  default ``process`` executor, and with ``thread``; from the start of ``POST /workflows``
  (the definition as JSON body, encoded beforehand) to the arrival of the execution's
  terminal event at a ``/ws`` client that connected before the POST (``bench_ws``'s
  ``follow``), on the client's clock;
* dask-threaded: ``dask.threaded.get(graph, leaves, num_workers=workers)``;
* dask-distributed: ``client.get(graph, leaves)`` on a ``LocalCluster`` of ``workers``
  single-threaded worker processes (the cluster the Dask executor starts, through
  ``DaskExecutor.start``). Both Dask columns persist nothing; branch has no Dask
  equivalent.

Each case (column, shape, n) runs in a fresh interpreter: its executor, cluster or
server is started once, warmed with a 6-task fan-out (worker processes started and
imports done), then runs ``--repeat`` times (default 3); the figure is the median.
In-process cases use a fresh SQLite file for every run; a server case has one database
(a fresh server), and each run posts a new workflow. Every run is checked (each task
``completed``, or ``skipped`` for the unselected arm of branch; every Dask leaf came
back): a run that did not do the work fails its case, shown as ``failed``, and so does a
case still running after ``--case-timeout`` seconds (default 1500: the distributed
scheduler took 323 s for the 10,000-task fan-out on the 2-CPU VM, and once hung).

Item 2's ratio (the server over the in-process process executor) is also measured in
turn, because the columns above run minutes apart and this VM's speed drifts by a third
within an hour: ``--pairs`` (default 7; 0 for none) runs, for each shape and size but
sleep, one interpreter holding a server and an in-process engine, both on the process
executor and warmed alike, then ``--pairs`` times a server run and right after it an
engine run (``paired_runs``); the last table gives both medians, their ratio, and the
ratio of each pair. Item 1's ratio (the process executor over the thread executor) is
measured in turn the same way (``executor_pairs``: both executors in one interpreter,
a process run then a thread run), in the table before it.

``--write`` replaces the block between ``<!-- bench_perf begin -->`` and
``<!-- bench_perf end -->`` in docs/performance.md with the tables, the command, the git
revision, the date, the machine and the load average at the start and at the end.
``--quick``: 1,000 tasks only, one run per case (about 3 minutes). A full run took 30
minutes on the project's shared 2-CPU VM, 23 of them in the two Dask-cluster columns
(the engine on the Dask executor and ``dask-distributed``; at 10,000 tasks their runs
take 0.5-8 minutes each); without them (``--only floor thread process server
server-thread dask-threaded``) about 7. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import psutil
from bench_engine import (
    ROOT,
    SHAPES,
    dask_once,
    definition,
    engine_once,
    expected_counts,
    floor_once,
    revision,
    spawn,
)
from bench_server import Server, machine
from bench_ws import follow

from bench._floor import connect

COLUMNS = {  # name: heading
    "floor": "floor",
    "thread": "engine thread",
    "process": "engine process",
    "dask": "engine Dask",
    "server": "server (process)",
    "server-thread": "server (thread)",
    "dask-threaded": "dask threaded",
    "dask-distributed": "dask distributed",
}
DASK_ONLY = ("dask-threaded", "dask-distributed")  # no branch equivalent
NONE = "\N{EN DASH}"  # a figure that does not exist (branch in Dask)
SLEEP_N = 1_000
WARM = ("fanout", 6)  # every worker gets a task
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench_perf begin -->", "<!-- bench_perf end -->"


# -- one case per subprocess ------------------------------------------------------------
def repeated(once: Callable[[], float], repeat: int, long: float) -> list[float]:
    """Seconds of ``repeat`` calls of ``once``, or of one when it took over ``long``."""
    seconds = [once()]
    while len(seconds) < repeat and seconds[0] <= long:
        seconds.append(once())
    return seconds


def engine_runs(kind: str, shape: str, n: int, args: argparse.Namespace) -> dict:
    from pytaskflow_jupyter.executors import make_executor

    executor = make_executor(kind, workers=args.workers)
    try:
        engine_once(*WARM, args.workers, False, executor)
        once = partial(engine_once, shape, n, args.workers, False, executor)
        return {"seconds": repeated(lambda: once()[0], args.repeat, args.long)}
    finally:
        executor.shutdown(wait=True)


# The distributed scheduler is busy for minutes with the 10,000-task fan-out's sink
# (9,998 dependencies) on this 2-CPU VM; with its default timeouts its workers were
# gone after that and the case hung. Longer ones, set before the cluster starts (the
# environment is what its worker processes read): the peer is not sped up, only let
# finish.
PATIENT = {
    "DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL": "3600s",
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "600s",
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__TCP": "600s",
}


def distributed_runs(shape: str, n: int, args: argparse.Namespace) -> dict:
    os.environ.update(PATIENT)
    import dask

    from pytaskflow_jupyter.executors import DaskExecutor

    dask.config.refresh()
    executor = DaskExecutor(args.workers)  # its LocalCluster, as the engine's column has
    try:
        client = executor.start()
        dask_once(client.get, *WARM)
        return {
            "seconds": repeated(partial(dask_once, client.get, shape, n), args.repeat, args.long)
        }
    finally:
        executor.shutdown(wait=True)


def threaded_runs(shape: str, n: int, args: argparse.Namespace) -> dict:
    from dask.threaded import get

    dask_once(get, *WARM, num_workers=args.workers)
    once = partial(dask_once, get, shape, n, num_workers=args.workers)
    return {"seconds": repeated(once, args.repeat, args.long)}


def server_runs(executor: str, shape: str, n: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "server.db"
        server = Server(Path(tmp), db, executor=executor, workers=args.workers)
        try:
            server_once(server, *WARM, "warm")
            runs = iter(range(args.repeat))
            once = lambda: server_once(server, shape, n, f"run{next(runs)}")  # noqa: E731
            seconds = repeated(once, args.repeat, args.long)
            status = Path(f"/proc/{server.proc.pid}/status").read_text()
            peak = int(status.split("VmHWM:")[1].split()[0])  # kB, the server's peak RSS
        finally:
            server.stop()
    return {"seconds": seconds, "server_peak_kib": peak}


def server_once(server: Server, shape: str, n: int, tag: str) -> float:
    """``POST /workflows`` of a new workflow until its terminal event reaches a ``/ws``
    client connected before it; the execution's tasks then checked over REST."""
    data = definition(shape, n)
    data["id"] = f"{data['id']}_{tag}"
    body = json.dumps(data).encode()
    seconds, ex_id = asyncio.run(post_and_follow(server, body))
    status, payload, _ = server.request("GET", f"/executions/{ex_id}")
    detail = json.loads(payload)
    counts = Counter(task["status"] for task in detail["tasks"])
    if status != 200 or detail["status"] != "completed" or counts != expected_counts(shape, n):
        raise AssertionError(f"server {shape} {n}: execution {detail['status']}, tasks {counts}")
    return seconds


async def post_and_follow(server: Server, body: bytes) -> tuple[float, str]:
    ready, connected = asyncio.Event(), [0, 1]
    client = asyncio.ensure_future(follow(server.port, ready, connected))
    await asyncio.wait_for(ready.wait(), 60)
    start = time.time()  # follow() stamps the terminal event with time.time()
    status, payload, _ = await asyncio.get_running_loop().run_in_executor(
        None, server.request, "POST", "/workflows", body
    )
    if status != 200:
        client.cancel()
        raise RuntimeError(f"POST /workflows: {status} {payload[:300]!r}")
    got = await asyncio.wait_for(client, 3600)
    if got["final_at"] is None:
        raise RuntimeError("/ws closed before the terminal event")
    return got["final_at"] - start, json.loads(payload)["id"]


def paired_runs(shape: str, n: int, count: int, workers: int) -> list[tuple[float, float]]:
    """Item 2 side by side: one server and one in-process engine, both on the process
    executor and warmed alike, then ``count`` times a server run and right after it an
    engine run; (server seconds, engine seconds) pairs."""
    from pytaskflow_jupyter.executors import make_executor

    executor = make_executor("process", workers=workers)
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), Path(tmp) / "server.db", executor="process", workers=workers)
        try:
            server_once(server, *WARM, "warm")
            engine_once(*WARM, workers, False, executor)
            out = []
            for i in range(count):
                served = server_once(server, shape, n, f"pair{i}")
                out.append((served, engine_once(shape, n, workers, False, executor)[0]))
            return out
        finally:
            server.stop()
            executor.shutdown(wait=True)


def executor_pairs(shape: str, n: int, count: int, workers: int) -> list[tuple[float, float]]:
    """Item 1 side by side: the process and the thread executor in one interpreter,
    each warmed, then ``count`` times an in-process run on the process executor and right
    after it one on the thread executor; (process seconds, thread seconds) pairs."""
    from pytaskflow_jupyter.executors import make_executor

    process = make_executor("process", workers=workers)
    thread = make_executor("thread", workers=workers)
    try:
        for executor in (process, thread):
            engine_once(*WARM, workers, False, executor)
        return [
            (
                engine_once(shape, n, workers, False, process)[0],
                engine_once(shape, n, workers, False, thread)[0],
            )
            for _ in range(count)
        ]
    finally:
        process.shutdown(wait=True)
        thread.shutdown(wait=True)


def child(column: str, shape: str, n: int, args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.ERROR)
    if column == "floor":
        once = partial(floor_once, shape, n, args.workers)
        out = {"seconds": repeated(once, args.repeat, args.long)}
    elif column in ("thread", "process", "dask"):
        out = engine_runs(column, shape, n, args)
    elif column.startswith("server"):
        kind = "thread" if column == "server-thread" else "process"
        out = server_runs(kind, shape, n, args)
    elif column in PAIRS:
        out = {"pairs": PAIRS[column].runs(shape, n, args.repeat, args.workers)}
    elif column == "dask-threaded":
        out = threaded_runs(shape, n, args)
    else:
        out = distributed_runs(shape, n, args)
    print(json.dumps(out))


# -- the tables ---------------------------------------------------------------------------
RATIOS = [  # (heading, numerator, denominator)
    ("thread / floor", "thread", "floor"),
    ("process / floor", "process", "floor"),
    ("Dask exec. / floor", "dask", "floor"),
    ("server / floor", "server", "floor"),
    ("server thr. / floor", "server-thread", "floor"),
    ("thread / dask thr.", "thread", "dask-threaded"),
    ("process / dask thr.", "process", "dask-threaded"),
    ("server / dask thr.", "server", "dask-threaded"),
    ("Dask exec. / dask dist.", "dask", "dask-distributed"),
    ("process / thread (item 1: <= 2)", "process", "thread"),
    ("server / process, columns apart", "server", "process"),
    ("server thr. / thread", "server-thread", "thread"),
]


def fmt(value: float | None, spec: str = ".0f", missing: str = NONE) -> str:
    return missing if value is None else f"{value:,{spec}}"


def markdown(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


Results = dict[tuple[str, int], dict[str, Any]]  # (shape, n) -> column -> runs | "failed"


def figure(results: Results, case: tuple[str, int], column: str) -> dict | None:
    value = results[case].get(column)
    return value if isinstance(value, dict) else None


def tables(results: Results, columns: list[str], args: argparse.Namespace) -> list[str]:
    """µs per task, the sleep case's seconds and the ratios, as markdown."""
    out = per_task_table(results, columns, args)
    for case in (case for case in results if case[0] == "sleep"):
        out += sleep_table(results, case, columns, args.workers)
    out += ratio_table(results, columns)
    for column, pairs in PAIRS.items():
        out += pairs_table(results, column, pairs, args.pairs)
    return out


class Pairs(NamedTuple):
    """A kind of runs in turn (``--pairs``): what runs them, the columns both sides need,
    and its table's title and heads."""

    runs: Callable[[str, int, int, int], list[tuple[float, float]]]
    needs: frozenset[str]
    sides: str  # the progress line's "a / b"
    title: str
    heads: tuple[str, str, str]  # the first side, the second, their ratio


PAIRS = {  # column -> its runs in turn, in the order of the tables
    "executor-pairs": Pairs(
        executor_pairs,
        frozenset({"thread", "process"}),
        "process / thread",
        "Item 1 in turn (`--pairs`): the process and the thread executor in one "
        "interpreter, {count} times a process run then a thread run, medians:",
        (
            "engine process, µs a task",
            "engine thread, µs a task",
            "process / thread (item 1: <= 2)",
        ),
    ),
    "pairs": Pairs(
        paired_runs,
        frozenset({"server", "process"}),
        "server / engine",
        "Item 2 in turn (`--pairs`): a server and an in-process engine side by side, "
        "{count} times a server run then an engine run, medians:",
        (
            "server (process), µs a task",
            "engine process, µs a task",
            "server / process (item 2: <= 1.5)",
        ),
    ),
}


def pairs_table(results: Results, column: str, pairs: Pairs, count: int) -> list[str]:
    """Runs in turn (``--pairs``): both medians, their ratio, and the ratio of each
    pair."""
    rows = []
    for case, row in results.items():
        got = row.get(column)
        if got is None:
            continue
        if got == "failed":
            rows.append([case[0], f"{case[1]:,}", *["failed"] * 4])
            continue
        served = statistics.median(s for s, _ in got)
        engine = statistics.median(e for _, e in got)
        ratios = sorted(s / e for s, e in got)
        rows.append(
            [
                case[0],
                f"{case[1]:,}",
                f"{served / case[1] * 1e6:,.0f}",
                f"{engine / case[1] * 1e6:,.0f}",
                f"{served / engine:.2f}",
                f"{ratios[0]:.2f} / {statistics.median(ratios):.2f} / {ratios[-1]:.2f}",
            ]
        )
    if not rows:
        return []
    head = ["shape", "n", *pairs.heads, "pair ratios min / median / max"]
    return ["", pairs.title.format(count=count), "", *markdown(head, rows)]


def per_task_table(results: Results, columns: list[str], args: argparse.Namespace) -> list[str]:
    def cell(case: tuple[str, int], column: str) -> str:
        value = figure(results, case, column)
        if value is None:
            return str(results[case].get(column, NONE))  # "failed", or no such case
        once = "*" if len(value["seconds"]) < args.repeat else ""
        return f"{value['median'] / case[1] * 1e6:,.0f}{once}"

    peaks = [c for c in ("server", "server-thread") if c in columns]
    head = ["shape", "n", *(COLUMNS[c] for c in columns), *(f"{COLUMNS[c]} MiB" for c in peaks)]
    rows = []
    for case in results:
        rss = [figure(results, case, c) for c in peaks]
        rows.append(
            [case[0], f"{case[1]:,}", *(cell(case, c) for c in columns)]
            + [fmt(r and r["server_peak_kib"] / 1024) for r in rss]
        )
    out = [
        f"µs per task, median of {args.repeat} runs:"
        if args.repeat > 1
        else "µs per task, one run:",
        "",
        *markdown(head, rows),
    ]
    if any("*" in cell for row in rows for cell in row):
        out += ["", f"\\* one run: its first took over {args.long:.0f} s (`--long`)."]
    if peaks:
        out += ["", "MiB: the server's peak RSS (`VmHWM`) over the case's runs."]
    return out


def sleep_table(
    results: Results, case: tuple[str, int], columns: list[str], workers: int
) -> list[str]:
    ideal = (case[1] - 2) * 0.01 / workers
    rows = []
    for c in columns:
        value = figure(results, case, c)
        if value is None:
            rows.append([COLUMNS[c], str(results[case].get(c, NONE)), NONE])
        else:
            rows.append([COLUMNS[c], f"{value['median']:.2f}", f"{value['median'] / ideal:.2f}"])
    title = (
        f"sleep, {case[1]:,} tasks: wall seconds, against the ideal {ideal:.2f} s "
        f"({case[1] - 2:,} x 10 ms on {workers} workers):"
    )
    return ["", title, "", *markdown(["column", "wall s", "/ ideal"], rows)]


def ratio_table(results: Results, columns: list[str]) -> list[str]:
    ratios = [r for r in RATIOS if r[1] in columns and r[2] in columns]
    if not ratios:
        return []
    rows = []
    for case in results:
        row = [case[0], f"{case[1]:,}"]
        for _, num, den in ratios:
            a, b = figure(results, case, num), figure(results, case, den)
            row.append(fmt(a["median"] / b["median"] if a and b else None, ".2f"))
        rows.append(row)
    head = ["shape", "n", *(r[0] for r in ratios)]
    return ["", "Ratios of the medians:", "", *markdown(head, rows)]


def probe() -> str:
    """Two figures of the machine's own speed, beside the table: items 3 and 4 are
    absolute and the VMs these runs get differ (docs/performance.md): a bare SQLite
    transaction of one INSERT with the Store's PRAGMAs, and a loop of plain Python."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = connect(Path(tmp) / "probe.db")
        conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        took = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(2_000):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (b) VALUES (?)", ("x" * 100,))
                conn.execute("COMMIT")
            took.append((time.perf_counter() - start) / 2_000)
        conn.close()
    loop = []
    for _ in range(5):
        start = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        loop.append(time.perf_counter() - start)
    return (
        f"a bare SQLite transaction of one INSERT {statistics.median(took) * 1e6:.1f} µs, "
        f"`sum(i * i for i in range(10**6))` {statistics.median(loop) * 1e3:.1f} ms "
        "(medians of 5)"
    )


def describe(
    args: argparse.Namespace, load: list[tuple[float, ...]], took: float, speed: str
) -> list[str]:
    import dask

    ram = psutil.virtual_memory().total / 2**30
    loads = [" ".join(f"{x:.2f}" for x in avg) for avg in load]
    return [
        f"`python {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}` at git "
        f"{revision(('pytaskflow_jupyter', 'bench'))}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {took / 60:.1f} minutes; "
        f"{args.workers} workers everywhere, median of {args.repeat} runs per case (one "
        f"run where the first took over {args.long:.0f} s).",
        f"Machine: {machine()}, {ram:.0f} GiB RAM, SQLite {sqlite3.sqlite_version}, "
        f"dask {dask.__version__}; its speed at the start: {speed}.",
        f"Load average (1, 5, 15 min): {loads[0]} at the start, {loads[1]} at the end.",
    ]


def write(lines: list[str]) -> None:
    """``lines`` in place of the block between ``BEGIN`` and ``END`` in ``DOC``."""
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)
    print(f"wrote {DOC}", file=sys.stderr)


# -- the run ------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shapes", nargs="*", default=[*SHAPES, "sleep"], choices=[*SHAPES, "sleep"]
    )
    parser.add_argument("--sizes", nargs="*", type=int, default=[1_000, 10_000])
    parser.add_argument("--only", nargs="*", default=list(COLUMNS), choices=list(COLUMNS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (the median)")
    parser.add_argument(
        "--long", type=float, default=20.0, help="a case whose first run takes longer runs once"
    )
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=1500.0,
        help="seconds after which a case is stopped and shown failed (default 1500)",
    )
    parser.add_argument(
        "--pairs", type=int, default=7, help="runs in turn for item 2's ratio (0: none)"
    )
    parser.add_argument("--quick", action="store_true", help="1,000 tasks only, one run")
    parser.add_argument("--write", action="store_true", help=f"the tables into {DOC.name}")
    parser.add_argument(
        "--child", nargs=3, metavar=("COLUMN", "SHAPE", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        column, shape, n = args.child
        child(column, shape, int(n), args)
        return
    if args.quick:
        args.sizes, args.repeat = [1_000], 1
    columns = [c for c in COLUMNS if c in args.only]
    cases = [(s, n) for s in args.shapes for n in ([SLEEP_N] if s == "sleep" else args.sizes)]
    load = [os.getloadavg()]
    speed = probe()
    began = time.monotonic()
    results: Results = {}
    todo = [
        (case, c) for case in cases for c in columns if not (case[0] == "branch" and c in DASK_ONLY)
    ]
    for column, pairs in PAIRS.items():
        if args.pairs and pairs.needs <= set(columns):
            todo += [(case, column) for case in cases if case[0] != "sleep"]
    for i, (case, column) in enumerate(todo, 1):
        start = time.monotonic()
        got = spawn(
            column,
            *case,
            args.workers,
            args.pairs if column in PAIRS else args.repeat,
            Path(__file__).resolve(),
            ("--long", str(args.long)),
            timeout=args.case_timeout,
        )
        row = results.setdefault(case, {})
        if got is None:
            row[column] = "failed"
            note = "FAILED"
        elif column in PAIRS:
            row[column] = got["pairs"]
            pairs_of = ", ".join(f"{a / b:.2f}" for a, b in got["pairs"])
            note = f"{PAIRS[column].sides} in turn: {pairs_of}"
        else:
            got["median"] = statistics.median(got["seconds"])
            row[column] = got
            note = (
                f"{got['median'] / case[1] * 1e6:,.0f} µs/task, runs "
                + ", ".join(f"{s:.2f}" for s in got["seconds"])
                + " s"
            )
        print(
            f"[{i}/{len(todo)}] {column} {case[0]} {case[1]:,}: {note} "
            f"({time.monotonic() - start:.0f} s, load {os.getloadavg()[0]:.2f})",
            file=sys.stderr,
            flush=True,
        )
    load.append(os.getloadavg())
    took = time.monotonic() - began
    lines = [*describe(args, load, took, speed), "", *tables(results, columns, args)]
    print("\n".join(lines))
    if args.write:
        write(lines)


if __name__ == "__main__":
    main()
