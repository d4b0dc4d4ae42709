"""The process executor: every attempt runs in a worker process that can be killed.

Design
------
The executor has ``workers`` *slots*. A slot owns one long-lived worker process and one
thread in the parent; the thread takes the next attempt from a shared queue, sends it
(cloudpickled, so notebook functions travel) down a pipe, and waits for whichever comes
first: the reply, or the death of the process. So whatever the task does, only its
attempt suffers:

* it raises: the worker replies with a failed ``Outcome`` (``run_job`` never raises);
* it kills its process (segfault, ``os._exit``, the OOM killer, the memory cap): the
  slot sees the process sentinel, reports ``WorkerDied: worker process 123 died (exit
  code -11, SIGSEGV)`` with the faulthandler traceback and the tail of the worker's
  stderr, and starts a fresh worker;
* it hangs: the engine's timeout calls ``stop``, which SIGKILLs the worker's process
  group (the task's own subprocesses too); the slot reports the attempt stopped and
  starts a fresh worker.

Why not ``loky.get_reusable_executor``: it cannot kill one task without breaking every
other task of the pool. Why long-lived workers rather than a process per attempt: a
Python process that imports this package takes ~0.4 s to start, a round trip on a pipe
~50 us. Workers start through loky's fork+exec context: the server (threads, SQLite
connections) is never ``fork()``-ed, and ``__main__`` is not re-imported.

A worker's stderr (fd 2, from its very first line of Python: an install that cannot be
imported dies there) is a pipe that a thread of the parent copies to the server's
stderr, keeping its last lines for the report of the worker's death. Hence the worker's
target is ``exec`` of a few lines of the standard library (``_BOOT``) that move fd 2
before importing this package. A worker that ends by itself is waited for before it is
reaped, so that its own exit code is reported, never the SIGKILL of the cleanup.

A worker puts itself in its own process group (so a Ctrl-C meant for the server does not
reach tasks, and a stop reaches the task's children), and exits when its parent dies:
its pipe ends (when idle) or a watchdog thread sees its parent pid change (when busy).

``report`` is called exactly once per attempt, from the slot's thread (or from ``stop``
for an attempt still queued), except after ``shutdown``: attempts it abandons are not
reported, so that executions a closing server leaves ``running`` are resumed by the next
one instead of being recorded as failed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import pickle
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import cloudpickle
import psutil

from ._executor import DONE, Attempt, QueueExecutor
from .kinds import Hooks
from .tasks import Logs, Outcome, Progress, run_job, uses_hooks
from .tasks import failed_outcome as _failed

__all__ = ["ProcessExecutor"]

log = logging.getLogger(__name__)

# A message a worker sends before its reply: a running attempt's progress, b"\0P3/7"
# (a pickle never starts with a NUL byte).
_PROGRESS = b"\x00P"
_LOGS = b"\x00L"  # then the pickled (stdout, stderr) so far
_TAIL = 4096  # bytes of a dead worker's stderr that its report keeps

# The worker's target: stdlib only, so that fd 2 is the pipe before this package (which
# may fail to import in a broken install) is imported.
_BOOT = """
import os
os.dup2(stderr.fileno(), 2)
stderr.close()
from pytaskflow_jupyter._process import _worker_main
_worker_main(*args)
"""


def _signal_name(code: int | None) -> str:
    if code is None or code >= 0:
        return ""
    try:
        return f", {signal.Signals(-code).name}"
    except ValueError:
        return ""


class ProcessExecutor(QueueExecutor):
    """Runs each attempt in a worker process; ``stop`` kills it (see the module docstring).

    ``workers``: concurrency (default: the number of CPUs). ``memory_limit``: bytes of
    address space per worker (``RLIMIT_AS``; a task over it gets ``MemoryError`` or dies,
    and its worker is replaced); default: the machine's physical memory (a task asking
    for more fails with ``MemoryError`` instead of meeting the kernel's OOM killer), ``0``
    for none. ``max_tasks_per_worker``: replace a worker after that many attempts (for
    tasks that leak into module globals). Whatever the options, a worker is replaced
    after an attempt that left it ``LEAKED_FDS`` more open descriptors or ``LEAKED_RSS``
    more resident memory than it had before its first attempt.
    """

    LEAKED_FDS = 32
    LEAKED_RSS = 1 << 30

    name = "process"
    can_stop = True

    def __init__(
        self,
        workers: int | None = None,
        *,
        memory_limit: int | None = None,
        max_tasks_per_worker: int | None = None,
    ) -> None:
        super().__init__()
        self.workers = max(1, workers or os.cpu_count() or 1)
        if memory_limit is None:
            memory_limit = max(2 << 30, psutil.virtual_memory().total)
        self.memory_limit = memory_limit or None
        self.max_tasks_per_worker = max_tasks_per_worker
        self._abandon = False  # shutdown(wait=False): running attempts are not reported
        self._dir = tempfile.mkdtemp(prefix="taskflow-workers-")
        self._slots = [_Slot(self, i) for i in range(self.workers)]
        for slot in self._slots:
            slot.thread.start()

    def _stop_running(self, handle: Attempt) -> None:
        if isinstance(handle.slot, _Slot):
            handle.slot.kill()

    def shutdown(self, *, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        for _ in self._slots:
            self._queue.put(None)
        if not wait:
            with self._lock:
                self._abandon = True
                for slot in self._slots:
                    slot.kill()
        for slot in self._slots:
            slot.thread.join(None if wait else 5)
            slot.discard()
        shutil.rmtree(self._dir, ignore_errors=True)

    def pids(self) -> list[int]:
        """Process ids of the live workers (for monitoring and tests)."""
        return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.pid]


class _Slot:
    """One worker process and the parent thread that feeds it."""

    def __init__(self, executor: ProcessExecutor, index: int) -> None:
        self.ex = executor
        self.index = index
        self.proc: BaseProcess | None = None  # a loky process: fork+exec
        self.conn: Connection | None = None
        self.tasks_run = 0
        self.crash_path = os.path.join(executor._dir, f"worker-{index}.crash")
        self.stderr: _Tee | None = None
        self.thread = threading.Thread(
            target=self._serve, daemon=True, name=f"taskflow-process-slot-{index}"
        )

    # -- the slot's thread ------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            if self.proc is None and not self.ex._closed:
                self._spawn_quietly()
            attempt = self.ex._queue.get()
            if attempt is None:
                return
            if not self.ex._claim(attempt, self):
                continue  # stopped while queued (already reported)
            outcome = self._run(attempt)
            with self.ex._lock:
                attempt.state, attempt.slot = DONE, None
            if not self.ex._abandon:
                self.ex._deliver(attempt, outcome)
            del attempt, outcome  # an idle slot thread keeps no result alive

    def _spawn_quietly(self) -> None:
        try:
            self._spawn()
        except Exception:
            log.exception("process executor: cannot start worker %d", self.index)
            self.discard()

    def _spawn(self) -> None:
        from loky.backend.context import get_context

        ctx = get_context("loky")
        parent, child = ctx.Pipe()
        err_read, err_write = ctx.Pipe(duplex=False)
        args = (
            child,
            os.getpid(),
            self.crash_path,
            self.ex.memory_limit,
            (self.ex.LEAKED_FDS, self.ex.LEAKED_RSS),
        )
        proc = ctx.Process(
            target=exec,
            name=f"taskflow-worker-{self.index}",
            args=(_BOOT, {"stderr": err_write, "args": args}),
            daemon=True,
        )
        try:
            proc.start()
        finally:
            child.close()
            err_write.close()
        tee = _Tee(err_read, self.index)
        with self.ex._lock:
            self.proc, self.conn, self.tasks_run, self.stderr = proc, parent, 0, tee

    def _run(self, attempt: Attempt) -> Outcome:
        job = attempt.job
        try:
            payload = cloudpickle.dumps(job)
        except Exception as exc:
            return _failed(
                job,
                f"PicklingError: task {job.task!r} cannot be sent to a worker "
                f"process: {type(exc).__name__}: {exc}",
            )
        if self.proc is None:
            self._spawn_quietly()
        proc, conn = self.proc, self.conn
        if proc is None or conn is None or attempt.stopped:
            return _failed(
                job,
                "WorkerDied: no worker process could be started"
                if not attempt.stopped
                else "Stopped: the attempt was stopped",
            )
        try:
            conn.send_bytes(payload)
            # a reply is in the pipe before the sentinel fires; the sentinel alone means
            # death (even if a subprocess of the task still holds the pipe open)
            while True:
                if conn not in wait([conn, proc.sentinel]):
                    return self._died(attempt)
                reply = conn.recv_bytes()
                if reply.startswith(_PROGRESS):
                    done, total = (int(n) for n in reply[len(_PROGRESS) :].split(b"/"))
                    attempt.report(Progress(job.task, job.attempt, done, total, job.map_index))
                elif reply.startswith(_LOGS):
                    out, err = pickle.loads(reply[len(_LOGS) :])
                    attempt.report(Logs(job.task, job.attempt, out, err, job.map_index))
                else:
                    break
        except (EOFError, OSError):
            return self._died(attempt)
        outcome: Outcome
        retire: str | None
        try:
            outcome, retire = pickle.loads(reply)
        except Exception as exc:
            outcome, retire = (
                _failed(
                    job,
                    f"UnpicklingError: the result of task {job.task!r} "
                    f"cannot be loaded here: {type(exc).__name__}: {exc}",
                ),
                None,
            )
        outcome.task, outcome.attempt, outcome.map_index = job.task, job.attempt, job.map_index
        self.tasks_run += 1
        limit = self.ex.max_tasks_per_worker
        if retire:
            log.info("process executor: worker replaced after task %r: %s", job.task, retire)
        if retire or (limit and self.tasks_run >= limit):
            self.discard()
        return outcome

    def _died(self, attempt: Attempt) -> Outcome:
        """The worker ended mid-attempt: a crash, or our own kill (``stop``)."""
        proc, tee = self.proc, self.stderr
        pid = proc.pid if proc is not None else None
        if proc is not None and not attempt.stopped:
            # its pipe may close a moment before it exits: the exit code is its own only
            # if it is reaped before ``discard`` kills it
            proc.join(5)
        killed_here = proc is not None and proc.exitcode is None
        self.discard()
        code = proc.exitcode if proc is not None else None
        if attempt.stopped:
            return _failed(
                attempt.job, f"Stopped: the attempt was stopped and its worker process {pid} killed"
            )
        crash = _read_crash(self.crash_path)
        tail = tee.tail() if tee is not None else ""
        error = (
            f"WorkerDied: worker process {pid} died (exit code {code}"
            f"{_signal_name(code)}) while running task {attempt.job.task!r}"
        )
        if code == -signal.SIGKILL and not killed_here:
            error += "; killed from outside (out of memory?)"
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        if last:
            error += f"; its stderr ends with: {last.strip()}"
        stderr = "\n".join(part for part in (crash, tail) if part)
        return _failed(attempt.job, error, crash or tail or None, stderr)

    # -- any thread ---------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the worker, its process group and every descendant (a notebook's
        kernel runs in a session of its own); callers hold the executor's lock."""
        proc = self.proc
        if proc is None or not proc.pid:
            return
        try:
            descendants = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):  # not (yet) a group leader
            os.kill(proc.pid, signal.SIGKILL)

    def discard(self) -> None:
        """Forget the current worker: kill it and what is left of its process group (a
        task's subprocesses outlive a crashed worker), reap it, close the pipe."""
        with self.ex._lock:
            self.kill()  # before reaping: the pid cannot have been reused yet
            proc, conn = self.proc, self.conn
            self.proc = self.conn = self.stderr = None  # its _Tee ends with the pipe
        if proc is not None:
            proc.join(5)
        if conn is not None:
            conn.close()


