"""Engine overhead per task with persistence, against the floor and Dask's threaded scheduler.

    python bench/bench_engine.py [--shapes chain fanout grid branch]
        [--sizes 100 1000 10000 100000] [--big-shapes SHAPE ...] [--workers N]
        [--repeat R] [--no-fast] [--no-dask]
    python bench/bench_engine.py --profile fanout:10000 chain:10000 [fanout:10000:fast]
    python bench/bench_engine.py --phases fanout:10000 chain:10000

No-op workflows of four shapes (``bench/_floor.py``: chain, fan-out/fan-in, 10-layer
grid, branch) run through a ``Runner`` with a real SQLite ``Store`` (WAL,
synchronous=NORMAL: every state change is committed before it is published) and a
``ThreadExecutor``; each task calls ``bench._floor:noop``. Columns:

* engine: ``runner.submit`` (validation, registration) until the execution's terminal
  event is published, per task; ``submit s`` is the part spent in ``runner.submit``;
* fast: the same shape with python tasks without params, which the engine completes in
  its loop without dispatching them (its no-op fast path);
* floor: the same calls through a bare ``ThreadPoolExecutor`` with one row write per
  state change, committed once per turn (see ``_floor.py``); ratio = engine / floor;
* dask: ``dask.threaded.get`` on the same graph (no branch equivalent: ``-``); left
  out when dask is not importable;
* peak MiB: ``ru_maxrss`` of a fresh subprocess per case (the definition, the store
  and the run, all included), beside the peak of a process that only imports;
* wall s: the engine column's seconds for the whole workflow.

Every pool has ``--workers`` threads (default: ``ThreadExecutor``'s own default).
Cases of up to 10,000 tasks are the best of ``--repeat`` runs (default 3), each in a
fresh store; 100,000-task cases run once, for the shapes in ``--big-shapes`` (default
all four: about five minutes in all on a 2-core box; ``--big-shapes chain fanout``
saves two of them). The fan-in of fanout and the join of branch have n-2
dependencies, more than the default ``Limits.max_dependencies`` of 10,000, so the
store is given a limit of n.

Mapped tasks (SPEC 11): the same run also times, at ``--map-sizes`` (default 10,000), a
fan-out whose middle is ONE mapped task (``root`` returns ``list(range(n-2))``, ``each``
maps ``bench._floor:noop`` over it, ``sink`` depends on ``each``) against the static
fan-out of the same n (n-2 tasks calling the same callable), each the best of
``--repeat`` runs in a fresh store, and prints the per-instance cost beside the
per-task cost and their ratio (``--no-map`` skips it).

``--phases shape:n`` runs one case (best of ``--repeat``) as the table does, with a timer
around each phase of the loop's turn, the submission and the worker's call, and prints
the wall time of each per task (phases nest: ``_flush`` holds ``commit``). Threads
share the GIL, so a phase's time includes waiting for it.

``--profile shape:n[:fast]`` runs one case under cProfile with the loop in the main
thread (the submit path and the loop; the worker threads are not profiled) and prints
the top functions by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytaskflow_jupyter.executors as executors_module  # noqa: E402
from bench._floor import SHAPES, dask_graph, definition, graph, run_floor  # noqa: E402
from pytaskflow_jupyter.engine import ExecutionRun  # noqa: E402
from pytaskflow_jupyter.events import EventBus  # noqa: E402
from pytaskflow_jupyter.executors import Executor, ThreadExecutor  # noqa: E402
from pytaskflow_jupyter.runner import Runner, new_execution_id  # noqa: E402
from pytaskflow_jupyter.store import Store  # noqa: E402
from pytaskflow_jupyter.transitions import RunState  # noqa: E402
from pytaskflow_jupyter.validation import Limits, parse_workflow  # noqa: E402

SIZES = (100, 1_000, 10_000, 100_000)
BIG = 100_000
TERMINAL_EVENTS = ("execution_completed", "execution_failed", "execution_cancelled")


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def mapped_definition(n: int) -> dict[str, Any]:
    """A fan-out of n tasks as the static one, its middle one mapped task of n-2 items."""
    return {
        "name": f"bench-mapped-{n}",
        "tasks": [
            {"name": "root", "params": {"code": f"result = list(range({n - 2}))"}},
            {
                "name": "each",
                "dependencies": ["root"],
                "map_over": "root",
                "params": {"callable": "bench._floor:noop"},
            },
            {"name": "sink", "dependencies": ["each"], "params": {"callable": "bench._floor:noop"}},
        ],
    }


def make_store(path: Path, n: int) -> Store:
    return Store(path, limits=Limits(max_dependencies=max(10_000, n)))


def expected_counts(shape: str, n: int) -> dict[str, int]:
    total = len(graph(shape, n))
    if shape == "branch":
        k = (n - 4) // 2
        return {"completed": total - k - 1, "skipped": k + 1}
    return {"completed": total}


# -- one case per subprocess ------------------------------------------------------------
def engine_case(shape: str, n: int, workers: int, repeat: int, fast: bool) -> dict:
    best: tuple[float, float] | None = None
    for _ in range(repeat):
        total, submit = engine_once(shape, n, workers, fast)
        if best is None or total < best[0]:
            best = (total, submit)
    assert best is not None
    return {"seconds": best[0], "submit": best[1]}


def engine_once(
    shape: str, n: int, workers: int, fast: bool, executor: Executor | None = None
) -> tuple[float, float]:
    """One run in a fresh store: (submit -> terminal event published, submit) seconds.
    ``executor``: one to run on and leave running (default: a new ``ThreadExecutor`` of
    ``workers`` threads, shut down after the run)."""
    own = executor is None
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp) / "bench.db", n)
        if executor is None:
            executor = ThreadExecutor(workers)
        bus = EventBus()
        runner = Runner(store, executor, bus, max_map_length=max(10_000, n))
        ended = threading.Event()
        end = [0.0]

        def on_events(events: list[dict]) -> None:
            if any(event.event in TERMINAL_EVENTS for event in events):
                end[0] = time.perf_counter()
                ended.set()

        bus.subscribe(on_events)
        data = mapped_definition(n) if shape == "mapped" else definition(shape, n, fast=fast)
        start = time.perf_counter()
        ex_id = runner.submit(data)["id"]
        submitted = time.perf_counter()
        if not ended.wait(3600):
            raise TimeoutError(f"{shape} {n}: no terminal event within an hour")
        check(store, ex_id, shape, n)
        runner.close()
        if own:
            executor.shutdown(wait=True)
        store.close()
    return end[0] - start, submitted - start


def check(store: Store, ex_id: str, shape: str, n: int) -> None:
    """The run did the work: every task in the status it should have. Counted in SQL,
    not through ``task_rows``, which would build every row and raise the peak measured."""
    status = store.control(ex_id)[0]
    if shape == "mapped":
        (done,) = (
            store._conn()
            .execute(
                "SELECT count(*) FROM task_instances WHERE execution_id=? AND status='completed'",
                (ex_id,),
            )
            .fetchone()
        )
        if status != "completed" or done != n - 2:
            raise AssertionError(f"mapped {n}: execution {status}, {done} instances completed")
        return
    counts = dict(
        store._conn()
        .execute(
            "SELECT status, count(*) FROM task_runs WHERE execution_id=? GROUP BY status", (ex_id,)
        )
        .fetchall()
    )
    want = expected_counts(shape, n)
    if status != "completed" or counts != want:
        raise AssertionError(f"{shape} {n}: execution {status}, tasks {counts}, want {want}")


def floor_case(shape: str, n: int, workers: int, repeat: int) -> dict:
    return {"seconds": min(floor_once(shape, n, workers) for _ in range(repeat))}


def floor_once(shape: str, n: int, workers: int) -> float:
    """One run of the floor in a fresh database, its rows checked: seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "floor.db"
        seconds = run_floor(shape, n, workers, db)
        with sqlite3.connect(db) as conn:
            counts = dict(
                conn.execute("SELECT status, count(*) FROM task_runs GROUP BY status").fetchall()
            )
        conn.close()
        if counts != expected_counts(shape, n):
            raise AssertionError(f"floor {shape} {n}: {counts}")
    return seconds


