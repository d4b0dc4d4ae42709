"""The workloads of ``bench_engine.py`` and the floor they are measured against.

``noop`` is the trivial task callable (``bench._floor:noop``), ``sleep10`` one that
sleeps 10 ms. ``graph`` builds the four no-op shapes and ``sleep`` (a fan-out whose
middle tasks call ``sleep10``) as ``[(name, dependencies, kind)]`` in topological order;
``definition`` turns one into a workflow definition, ``dask_graph`` into an equivalent
Dask graph.

``run_floor`` is the least any durable scheduler has to do for the same work: the same
calls through a bare ``ThreadPoolExecutor``, dispatched in topological order as their
dependencies finish, plus one SQLite row write per state change the engine records
(``running`` and ``completed``, or one ``skipped``), committed once per turn of its loop
in one ``BEGIN IMMEDIATE`` transaction with the Store's PRAGMAs (WAL, synchronous=NORMAL).
Like the engine it commits a turn's rows, then hands the turn's calls to the pool. It writes no
events, no history and no execution row, and knows in advance which branch tasks are
skipped: it is a floor, not a second engine.
"""

from __future__ import annotations

import queue
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SHAPES = ("chain", "fanout", "grid", "branch")
NOOP = "bench._floor:noop"
SLEEP = "bench._floor:sleep10"
LAYERS = 10

Graph = list[tuple[str, list[str], str]]  # (name, dependencies, "python" | "sleep" | "branch")


def noop(*args: Any, **kwargs: Any) -> None:
    """The trivial task: takes anything (Dask passes dependency results), does nothing."""


def sleep10(*args: Any, **kwargs: Any) -> None:
    """A task that waits 10 ms (off the CPU: ``n`` of them on ``w`` workers take
    ``n * 10 ms / w`` at best)."""
    time.sleep(0.01)


CALLS = {"python": noop, "sleep": sleep10}  # what a task of each kind runs


def graph(shape: str, n: int) -> Graph:
    """``n`` tasks of ``shape``, in topological order.

    chain   t0 -> t1 -> ... -> t(n-1)
    fanout  one root -> n-2 independent tasks -> one sink depending on all of them
    grid    10 layers of n/10 tasks; task i of a layer depends on tasks i-1, i, i+1
            of the layer before
    branch  a branch task selecting ``left`` over ``right``; (n-4)/2 tasks under each;
            a ``join`` after all of them (half of the workflow is skipped)
    sleep   the fan-out, its n-2 middle tasks calling ``sleep10``
    """
    if shape == "chain":
        return [(f"t{i}", [f"t{i - 1}"] if i else [], "python") for i in range(n)]
    if shape in ("fanout", "sleep"):
        mid = [f"t{i}" for i in range(n - 2)]
        kind = "sleep" if shape == "sleep" else "python"
        return [
            ("root", [], "python"),
            *((m, ["root"], kind) for m in mid),
            ("sink", mid, "python"),
        ]
    if shape == "grid":
        width = max(1, n // LAYERS)
        out: Graph = []
        for layer in range(LAYERS):
            for i in range(width):
                deps = (
                    []
                    if layer == 0
                    else [f"g{layer - 1}_{j}" for j in (i - 1, i, i + 1) if 0 <= j < width]
                )
                out.append((f"g{layer}_{i}", deps, "python"))
        return out
    if shape == "branch":
        k = (n - 4) // 2
        left, right = [f"l{i}" for i in range(k)], [f"r{i}" for i in range(k)]
        return [
            ("choose", [], "branch"),
            ("left", ["choose"], "python"),
            ("right", ["choose"], "python"),
            *((x, ["left"], "python") for x in left),
            *((x, ["right"], "python") for x in right),
            ("join", left + right, "python"),
        ]
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}, sleep")


def skipped(shape: str, g: Graph) -> set[str]:
    """Tasks the engine skips (the unselected arm of ``branch``)."""
    if shape != "branch":
        return set()
    return {name for name, deps, _ in g if name == "right" or deps == ["right"]}


def definition(shape: str, n: int, *, fast: bool = False) -> dict[str, Any]:
    """A workflow definition of the shape; ``fast`` leaves python tasks without params
    (the engine completes those in its loop without dispatching them; sleeping tasks
    keep theirs)."""
    tasks = []
    for name, deps, kind in graph(shape, n):
        if kind == "branch":
            params: dict[str, Any] = {"next": "left"}
        elif kind == "sleep":
            params = {"callable": SLEEP}
        else:
            params = {} if fast else {"callable": NOOP}
        type_ = "branch" if kind == "branch" else "python"
        tasks.append({"name": name, "type": type_, "params": params, "dependencies": deps})
    return {
        "id": f"bench_{shape}_{n}{'_fast' if fast else ''}",
        "name": f"bench {shape} {n}",
        "tasks": tasks,
    }


def dask_graph(shape: str, n: int) -> tuple[dict[str, Any], list[str]]:
    """An equivalent Dask graph (each task's callable with its dependencies' results) and
    its leaves."""
    g = graph(shape, n)
    dsk = {name: (CALLS.get(kind, noop), *deps) for name, deps, kind in g}
    has_children = {d for _, deps, _ in g for d in deps}
    return dsk, [name for name, _, _ in g if name not in has_children]


def connect(db: Path) -> sqlite3.Connection:
    """A connection with the Store's PRAGMAs (WAL, synchronous=NORMAL), in autocommit
    mode: the caller writes its own ``BEGIN IMMEDIATE`` ... ``COMMIT``."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=60000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def run_floor(shape: str, n: int, workers: int, db: Path) -> float:
    """Run the floor once; return its wall time in seconds (set-up excluded)."""
    g = graph(shape, n)
    skip = skipped(shape, g)
    call = {name: CALLS.get(kind, noop) for name, _, kind in g}
    children: dict[str, list[str]] = {name: [] for name, _, _ in g}
    remaining = {}
    for name, deps, _ in g:
        remaining[name] = len(deps)
        for d in deps:
            children[d].append(name)
    conn = connect(db)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS task_runs (execution_id TEXT, name TEXT, "
        "status TEXT, time REAL, PRIMARY KEY (execution_id, name)) WITHOUT ROWID"
    )
    sql = "INSERT OR REPLACE INTO task_runs VALUES ('floor', ?, ?, ?)"
    done: queue.SimpleQueue[str] = queue.SimpleQueue()
    pool = ThreadPoolExecutor(workers)
    start = time.perf_counter()
    ready = deque(name for name, deps, _ in g if not deps)
    open_ = len(g)
    completed: list[str] = []
    while True:
        now = time.time()
        rows = [(name, "completed", now) for name in completed]
        released, submit = deque(completed), []
        while released or ready:
            while released:
                ready.extend(c for c in children[released.popleft()] if _release(remaining, c))
            if ready:
                name = ready.popleft()
                if name in skip:
                    rows.append((name, "skipped", now))
                    open_ -= 1
                    released.append(name)
                else:
                    rows.append((name, "running", now))
                    submit.append(name)
        if rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, rows)
            conn.execute("COMMIT")
        for name in submit:  # as the engine: a call runs once its "running" row is durable
            pool.submit(call[name]).add_done_callback(lambda _f, name=name: done.put(name))
        if open_ == 0:
            break
        completed = [done.get()]
        while True:
            try:
                completed.append(done.get_nowait())
            except queue.Empty:
                break
        open_ -= len(completed)
    elapsed = time.perf_counter() - start
    pool.shutdown()
    conn.close()
    return elapsed


def _release(remaining: dict[str, int], child: str) -> bool:
    remaining[child] -= 1
    return remaining[child] == 0