class _Tee:
    """Copies a worker's stderr pipe to the server's stderr, keeping its tail."""

    def __init__(self, conn: Connection, index: int) -> None:
        self._conn = conn
        self._tail: deque[bytes] = deque()
        self._size = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._copy, daemon=True, name=f"taskflow-process-stderr-{index}"
        )
        self._thread.start()

    def _copy(self) -> None:
        fd = self._conn.fileno()
        try:
            while chunk := os.read(fd, 65536):
                with contextlib.suppress(OSError):
                    os.write(2, chunk)
                with self._lock:
                    self._tail.append(chunk)
                    self._size += len(chunk)
                    while self._size - len(self._tail[0]) >= _TAIL:
                        self._size -= len(self._tail.popleft())
        except OSError:
            pass
        finally:
            self._conn.close()  # the pipe ended: the worker and all it started are gone

    def tail(self) -> str:
        """The last ``_TAIL`` bytes written, once the pipe ended (or after a bound: a
        subprocess of the task may still hold it open)."""
        self._thread.join(2)
        with self._lock:
            data = b"".join(self._tail)[-_TAIL:]
        return data.decode(errors="replace")


def _read_crash(path: str, limit: int = 16 * 1024) -> str:
    try:
        with open(path, errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return ""


# -- the worker process -----------------------------------------------------------------
def _worker_main(
    conn: Connection,
    parent_pid: int,
    crash_path: str,
    memory_limit: int | None,
    leaks: tuple[int, int] = (32, 1 << 30),
) -> None:
    """Serve attempts until the pipe closes; runs in the worker process."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a fatal error ends the process, so the file (new for each worker) holds at most the
    # traceback of the one crash that killed it
    crash = open(crash_path, "w")  # noqa: SIM115 -- faulthandler writes to it until exit
    faulthandler.enable(crash)
    if memory_limit:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    _become_subreaper()
    threading.Thread(target=_orphan_watch, args=(parent_pid,), daemon=True).start()
    baseline = None
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if baseline is None:  # before the first attempt: what a clean worker holds
            baseline = _resources()
        outcome = _run_payload(data, conn)
        _end_descendants()  # what the attempt started ends with it, before it is reported
        retire = _leaked(baseline, leaks)
        if outcome.error and outcome.error.startswith("MemoryError"):
            retire = "the attempt ran out of memory"
        try:
            reply = cloudpickle.dumps((outcome, retire))
        except Exception as exc:
            outcome.ok, outcome.result = False, None
            outcome.error = (
                f"PicklingError: the result of task {outcome.task!r} cannot be "
                f"sent back from its worker process: {type(exc).__name__}: {exc}"
            )
            reply = cloudpickle.dumps((outcome, retire))
        conn.send_bytes(reply)
        if retire:
            return


def _run_payload(data: bytes, conn: Connection) -> Outcome:
    try:
        job = cloudpickle.loads(data)
    except Exception as exc:
        import traceback

        return Outcome(
            "?",
            0,
            False,
            error=f"UnpicklingError: the task cannot be loaded in "
            f"its worker process: {type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )

    def live(logs: Logs) -> None:  # what a running attempt wrote so far
        conn.send_bytes(_LOGS + pickle.dumps((logs.stdout, logs.stderr)))

    if not uses_hooks(job):
        return run_job(job, live=live)

    def progress(done: int, total: int) -> None:
        conn.send_bytes(b"%s%d/%d" % (_PROGRESS, done, total))

    def logs(stdout: str, stderr: str) -> None:
        limit = job.log_limit
        conn.send_bytes(_LOGS + pickle.dumps((stdout[:limit], stderr[:limit])))

    return run_job(job, Hooks(None, progress, logs))  # a stop kills the process instead


def _orphan_watch(parent_pid: int) -> None:
    """A busy worker whose parent died ends itself and its task's subprocesses."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            _end_descendants()
            with contextlib.suppress(OSError):
                os.killpg(0, signal.SIGKILL)
            os._exit(1)


def _resources() -> tuple[int, int]:
    """Open file descriptors and resident bytes of this process (two reads of /proc)."""
    try:
        fds = len(os.listdir("/proc/self/fd"))
        with open("/proc/self/statm", "rb") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0, 0
    return fds, rss


def _leaked(baseline: tuple[int, int], leaks: tuple[int, int]) -> str | None:
    """Why this worker should not serve another attempt (descriptors or memory an attempt
    left behind), or None."""
    if baseline == (0, 0):
        return None  # no /proc: nothing to compare
    fds, rss = _resources()
    if fds - baseline[0] > leaks[0]:
        return f"it left {fds - baseline[0]} more file descriptors open than a fresh worker"
    if rss - baseline[1] > leaks[1]:
        return f"it left the worker {(rss - baseline[1]) >> 20} MiB larger than a fresh one"
    return None


def _become_subreaper() -> None:
    """Linux: the worker adopts its orphaned descendants (``PR_SET_CHILD_SUBREAPER``), so
    a subprocess that detached itself (a double fork, a new session) stays one of its
    descendants, which ``_end_descendants`` and ``kill`` find."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _has_children() -> bool:
    """Whether this process has a child (a zombie counts): a read of each thread's
    ``/proc/self/task/<tid>/children``, about 10 µs; psutil where that file is missing."""
    try:
        for tid in os.listdir("/proc/self/task"):
            fd = os.open(f"/proc/self/task/{tid}/children", os.O_RDONLY)
            try:
                if os.read(fd, 64).strip():
                    return True
            finally:
                os.close(fd)
        return False
    except OSError:
        return bool(psutil.Process().children())


def _end_descendants() -> None:
    """SIGKILL every descendant of this worker (a task's subprocesses, in its group or in
    a session of their own, detached or not) and reap them."""
    if not _has_children():
        return  # the common case: the attempt started no process
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # none left
        if pid == 0:
            time.sleep(0.001)  # killed, not yet exited