def dask_case(shape: str, n: int, workers: int, repeat: int) -> dict:
    from dask.threaded import get

    get({"warm": (sum, [1])}, ["warm"], num_workers=workers)  # the pool exists
    return {"seconds": min(dask_once(get, shape, n, num_workers=workers) for _ in range(repeat))}


def dask_once(get: Any, shape: str, n: int, **options: Any) -> float:
    """Seconds of one ``get(graph, leaves, **options)`` (``dask.threaded.get``, a
    ``distributed.Client``'s ``get``) of the shape's graph; every leaf must come back."""
    dsk, keys = dask_graph(shape, n)
    start = time.perf_counter()
    results = get(dsk, keys, **options)
    seconds = time.perf_counter() - start
    if len(results) != len(keys):
        raise AssertionError(f"dask {shape} {n}: {len(results)} results for {len(keys)} leaves")
    return seconds


def child(kind: str, shape: str, n: int, workers: int, repeat: int) -> None:
    if kind == "idle":
        out: dict = {}
    elif kind in ("engine", "fast"):
        out = engine_case(shape, n, workers, repeat, fast=kind == "fast")
    elif kind == "floor":
        out = floor_case(shape, n, workers, repeat)
    else:
        out = dask_case(shape, n, workers, repeat)
    out["peak_kib"] = peak_kib()
    print(json.dumps(out))


