"""Soak: one server and four kernels writing the same SQLite database at once.

    python bench/soak_multiprocess.py --seconds 60 [--kernels 4] [--db PATH] [--json]

One process plays the Jupyter server (a ``Runner`` on the process executor that runs its
own workflows, adopts the executions kernels enqueue for it, heartbeats and looks for
executions to recover); each other process plays a kernel (a ``Runner`` on threads that
runs workflows -- diamonds, fan-outs, branches, retries, cancels -- two at a time, and
enqueues some for the server). All of them share one database file for ``--seconds``,
then drain. The coordinator then checks, and exits 1 when a check fails:

* zero ``sqlite3.OperationalError`` ("database is locked" and friends) anywhere: raised
  to a caller, or logged by an engine loop;
* zero lost events: ``events.seq`` is gap-free 1..N, every event a process published is
  stored (same seq, execution and kind), no seq was published twice;
* every execution's ``task_*`` events match its task rows (one ``task_started`` per
  attempt, one terminal event of the row's status, ``task_retrying`` = attempts - 1),
  every task of a terminal execution has a row, one start and one end event each;
* every execution is terminal, none ended by an engine error, none taken over by the
  server while its kernel was alive.

It prints a table of figures (executions, tasks, events, commit latency per process).

``--control deferred`` is the negative control: writers open plain (deferred) ``BEGIN``
transactions instead of ``BEGIN IMMEDIATE``, which SQLite answers with "database is
locked" under contention -- the checks must then fail, which shows they can.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytaskflow_jupyter.executors import make_executor  # noqa: E402
from pytaskflow_jupyter.runner import SUBMITTED, Runner  # noqa: E402
from pytaskflow_jupyter.serialize import execution_json  # noqa: E402
from pytaskflow_jupyter.store import Store  # noqa: E402

TERMINAL = {"completed", "failed", "cancelled"}


# -- workloads -----------------------------------------------------------------------------
def t(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    params = {k: fields.pop(k) for k in ("code", "next") if k in fields}
    return {
        "name": name,
        "type": fields.pop("type", "python"),
        "params": params,
        "dependencies": list(deps),
        **fields,
    }


def workflows(prefix: str) -> list[dict[str, Any]]:
    flaky = "if context['attempt'] == 1:\n    raise ValueError('first attempt fails')\nresult = 1"
    return [
        {
            "name": f"{prefix}-diamond",
            "tasks": [
                t("a", code="print('a says hi')\nresult = sum(range(1000))"),
                t("b", "a", code="result = upstream['a'] + 1"),
                t("c", "a", code="result = upstream['a'] + 2"),
                t("d", "b", "c", code="result = upstream['b'] + upstream['c']"),
            ],
        },
        {
            "name": f"{prefix}-fanout",
            "tasks": [
                t("src", code="result = 1"),
                *(t(f"f{i}", "src", code=f"result = {i}") for i in range(16)),
                t("sink", *(f"f{i}" for i in range(16)), code="result = sum(upstream.values())"),
            ],
        },
        {
            "name": f"{prefix}-branch",
            "tasks": [
                t("pick", type="branch", code="result = 'left'"),
                t("left", "pick", code="result = 'L'"),
                t("right", "pick", code="result = 'R'"),
                t("join", "left", "right"),
            ],
        },
        {
            "name": f"{prefix}-retry",
            "tasks": [
                t("flaky", code=flaky, retries=2, retry_delay=0.01),
                t("broken", code="raise RuntimeError('always')", retries=1, retry_delay=0.01),
                t("after", "flaky", "broken", trigger_rule="all_done", code="result = 'done'"),
            ],
        },
        {
            "name": f"{prefix}-slow",
            "tasks": [
                t("s1", code="import time\ntime.sleep(0.3)\nresult = 1"),
                t("s2", "s1", code="import time\ntime.sleep(0.3)\nresult = 2"),
            ],
        },
    ]


# -- instrumentation shared by the roles --------------------------------------------------
class Probe(logging.Handler):
    """Counts OperationalErrors (raised or logged) and engine-loop failures in a process."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.locked: list[str] = []
        self.logged_errors: list[str] = []
        self.published: list[list[Any]] = []
        self.commit_ms: list[float] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        with self._lock:
            if isinstance(exc, sqlite3.OperationalError):
                self.locked.append(str(exc))
            self.logged_errors.append(f"{record.name}: {record.getMessage()} {exc!r}")

    def on_events(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self.published.extend([e.seq, e.execution_id, e.event] for e in events)

    def timed(self, store: Store) -> None:
        commit = store.commit

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return commit(*args, **kwargs)
            finally:
                with self._lock:
                    self.commit_ms.append((time.perf_counter() - start) * 1000)

        store.commit = wrapper  # type: ignore[method-assign]

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            with self._lock:
                self.locked.append(str(exc))
            return None


class DeferredStore(Store):
    """The negative control: deferred transactions, which upgrade to writes too late."""

    BEGIN = "BEGIN"


def setup(db: str, probe: Probe, executor: str, workers: int, control: str, role: str) -> Runner:
    logging.getLogger().addHandler(probe)
    store = DeferredStore(db) if control == "deferred" else Store(db)
    probe.timed(store)
    runner = Runner(
        store,
        make_executor(executor, workers=workers),
        heartbeat_interval=0.5,
        stale_after=10.0,
        role=role,
    )
    runner.bus.subscribe(probe.on_events)
    return runner


def write_result(path: str, role: str, probe: Probe, **extra: Any) -> None:
    Path(path).write_text(
        json.dumps(
            {
                "role": role,
                "locked": probe.locked,
                "logged_errors": probe.logged_errors,
                "published": probe.published,
                "commit_ms": probe.commit_ms,
                **extra,
            }
        )
    )


# -- roles ---------------------------------------------------------------------------------
def kernel(args: argparse.Namespace) -> None:
    probe = Probe()
    runner = setup(args.db, probe, "thread", 4, args.control, "kernel")
    patience = 60.0 if args.control == "none" else 3.0
    rng = random.Random(args.index)
    defs = [runner.register(d)["id"] for d in workflows(f"k{args.index}")]
    deadline = time.monotonic() + args.seconds
    ran = enqueued = cancels = 0
    while time.monotonic() < deadline:
        batch = []
        for _ in range(2):
            wid = rng.choice(defs)
            if rng.random() < 0.15:
                probe.call(runner.enqueue, wid)
                enqueued += 1
                continue
            ex = probe.call(runner.start, wid)
            if ex is not None:
                batch.append(ex["id"])
                ran += 1
        if batch and rng.random() < 0.15:
            time.sleep(rng.random() * 0.2)
            try:
                probe.call(runner.cancel, batch[0])
                cancels += 1
            except Exception:  # already ended: 409
                pass
        for exec_id in batch:
            probe.call(runner.wait, exec_id, patience)
        probe.call(runner.list_executions, limit=20)  # a reader, as the panel is
    for exec_id in runner.active():
        probe.call(runner.wait, exec_id, patience)
    runner.close()
    runner.executor.shutdown()
    write_result(
        args.out,
        f"kernel {args.index}",
        probe,
        executions=ran,
        enqueued=enqueued,
        cancels=cancels,
        adopted=0,
    )


def server(args: argparse.Namespace) -> None:
    probe = Probe()
    runner = setup(args.db, probe, "process", 2, args.control, "server")
    defs = [runner.register(d)["id"] for d in workflows("server")]
    deadline = time.monotonic() + args.seconds
    give_up = deadline + (120.0 if args.control == "none" else 3.0)
    ran = adopted = taken = 0
    mine: list[str] = []
    i = 0
    while True:
        now = time.monotonic()
        adopted += len(probe.call(runner.adopt_submitted) or [])
        if i % 10 == 0:
            taken += len(probe.call(runner.recover) or [])
        if now < deadline and len(runner.active()) < 3:
            ex = probe.call(runner.start, defs[i % len(defs)])
            if ex is not None:
                mine.append(ex["id"])
                ran += 1
        i += 1
        if now > give_up:
            break
        if now >= deadline and all(Path(p).exists() for p in args.kernel_outs):
            pending = runner.store.executions_where(statuses=("pending",), owner=SUBMITTED)
            if not pending and not runner.active():
                break
        time.sleep(0.05)
    runner.close()
    runner.executor.shutdown()
    write_result(args.out, "server", probe, executions=ran, adopted=adopted, taken_over=taken)


# -- the coordinator ------------------------------------------------------------------------
def spawn(
    role: str, db: str, out: str, args: argparse.Namespace, **extra: Any
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        __file__,
        "--role",
        role,
        "--db",
        db,
        "--out",
        out,
        "--seconds",
        str(args.seconds),
        "--control",
        args.control,
    ]
    for key, value in extra.items():
        cmd += [
            f"--{key.replace('_', '-')}",
            *map(str, value if isinstance(value, list) else [value]),
        ]
    return subprocess.Popen(cmd, cwd=ROOT)


def verify(db: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Every invariant of the module docstring, as counts of violations."""
    store = Store(db)
    conn = sqlite3.connect(db)
    n, low, high = conn.execute("SELECT count(*), min(seq), max(seq) FROM events").fetchone()
    stored = {
        seq: (ex, ev) for seq, ex, ev in conn.execute("SELECT seq, execution_id, event FROM events")
    }
    published = [tuple(p) for r in results for p in r["published"]]
    seqs = Counter(p[0] for p in published)
    problems: dict[str, list[Any]] = defaultdict(list)
    if n and (low != 1 or high != n):
        problems["seq_gaps"].append((n, low, high))
    for seq, ex, ev in published:
        if stored.get(seq) != (ex, ev):
            problems["published_not_stored"].append(seq)
    problems["published_twice"] = [s for s, c in seqs.items() if c > 1]
    events: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for ex_id, event, task in conn.execute("SELECT execution_id, event, task FROM events"):
        events[ex_id].append((event, task))
    executions = conn.execute("SELECT id, status, reason FROM executions").fetchall()
    tasks_total = 0
    for ex_id, status, reason in executions:
        if status not in TERMINAL:
            problems["not_terminal"].append(ex_id)
            continue
        if reason == "engine_error":
            problems["engine_error"].append(ex_id)
        kinds = Counter(events[ex_id])
        if kinds[("execution_started", None)] != 1 or kinds[(f"execution_{status}", None)] != 1:
            problems["execution_events"].append(ex_id)
        row = store.execution_row(ex_id)
        execution = execution_json(
            row, store.load_workflow(row["workflow_id"], row["revision"]),
            store.task_runs(ex_id), detail=True,
        )  # fmt: skip
        rows = store.task_runs(ex_id)
        tasks_total += len(rows)
        if len(rows) != len(execution["tasks"]):
            problems["tasks_without_row"].append(ex_id)
        for name, row in rows.items():
            expected = {
                "task_started": row.attempts,
                "task_retrying": max(0, row.attempts - 1),
                "task_completed": int(row.status == "completed"),
                "task_failed": int(row.status == "failed"),
                "task_skipped": int(row.status == "skipped"),
            }
            if row.status == "cancelled":  # a cancel ends an attempt without a task event
                expected["task_retrying"] = kinds[("task_retrying", name)]
                if kinds[("task_retrying", name)] not in (row.attempts, max(0, row.attempts - 1)):
                    problems["task_events"].append((ex_id, name, "retrying"))
            got = {kind: kinds[(kind, name)] for kind in expected}
            if got != expected:
                problems["task_events"].append((ex_id, name, row.status, got, expected))
    return {
        "problems": {k: v for k, v in problems.items() if v},
        "events": n or 0,
        "executions": len(executions),
        "tasks": tasks_total,
        "statuses": dict(Counter(s for _, s, _ in executions)),
        "db_mib": Path(db).stat().st_size / 2**20,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(
    results: list[dict[str, Any]], summary: dict[str, Any], seconds: float, elapsed: float
) -> None:
    print(
        f"\nsoak: 1 server + {len(results) - 1} kernels, {seconds:g} s of load, "
        f"{elapsed:.1f} s in all, one database\n"
    )
    head = (
        f"{'process':<10}{'executions':>11}{'events':>9}{'locked':>8}{'errors':>8}"
        f"{'commits':>9}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        ms = r["commit_ms"]
        print(
            f"{r['role']:<10}{r['executions'] + r['adopted']:>11}{len(r['published']):>9}"
            f"{len(r['locked']):>8}{len(r['logged_errors']):>8}{len(ms):>9}"
            f"{percentile(ms, 0.5):>8.2f}{percentile(ms, 0.99):>8.2f}{max(ms or [0]):>9.1f}"
        )
    print(
        f"\nexecutions {summary['executions']} {summary['statuses']}, task rows "
        f"{summary['tasks']}, events {summary['events']} "
        f"({summary['events'] / max(seconds, 1e-9):.0f}/s), db {summary['db_mib']:.1f} MiB, "
        f"largest WAL seen {summary['wal_max_mib']:.1f} MiB"
    )
    server = next(r for r in results if r["role"] == "server")
    print(
        f"server: adopted {server['adopted']} submitted executions, took over "
        f"{server['taken_over']} (must be 0: every kernel was alive)"
    )
    if summary["problems"]:
        print("\nFAILED checks:")
        for key, value in summary["problems"].items():
            print(f"  {key}: {len(value)}, e.g. {str(value[:3])[:300]}")
    else:
        print(
            "\nall checks passed: 0 'database is locked', 0 lost events, every execution "
            "terminal, events match task rows"
        )


def coordinate(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="taskflow-soak-"))
    db = args.db or str(work / "taskflow.db")
    Store(db).close()  # create and migrate once, before the crowd arrives
    outs = [str(work / f"kernel-{i}.json") for i in range(args.kernels)]
    start = time.monotonic()
    procs = [spawn("server", db, str(work / "server.json"), args, kernel_outs=outs)]
    procs += [spawn("kernel", db, out, args, index=i) for i, out in enumerate(outs)]
    wal, wal_max = Path(db + "-wal"), 0
    while any(p.poll() is None for p in procs):  # checkpoint starvation would show here
        if time.monotonic() - start > args.seconds + 180:
            for p in procs:
                p.kill()
        wal_max = max(wal_max, wal.stat().st_size if wal.exists() else 0)
        time.sleep(0.25)
    codes = [p.wait() for p in procs]
    elapsed = time.monotonic() - start
    results = [json.loads(Path(p).read_text()) for p in [str(work / "server.json"), *outs]]
    summary = verify(db, results)
    summary["locked"] = sum(len(r["locked"]) for r in results)
    summary["logged_errors"] = sum(len(r["logged_errors"]) for r in results)
    summary["taken_over"] = results[0]["taken_over"]
    summary["exit_codes"] = codes
    summary["wal_max_mib"] = wal_max / 2**20
    crashed = [
        f"{r['role']}: {r['crashed'].strip().splitlines()[-1]}" for r in results if r.get("crashed")
    ]
    if crashed:
        summary["problems"]["crashed"] = crashed
    for key in ("locked", "logged_errors"):
        found = [f"{r['role']}: {m}" for r in results for m in r[key]]
        if found:
            summary["problems"][key] = found
    if summary["taken_over"]:
        summary["problems"]["taken_over"] = [summary["taken_over"]]
    if any(codes):
        summary["problems"]["exit_codes"] = codes
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        report(results, summary, args.seconds, elapsed)
    return 1 if summary["problems"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kernels", type=int, default=4)
    parser.add_argument("--db", help="database file (default: a new temporary one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--control",
        choices=("none", "deferred"),
        default="none",
        help="'deferred': the negative control (expected to fail)",
    )
    parser.add_argument("--role", choices=("server", "kernel"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--kernel-outs", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role is None:
        return coordinate(args)
    try:
        (kernel if args.role == "kernel" else server)(args)
    except BaseException as exc:  # the coordinator must hear of it, not wait for it
        import traceback

        Path(args.out).write_text(
            json.dumps(
                {
                    "role": "server" if args.role == "server" else f"kernel {args.index}",
                    "crashed": traceback.format_exc(),
                    "locked": [str(exc)] if isinstance(exc, sqlite3.OperationalError) else [],
                    "logged_errors": [],
                    "published": [],
                    "commit_ms": [],
                    "executions": 0,
                    "adopted": 0,
                    "taken_over": 0,
                }
            )
        )
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
