"""Fault injection: SIGKILL a real ``jupyter taskflow`` at random moments of a 1,000-task
workflow, restart it on the same database each time, and check what survived.

Shared by ``tests/server/test_crash_injection.py`` (20 kills, in CI) and
``bench/crash_inject.py`` (50 kills, a figures table). One run (``run_crash_injection``):

1. starts ``python -m jupyter taskflow --allow-root`` (the checkout first on
   ``PYTHONPATH``) in a process group of its own, on a free port, with a token, a temp
   root dir and ``--TaskFlowApp.db_path`` in it, and POSTs one 1,000-task workflow: a
   root, a chain of 98 tasks beside eight fan-out -> lattice -> fan-in blocks, a sink.
   Every task is ``code`` that appends ``"<execution> <task> <attempt> start"`` to a
   marker file (``O_APPEND``: one ``write`` per line, so a kill never tears a line),
   sleeps (by default ~80 ms for 20 kills: about a second of work per kill), computes
   ``result`` from its upstream results, and appends ``... end``.
   A task ``running`` at a kill runs again (at-least-once) without spending a retry; the
   server allows it 1,000 interruptions (``TaskFlowApp.max_interruptions``) so that a task
   interrupted at every kill still completes.
2. waits a random delay (the seed is printed; ``seed=`` replays the same kill schedule,
   though not the same thread interleaving), SIGKILLs the
   server's process group, opens the SQLite file read-only and snapshots every task
   row (the state committed at the kill), notes the marker file's size (what ran before
   the kill), and starts the server again on the same database. A few kills (10 %) land
   during start-up, before the server answers HTTP, while it may be recovering. If the
   execution ends before every kill was delivered, a new execution of the workflow is
   started so that every counted kill hits a running execution.
3. after the last kill, lets the executions finish, stops the server, and checks:
   every execution ``completed``; every task completed once (one completed attempt in its
   history, the expected result, no row left running or pending); every task that a
   snapshot showed completed is still completed with the same result, end time and
   attempt (else a *lost* record) and never started again after that snapshot (else a
   *duplicate* run); every completed row matches a run in the marker (else a *phantom*);
   the server logged no traceback.
   Reruns of tasks that were running at a kill are allowed and counted.

Executor: ``thread`` (``--TaskFlowApp.executor=thread``, 4 workers), not the server's
default ``process``. With threads a SIGKILL of the group stops every task at once, so the
marker's size at the kill separates exactly what ran before and after it, and a life
does not start worker processes (~0.4 s each) before its first task: 20 restarts take
about as long as 20 Jupyter start-ups (~3 s each on 2 CPUs), which is CI-friendly.
``executor="process"`` works too: the harness then also waits for the orphaned worker
processes to go (their watchdog kills them) before it snapshots.

Negative controls (``control=``): the server is started with one part of recovery
broken by a patch applied in the server process, and the checks must fail:
``rerun-completed`` (resume forgets completed tasks), ``no-resume`` (nothing is
resumed), ``phantom`` (tasks running at the kill are taken as completed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .helpers import REPO, free_port, http_json

__all__ = ["CONTROLS", "Report", "run_crash_injection", "workflow_definition"]

log = logging.getLogger(__name__)

TOKEN = "crash-token"
WORKFLOW_ID = "crash-injection"
CONTROLS = ("rerun-completed", "no-resume", "phantom")
MODULUS = 1_000_003
TASK_CODE = """\
import os, time
line = f"{context['execution_id']} {context['task']} {context['attempt']}"
fd = os.open(params['marker'], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
try:
    os.write(fd, (line + ' start\\n').encode())
    time.sleep(params['sleep'])
    result = (sum(upstream.values()) + params['n']) % MODULUS
    os.write(fd, (line + ' end\\n').encode())
finally:
    os.close(fd)
""".replace("MODULUS", str(MODULUS))

Key = tuple[str, str]  # (execution id, task name)


# -- the workflow ----------------------------------------------------------------------------
def _shape(tasks: int) -> list[tuple[str, list[str]]]:
    """(name, dependencies): root, a chain beside fan-out/lattice/fan-in blocks, a sink."""
    shape: list[tuple[str, list[str]]] = [("root", [])]
    prev = "root"
    for i in range(98):
        shape.append((f"chain{i:02d}", [prev]))
        prev = f"chain{i:02d}"
    chain_end, head, block = prev, "root", 0
    while (left := tasks - len(shape) - 1) >= 2:
        wide_n, mesh_n = (60, 50) if left >= 111 else (left - 1, 0)
        wide = [f"b{block}_w{i:02d}" for i in range(wide_n)]
        shape += [(name, [head]) for name in wide]
        mesh = [f"b{block}_m{i:02d}" for i in range(mesh_n)]
        shape += [(name, [wide[i], wide[(i + 1) % wide_n]]) for i, name in enumerate(mesh)]
        head = f"b{block}_join"
        shape.append((head, mesh or wide))
        block += 1
    shape.append(("sink", [head, chain_end]))
    if len(shape) != tasks:
        raise ValueError(f"cannot shape {tasks} tasks (got {len(shape)})")
    return shape


def workflow_definition(
    marker: Path, *, tasks: int = 1000, task_seconds: float = 0.02, retries: int = 100
) -> dict[str, Any]:
    """The workflow the run posts; task ``i`` sleeps around ``task_seconds``."""
    return {
        "id": WORKFLOW_ID,
        "name": WORKFLOW_ID,
        "tasks": [
            {
                "name": name,
                "type": "python",
                "dependencies": deps,
                "retries": retries,
                "retry_delay": 0,
                "params": {
                    "code": TASK_CODE,  # code sees its kwargs as params
                    "kwargs": {
                        "marker": str(marker),
                        "n": n + 1,
                        "sleep": round(task_seconds * (0.5 + (n * 7919 % 100) / 100), 4),
                    },
                },
            }
            for n, (name, deps) in enumerate(_shape(tasks))
        ],
    }


def expected_results(definition: dict[str, Any]) -> dict[str, int]:
    """What each task's ``result`` must be (tasks are listed after their dependencies)."""
    out: dict[str, int] = {}
    for t in definition["tasks"]:
        out[t["name"]] = (
            sum(out[d] for d in t["dependencies"]) + t["params"]["kwargs"]["n"]
        ) % MODULUS
    return out


# -- the server ------------------------------------------------------------------------------
def _launch_code(control: str) -> str:
    return (
        f"from tests.server.crash_harness import _sabotage; _sabotage({control!r}); "
        "from pytaskflow_jupyter.server.app import main; main()"
    )


def _sabotage(control: str) -> None:
    """Break one part of recovery in this (server) process: negative controls only."""
    from pytaskflow_jupyter import engine, runner

    if control == "no-resume":
        runner.Runner.recover = lambda self, *args, **kwargs: []  # type: ignore[method-assign]
        return
    init = engine.ExecutionRun.__init__

    def patched(self: Any, *args: Any, prior: Any = None, **kwargs: Any) -> None:
        for row in (prior or {}).values():
            if control == "rerun-completed" and row.status == "completed":
                row.status = "pending"
            elif control == "phantom" and row.status == "running":
                row.status = "completed"
        init(self, *args, prior=prior, **kwargs)

    engine.ExecutionRun.__init__ = patched  # type: ignore[method-assign]


class ServerExited(RuntimeError):
    def __init__(self, code: int, output: str) -> None:
        super().__init__(f"server exited with {code}: {output[-2000:]}")
        self.busy_port = "no available port could be found" in output


class Server:
    """One life of ``jupyter taskflow`` on the run's database, in its own process group."""

    def __init__(
        self, workdir: Path, *, executor: str, workers: int, control: str | None, life: int
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "JUPYTER_CONFIG_DIR": str(workdir / "config"),
            "JUPYTER_DATA_DIR": str(workdir / "data"),
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        }
        env.pop("JUPYTER_PORT", None)
        env.pop("PYTASKFLOW_DB", None)
        launcher = (
            ["-m", "jupyter", "taskflow"] if control is None else ["-c", _launch_code(control)]
        )
        cmd = [
            sys.executable,
            *launcher,
            "--allow-root",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",  # never answer from another server's port
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={workdir}",
            f"--TaskFlowApp.db_path={workdir / 'taskflow.db'}",
            f"--TaskFlowApp.executor={executor}",
            f"--TaskFlowApp.workers={workers}",
            # kills land at random, so a task rerun at a restart may be caught again by
            # the next kills: what is checked here is that nothing is lost or run twice
            # once completed, not the bound (tests/unit/test_faults_store.py checks it)
            "--TaskFlowApp.max_interruptions=1000",
        ]
        self.log = workdir / "server.log"
        with open(self.log, "ab") as out:
            out.write(f"\n===== life {life}: {' '.join(cmd)}\n".encode())
            out.flush()
            self.log_offset = out.tell()
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                start_new_session=True,
            )
        self.started = time.monotonic()
        self.ready_at: float | None = None

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http_json(self.url + path, TOKEN, method, body, timeout=60)

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from spawn until the REST API answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerExited(self.proc.returncode, self.output())
            try:
                if self.request("GET", "/workflows")[0] == 200:
                    self.ready_at = time.monotonic()
                    return self.ready_at - self.started
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def output(self) -> str:
        """What this life wrote to the log."""
        with open(self.log, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def kill(self, orphan_timeout: float = 10.0) -> list[int]:
        """SIGKILL the process group; wait until it and any worker process that lives in a
        group of its own (process executor) are gone. Returns orphans that outlived it."""
        orphans = [p for p in _descendants(self.proc.pid) if _group(p) != self.proc.pid]
        with contextlib.suppress(ProcessLookupError):  # it may have exited (a busy port)
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        deadline = time.monotonic() + orphan_timeout
        while (alive := [p for p in orphans if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        return alive

    def stop(self) -> None:
        """A graceful stop (SIGTERM), then whatever is left of the group is killed."""
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


# -- reading what survived -------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    status: str
    attempts: int
    result: str | None
    end_time: str | None
    completions: int  # completed entries in the task's attempt history


def read_db(db: Path) -> tuple[dict[str, str], dict[Key, Row]]:
    """Execution statuses and task rows, straight from the SQLite file (read-only)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        executions = dict(conn.execute("SELECT id, status FROM executions"))
        rows = {}
        for eid, name, status, attempts, result, end, history in conn.execute(
            "SELECT execution_id, name, status, attempts, result, end_time, history FROM task_runs"
        ):
            if history is None and status == "completed":
                done = 1  # a task completed at its only attempt: its history is implied
            else:
                done = sum(h.get("status") == "completed" for h in json.loads(history or "[]"))
            rows[eid, name] = Row(status, attempts or 0, result, end, done)
    finally:
        conn.close()
    return executions, rows


@dataclass(frozen=True)
class Mark:
    key: Key
    attempt: int
    what: str  # start | end
    life: int


def read_marker(path: Path, offsets: list[int]) -> list[Mark]:
    """The marker's lines, each with the life (0 = before the first kill) that wrote it."""
    data = path.read_bytes() if path.exists() else b""
    marks, pos, life = [], 0, 0
    for line in data.splitlines(keepends=True):
        while life < len(offsets) and pos >= offsets[life]:
            life += 1
        pos += len(line)
        eid, name, attempt, what = line.decode().split()
        marks.append(Mark((eid, name), int(attempt), what, life))
    return marks


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Kill:
    number: int
    early: bool  # during start-up, before the server answered HTTP
    delay: float  # seconds after ready (early: after spawn)
    counted: bool  # an execution was still running at the kill (early ones don't count)
    completed: int  # completed task rows at the kill (all executions)
    running: int  # task rows running at the kill (their attempt is lost)
    offset: int  # marker size at the kill
    executions: dict[str, str]
    rows: dict[Key, Row]


@dataclass
class Report:
    seed: int
    executor: str
    control: str | None
    kills: list[Kill] = field(default_factory=list)
    executions: list[str] = field(default_factory=list)
    final_status: dict[str, str] = field(default_factory=dict)
    wall: float = 0.0
    ready_times: list[float] = field(default_factory=list)
    finish_seconds: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def figures(self) -> dict[str, Any]:
        counted = [k for k in self.kills if k.counted and not k.early]
        return {
            "seed": self.seed,
            "executor": self.executor,
            "control": self.control,
            "kills": len(self.kills),
            "kills_mid_run": len(counted),
            "kills_during_startup": sum(k.early for k in self.kills),
            "executions": len(self.executions),
            "final_status": sorted(Counter(self.final_status.values()).items()),
            "completed_before_each_kill": [k.completed for k in self.kills],
            "running_at_each_kill": [k.running for k in self.kills],
            **{
                name: self.counts[name]
                for name in (
                    "interrupted_attempts",
                    "tasks_rerun",
                    "reruns",
                    "duplicate_runs",
                    "lost_records",
                    "phantom_completions",
                    "double_starts_in_one_life",
                    "tasks_completed",
                    "tasks_expected",
                    "wrong_results",
                    "orphans_killed",
                    "server_tracebacks",
                )
            },
            "startup_seconds_median": round(statistics.median(self.ready_times), 2)
            if self.ready_times
            else None,
            "finish_seconds": round(self.finish_seconds, 1),
            "wall_seconds": round(self.wall, 1),
        }

    def table(self) -> str:
        lines = [
            " kill  when              delay  completed  running",
            *(
                f" {k.number:4d}  {'start-up' if k.early else 'running ':8s}"
                f"{'' if k.counted else ' (late)':8s}{k.delay:6.2f}s  {k.completed:9d}"
                f"  {k.running:7d}"
                for k in self.kills
            ),
            "",
        ]
        for name, value in self.figures().items():
            if name not in ("completed_before_each_kill", "running_at_each_kill"):
                lines.append(f"{name:28s} {value}")
        lines += [f"PROBLEM: {p}" for p in self.problems[:40]]
        if len(self.problems) > 40:
            lines.append(f"... and {len(self.problems) - 40} more problems")
        return "\n".join(lines)


def run_crash_injection(
    workdir: Path,
    *,
    kills: int = 20,
    seed: int | None = None,
    executor: str = "thread",
    workers: int = 4,
    tasks: int = 1000,
    task_seconds: float | None = None,
    early_fraction: float = 0.1,
    finish_timeout: float = 180.0,
    control: str | None = None,
    say: Callable[[str], None] = log.info,
) -> Report:
    """Run the fault injection in ``workdir`` (see the module docstring); never raises for
    a failed check: ``Report.problems`` lists them. ``task_seconds`` (the mean sleep of a
    task) defaults to what gives about one second of work per kill."""
    if control is not None and control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, not {control!r}")
    seed = random.randrange(2**32) if seed is None else seed
    say(f"crash injection: seed={seed} kills={kills} executor={executor} control={control}")
    rng = random.Random(seed)
    report = Report(seed, executor, control)
    marker, db = workdir / "marker.log", workdir / "taskflow.db"
    task_seconds = task_seconds or max(0.01, kills * workers / tasks)
    definition = workflow_definition(marker, tasks=tasks, task_seconds=task_seconds)
    started = time.monotonic()
    run = _Run(workdir, report, rng, executor, workers, control, say)
    try:
        run.first_life(definition)
        run.kill_loop(kills, early_fraction, rate=0.7 * workers / task_seconds, tasks=tasks)
        run.finish(finish_timeout)
    finally:
        run.close()
    report.wall = time.monotonic() - started
    report.counts["server_tracebacks"] = (
        (workdir / "server.log")
        .read_text(errors="replace")
        .count("Traceback (most recent call last)")
    )
    if report.counts["server_tracebacks"]:
        report.problems.append(
            f"the server logged {report.counts['server_tracebacks']} "
            f"traceback(s): see {workdir / 'server.log'}"
        )
    check(
        report,
        read_db(db),
        read_marker(marker, [k.offset for k in report.kills]),
        expected_results(definition),
    )
    say(report.table())
    return report


class _Run:
    """The kill/restart loop's state (one server at a time)."""

    def __init__(
        self,
        workdir: Path,
        report: Report,
        rng: random.Random,
        executor: str,
        workers: int,
        control: str | None,
        say: Callable[[str], None],
    ) -> None:
        self.workdir, self.report, self.rng, self.say = workdir, report, rng, say
        self.options = {"executor": executor, "workers": workers, "control": control}
        self.db, self.marker = workdir / "taskflow.db", workdir / "marker.log"
        self.server: Server | None = None
        self.life = 0
        self.busy_seconds = 0.0  # time the server was up and answering, summed over lives
        self.done_before = 0

    def spawn(self, *, wait: bool = True) -> Server:
        self.server = Server(self.workdir, life=self.life, **self.options)  # type: ignore[arg-type]
        if wait:
            self.ready(self.server)
        return self.server

    def ready(self, server: Server) -> Server:
        """Wait until it answers; another port if someone took this one meanwhile."""
        for _ in range(5):
            try:
                self.report.ready_times.append(server.wait_ready())
                return server
            except ServerExited as exc:
                if not exc.busy_port:
                    raise
                self.say(f"port {server.port} was taken; starting again on another one")
                server = self.server = Server(self.workdir, life=self.life, **self.options)  # type: ignore[arg-type]
        raise RuntimeError("no free port after 5 tries")

    def first_life(self, definition: dict[str, Any]) -> None:
        server = self.spawn()
        status, execution = server.request("POST", "/workflows", definition)
        if status != 200:
            raise RuntimeError(f"POST /workflows answered {status}: {execution}")
        self.report.executions.append(execution["id"])

    def kill_loop(self, kills: int, early_fraction: float, *, rate: float, tasks: int) -> None:
        counted = 0
        while counted < kills and len(self.report.kills) < 3 * kills:
            server = self.server or self.spawn()
            early = self.life > 0 and self.rng.random() < early_fraction
            if early:
                delay = self.rng.uniform(0, statistics.median(self.report.ready_times))
                time.sleep(delay)
            else:
                if server.ready_at is None:
                    server = self.ready(server)
                delay = self._delay(kills - counted, rate, tasks)
                self._watch(server, delay, more=True)
                if self.done_before:  # measured progress per second of uptime
                    rate = max(1.0, self.done_before / max(self.busy_seconds, 0.1))
            kill = self._kill(server, early, delay)
            counted += kill.counted and not early
            self.life += 1
            self.spawn(wait=False)

    def _delay(self, kills_left: int, rate: float, tasks: int) -> float:
        """Random, spread so that the kills left are expected to use about half of the
        work left (which keeps almost every kill inside a running execution)."""
        left = max(tasks * len(self.report.executions) - self.done_before, 1)
        mean = 0.5 * left / rate / kills_left
        return self.rng.uniform(0, min(2 * mean, 0.8 * left / rate))

    def _watch(self, server: Server, delay: float, *, more: bool) -> None:
        """Sleep ``delay`` s; if every execution ended meanwhile, start another one."""
        deadline = time.monotonic() + delay
        while (now := time.monotonic()) < deadline:
            time.sleep(min(0.05, deadline - now))
            if more and all(
                s in ("completed", "failed", "cancelled")
                for s in read_db_executions(self.db).values()
            ):
                status, execution = server.request(
                    "POST", f"/workflows/{WORKFLOW_ID}/executions", {}
                )
                if status != 200:
                    raise RuntimeError(f"POST .../executions answered {status}: {execution}")
                self.report.executions.append(execution["id"])
                self.say(f"every execution ended; started {execution['id']}")

    def _kill(self, server: Server, early: bool, delay: float) -> Kill:
        uptime = time.monotonic() - (server.ready_at or time.monotonic())
        orphans = server.kill()
        self.report.counts["orphans_killed"] += len(orphans)
        offset = self.marker.stat().st_size if self.marker.exists() else 0
        executions, rows = read_db(self.db)
        completed = sum(r.status == "completed" for r in rows.values())
        kill = Kill(
            len(self.report.kills) + 1,
            early,
            delay,
            any(s in ("pending", "running") for s in executions.values()),
            completed,
            sum(r.status == "running" for r in rows.values()),
            offset,
            executions,
            rows,
        )
        if not early:
            self.busy_seconds += uptime
        self.done_before = completed
        self.report.kills.append(kill)
        self.say(
            f"kill {kill.number}: {'start-up' if early else 'running'} +{delay:.2f}s, "
            f"{completed} completed, {kill.running} running"
        )
        return kill

    def finish(self, timeout: float) -> None:
        """The last life: no kill; wait until every execution has ended."""
        server = self.server or self.spawn()
        if server.ready_at is None:
            server = self.ready(server)
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            statuses = {
                e: server.request("GET", f"/executions/{e}")[1]["status"]
                for e in self.report.executions
            }
            self.report.final_status = statuses
            if all(s in ("completed", "failed", "cancelled") for s in statuses.values()):
                break
            time.sleep(0.2)
        self.report.finish_seconds = time.monotonic() - start

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def read_db_executions(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return dict(conn.execute("SELECT id, status FROM executions"))
    finally:
        conn.close()


# -- the checks ------------------------------------------------------------------------------
def check(
    report: Report,
    final: tuple[dict[str, str], dict[Key, Row]],
    marks: list[Mark],
    expected: dict[str, int],
) -> None:
    """Fill ``report.counts`` and ``report.problems`` (see the module docstring)."""
    statuses, rows = final
    counts, problems = report.counts, report.problems
    for eid in report.executions:
        if report.final_status.get(eid) != "completed" or statuses.get(eid) != "completed":
            problems.append(
                f"execution {eid} ended {report.final_status.get(eid)!r} "
                f"(database: {statuses.get(eid)!r}), not completed"
            )
    _check_final_rows(report, rows, marks, expected)
    starts: dict[Key, list[int]] = defaultdict(list)
    for m in marks:
        if m.what == "start":
            starts[m.key].append(m.life)
    for key, lives in starts.items():
        repeated = [life for life, n in Counter(lives).items() if n > 1]
        counts["double_starts_in_one_life"] += len(repeated)
        if repeated:
            problems.append(f"{key[1]} ({key[0]}) started twice in one server life {repeated}")
        if len(set(lives)) > 1:
            counts["tasks_rerun"] += 1
            counts["reruns"] += len(set(lives)) - 1
    first_seen: dict[Key, int] = {}
    for index, kill in enumerate(report.kills):
        counts["interrupted_attempts"] += kill.running
        for key, row in kill.rows.items():
            if row.status != "completed":
                continue
            first_seen.setdefault(key, index)
            if rows.get(key) != row:
                counts["lost_records"] += 1
                problems.append(
                    f"kill {kill.number}: {key[1]} ({key[0]}) was completed "
                    f"{row}, now {rows.get(key)}"
                )
    for key, index in first_seen.items():
        again = [life for life in starts.get(key, []) if life > index]
        counts["duplicate_runs"] += len(again)
        if again:
            problems.append(
                f"{key[1]} ({key[0]}), completed at kill {index + 1}, started again in life {again}"
            )


def _check_final_rows(
    report: Report, rows: dict[Key, Row], marks: list[Mark], expected: dict[str, int]
) -> None:
    counts, problems = report.counts, report.problems
    ran = {(m.key, m.attempt) for m in marks if m.what == "end"}
    counts["tasks_expected"] = len(expected) * len(report.executions)
    for eid in report.executions:
        for name, value in expected.items():
            row = rows.get((eid, name))
            if row is None or row.status != "completed":
                problems.append(f"{name} ({eid}) ended {row.status if row else 'without a row'}")
                continue
            counts["tasks_completed"] += 1
            if row.completions != 1:
                problems.append(f"{name} ({eid}) has {row.completions} completed attempts")
            if row.result != json.dumps(value):
                counts["wrong_results"] += 1
                problems.append(f"{name} ({eid}) result {row.result}, expected {value}")
            if ((eid, name), row.attempts) not in ran:
                counts["phantom_completions"] += 1
                problems.append(f"{name} ({eid}) completed attempt {row.attempts} never ran")