def spawn(
    kind: str,
    shape: str,
    n: int,
    workers: int,
    repeat: int,
    script: Path | None = None,
    options: tuple[str, ...] = (),
    timeout: float = 7200.0,
) -> dict | None:
    """Run ``script --child kind shape n [options]`` (default: this one) in a fresh interpreter
    that imports this checkout (``PYTHONPATH``, which its worker processes inherit too);
    the last line it prints, as JSON, or None (its stderr printed) when it failed or ran
    past ``timeout`` seconds."""
    cmd = [
        sys.executable,
        str(script or Path(__file__).resolve()),
        "--child",
        kind,
        shape,
        str(n),
        "--workers",
        str(workers),
        "--repeat",
        str(repeat),
        *options,
    ]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    # a session of its own: a case past its time is stopped with what it started
    # (a Dask cluster's worker processes)
    child = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        print(f"  {kind} {shape} {n} stopped after {timeout:.0f} s", file=sys.stderr)
        return None
    if child.returncode != 0:
        print(f"  {kind} {shape} {n} failed:\n{err[-2000:]}", file=sys.stderr)
        return None
    return json.loads(out.strip().splitlines()[-1])


# -- profile ----------------------------------------------------------------------------
def profile(case: str, workers: int, top: int) -> None:
    """Submit path and loop of one case (``shape:n`` or ``shape:n:fast``) in this
    thread under cProfile."""
    shape, size, *flags = case.split(":")
    n = int(size)
    data = definition(shape, n, fast="fast" in flags)
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp) / "bench.db", n)
        executor = ThreadExecutor(workers)
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        wf = parse_workflow(data, store.limits)
        revision = store.save_workflow(wf)
        wf = store.load_workflow(wf.id, revision)
        execution, _ = store.create_execution(
            new_execution_id(), wf.id, revision, params={}, owner="bench", executor=executor.name
        )
        status = ExecutionRun(store, executor, EventBus(), wf, execution["id"]).run()
        prof.disable()
        elapsed = time.perf_counter() - start
        executor.shutdown(wait=True)
        store.close()
    print(
        f"\n=== profile {case}: {status} in {elapsed:.2f} s under cProfile "
        f"({elapsed / n * 1e6:.0f} us/task) ==="
    )
    stats = pstats.Stats(prof).strip_dirs()
    for key in ("tottime", "cumulative"):
        print(f"\n--- by {key} ---")
        stats.sort_stats(key).print_stats(top)


def phases(case: str, workers: int, repeat: int) -> None:
    """Wall time per task of each phase of one case (see the module docstring)."""
    shape, size = case.split(":")[:2]
    n = int(size)
    spent: Counter[str] = Counter()

    def timed(owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        setattr(owner, name, wrapper)

    for name in ("_flush", "_submit", "_sleep", "_drain"):
        timed(ExecutionRun, name, f"loop: {name}")
    for name in ("apply", "decide", "start_attempts", "take"):
        timed(RunState, name, f"state: {name}")
    timed(Store, "commit", "loop: _flush > Store.commit")
    timed(Runner, "submit", "Runner.submit")
    timed(executors_module, "run_job", "worker: run_job")
    best: tuple[float, dict[str, float]] | None = None
    for _ in range(repeat):
        spent.clear()
        total, _submit = engine_once(shape, n, workers, False)
        if best is None or total < best[0]:
            best = (total, dict(spent))
    assert best is not None
    print(f"\n=== phases {shape}:{n}: {best[0] / n * 1e6:.1f} us/task in all ===")
    for label, seconds in sorted(best[1].items(), key=lambda kv: -kv[1]):
        print(f"  {label:<30}{seconds / n * 1e6:8.1f} us/task")


# -- the table --------------------------------------------------------------------------
def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def header(args: argparse.Namespace) -> None:
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    print(
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, {args.workers} worker threads, git {revision()}, "
        "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print("command: python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))


def revision(paths: tuple[str, ...] = ("pytaskflow_jupyter",)) -> str:
    """This checkout's commit, and whether ``paths`` have uncommitted changes."""

    def git(*args: str) -> str:
        run = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return run.stdout.strip()

    dirty = [p + "/" for p in paths if git("status", "--porcelain", "--", p)]
    return git("log", "-1", "--format=%h") + (
        f" + uncommitted changes in {', '.join(dirty)}" if dirty else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--sizes", nargs="*", type=int, default=list(SIZES))
    parser.add_argument(
        "--big-shapes",
        nargs="*",
        default=list(SHAPES),
        choices=SHAPES,
        help=f"shapes that also run at n >= {BIG:,}",
    )
    parser.add_argument("--workers", type=int, default=min(32, (os.cpu_count() or 1) + 4))
    parser.add_argument(
        "--repeat", type=int, default=3, help="best of this many runs for n <= 10,000"
    )
    parser.add_argument("--no-fast", action="store_true", help="skip the fast-path column")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask column")
    parser.add_argument("--map-sizes", nargs="*", type=int, default=[10_000])
    parser.add_argument("--no-map", action="store_true", help="skip mapped vs static fan-out")
    parser.add_argument("--profile", nargs="*", metavar="SHAPE:N[:fast]")
    parser.add_argument("--phases", nargs="*", metavar="SHAPE:N")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SHAPE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, shape, n = args.child
        child(kind, shape, int(n), args.workers, args.repeat)
        return
    if args.profile:
        for case in args.profile:
            profile(case, args.workers, args.top)
        return
    if args.phases:
        for case in args.phases:
            phases(case, args.workers, args.repeat)
        return
    try:
        import dask  # noqa: F401

        with_dask = not args.no_dask
    except ImportError:
        with_dask = False
    header(args)
    idle = spawn("idle", "chain", 1, args.workers, 1)
    print(f"idle peak (imports only): {idle['peak_kib'] / 1024:.0f} MiB" if idle else "")
    cols = (
        f"{'shape':<8}{'n':>8}{'engine us/t':>13}{'submit s':>10}{'fast us/t':>11}"
        f"{'floor us/t':>12}{'ratio':>7}{'dask us/t':>11}{'peak MiB':>10}"
        f"{'fast MiB':>10}{'wall s':>8}"
    )
    print("\n" + cols + "\n" + "-" * len(cols))
    for shape in args.shapes if args.shapes != ["mapped"] else ():
        for n in args.sizes:
            if n >= BIG and shape not in args.big_shapes:
                continue
            repeat = args.repeat if n <= 10_000 else 1
            eng = spawn("engine", shape, n, args.workers, repeat)
            fast = None if args.no_fast else spawn("fast", shape, n, args.workers, repeat)
            flo = spawn("floor", shape, n, args.workers, repeat)
            dsk = (
                spawn("dask", shape, n, args.workers, repeat)
                if with_dask and shape != "branch"
                else None
            )
            per = {
                name: None if r is None else r["seconds"] / n * 1e6
                for name, r in (("engine", eng), ("fast", fast), ("floor", flo), ("dask", dsk))
            }
            ratio = per["engine"] / per["floor"] if per["engine"] and per["floor"] else None
            print(
                f"{shape:<8}{n:>8}{fmt(per['engine'], '.0f'):>13}"
                f"{fmt(eng and eng['submit'], '.2f'):>10}{fmt(per['fast'], '.0f'):>11}"
                f"{fmt(per['floor'], '.0f'):>12}{fmt(ratio, '.1f'):>7}"
                f"{fmt(per['dask'], '.0f'):>11}"
                f"{fmt(eng and eng['peak_kib'] / 1024, '.0f'):>10}"
                f"{fmt(fast and fast['peak_kib'] / 1024, '.0f'):>10}"
                f"{fmt(eng and eng['seconds'], '.2f'):>8}",
                flush=True,
            )

    if not args.no_map:
        mapped_vs_static(args.map_sizes, args.workers, args.repeat)


def mapped_vs_static(sizes: list[int], workers: int, repeat: int) -> None:
    """Per-instance cost of one mapped task against the per-task cost of a static fan-out
    of the same callable (issue 12: within 1.5x)."""
    cols = f"{'n':>8}{'static us/task':>16}{'mapped us/instance':>20}{'ratio':>7}"
    print("\nmapped task vs static fan-out (same callable, same n)\n" + cols)
    print("-" * len(cols))
    for n in sizes:
        static = spawn("engine", "fanout", n, workers, repeat)
        mapped = spawn("engine", "mapped", n, workers, repeat)
        per_s = None if static is None else static["seconds"] / n * 1e6
        per_m = None if mapped is None else mapped["seconds"] / n * 1e6
        ratio = per_m / per_s if per_s and per_m else None
        print(
            f"{n:>8}{fmt(per_s, '.1f'):>16}{fmt(per_m, '.1f'):>20}{fmt(ratio, '.2f'):>7}",
            flush=True,
        )


if __name__ == "__main__":
    main()
