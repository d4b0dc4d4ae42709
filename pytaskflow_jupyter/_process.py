"""The process executor: every attempt runs in a worker process that can be killed.

Design
------
The executor has ``workers`` *slots*. A slot owns one long-lived worker process and one
thread in the parent. The thread takes attempts from the shared queue and sends them
down a pipe in *batches*: as many as are waiting, up to ``prefetch`` not yet finished
per worker, so the worker goes from one attempt to the next without waiting for a
round trip. Those waiting behind an attempt that runs long (no message from the worker
for ``RECALL_AFTER``) go back to the queue, for another worker: a long attempt holds no
other for long. What
every attempt of an execution shares (its id, parameters, where results spill) is sent
once per worker; an attempt's own part is pickled with plain ``pickle`` unless it
carries a notebook function or objects (then cloudpickle, so notebook functions travel).
The protocol and the worker's side are in ``_worker.py``. The thread then waits for
whichever comes first: the worker's messages (outcomes, in the order the attempts ran),
or the death of the process. So whatever a task does, only its attempt suffers:

* it raises: the worker replies with a failed ``Outcome`` (``run_job`` never raises);
* it kills its process (segfault, ``os._exit``, the OOM killer, the memory cap): the
  slot sees the process sentinel, reports ``WorkerDied: worker process 123 died (exit
  code -11, SIGSEGV)`` with the faulthandler traceback and the tail of the worker's
  stderr, puts the attempts of its batch that had not begun back on the queue, and
  starts a fresh worker;
* it hangs: the engine's timeout calls ``stop``, which SIGKILLs the worker's process
  group (the task's own subprocesses too) if that attempt is the one running; the
  slot reports the attempt stopped, re-queues the rest and starts a fresh worker.

``stop`` of an attempt that a worker holds but has not begun marks it on the slot's
*board* (``_worker.Board``) and reports it stopped at once: the worker skips it. Which
attempt is running is on that board too, written by the worker as it begins each one,
and both sides decide under an ``flock`` of it: a stop kills exactly the attempt it
targets, and an attempt is never begun after its stop.

Why not ``loky.get_reusable_executor``: it cannot kill one task without breaking every
other task of the pool. Why long-lived workers rather than a process per attempt: a
Python process that imports this package takes ~0.4 s to start. Workers start through
loky's fork+exec context: the server (threads, SQLite connections) is never
``fork()``-ed, and ``__main__`` is not re-imported.

A worker's stderr (fd 2, from its very first line of Python: an install that cannot be
imported dies there) is a pipe that a thread of the parent copies to the server's
stderr, keeping its last lines for the report of the worker's death. Hence the worker's
target is ``exec`` of a few lines of the standard library (``_BOOT``) that move fd 2
before importing this package. A worker that ends by itself is waited for before it is
reaped, so that its own exit code is reported, never the SIGKILL of the cleanup.

A worker puts itself in its own process group (so a Ctrl-C meant for the server does not
reach tasks, and a stop reaches the task's children), and exits when its parent dies:
its pipe ends (when idle) or a watchdog thread sees its parent pid change (when busy).

A slot's thread lowers its own CPU priority (``nice``, default 10) before it starts a
worker, and its workers inherit it: while a large run keeps the CPUs busy, the server's
event loop and request threads get a CPU first (docs/executors.md, "Priority").

``report`` is called exactly once per attempt, from the slot's thread (or from ``stop``
for an attempt not begun), except after ``shutdown``: attempts it abandons are not
reported, so that executions a closing server leaves ``running`` are resumed by the next
one instead of being recorded as failed. A slot's thread reporting an outcome its worker
sent may run the engine's turn in that call (``in_turn``, as the thread executor's pool
threads do), and keeps the first attempt that turn submits for its own worker: a chain's
step then wakes no other thread of the parent. A stop applied in such a turn never waits
for the slot's thread (it kills, or marks the board), so it may target this very slot.

Spinning. In a serial run (a chain) the slot and its worker take turns: each waits for
the other's next message, and on a VM a sleeping thread costs its waker ~25 µs to wake
and then runs with cold caches (a no-op attempt took its worker ~100 µs, against ~15
when warm). So while a slot alone has work (``ProcessExecutor.alone``: one attempt in
its worker, none in any other slot, none queued), its thread polls the pipe without
sleeping for up to ``spin`` seconds before it blocks, and the batch it sends tells the
worker to do the same while it waits for the next one. A wide run never spins: its CPUs
are busy with other attempts.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import queue
import select
import shutil
import signal
import sys
import tempfile
import threading
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import psutil

from ._executor import DONE, QUEUED, Attempt, QueueExecutor, Report
from ._worker import (
    CURRENT,
    FRAME,
    HEAD,
    LOGS,
    OUTCOME,
    PROGRESS,
    RING,
    SKIPPED,
    STARTED,
    Board,
    Encoder,
    send_frame,
    spin,
)
from .tasks import Job, Logs, Outcome, Progress, Started
from .tasks import failed_outcome as _failed

__all__ = ["ProcessExecutor"]

log = logging.getLogger(__name__)

_NO_WORKER = "WorkerDied: no worker process could be started"
_TAIL = 4096  # bytes of a dead worker's stderr that its report keeps
# a batch past this many bytes waits for an idle worker: the pipe then cannot fill up
# both ways at once (the worker writing a large outcome while the parent writes to it)
_BATCH_BYTES = 1 << 16

# The worker's target: stdlib only, so that fd 2 is the pipe before this package (which
# may fail to import in a broken install) is imported.
_BOOT = """
import os
os.dup2(stderr.fileno(), 2)
stderr.close()
from pytaskflow_jupyter._worker import worker_main
worker_main(*args)
"""


def _readable(fd: int, timeout_ms: int) -> bool:
    """Whether ``fd`` is readable within ``timeout_ms``: ``poll``, not ``select``, which
    refuses descriptors past 1,023 (a server with many open files has such pipes)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(timeout_ms))


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
    more resident memory than it had before its first attempt. ``prefetch``: attempts a
    worker may hold, running or waiting (default ``PREFETCH``; 1 sends one at a time);
    those waiting behind an attempt that runs ``RECALL_AFTER`` seconds are recalled.
    ``nice``: how much lower than the server's the CPU priority of the slots' threads
    and of the workers is (default ``NICE``, ``0`` for the same; Linux, where a thread
    has its own): a large run then leaves the server's requests their CPU.
    """

    LEAKED_FDS = 32
    LEAKED_RSS = 1 << 30
    PREFETCH = 16
    # no message from a worker for this long (seconds): the attempts waiting behind the
    # one it runs go back to the queue, for another worker (``_Slot._recall``)
    RECALL_AFTER = 0.05
    # the ``nice`` command's default increment (docs/executors.md, "Priority")
    NICE = 10
    # seconds a serial run's slot and worker wait for each other's next message without
    # sleeping (module docstring, "Spinning"; docs/executors.md)
    SPIN = 0.0005

    name = "process"
    can_stop = True

    def __init__(
        self,
        workers: int | None = None,
        *,
        memory_limit: int | None = None,
        max_tasks_per_worker: int | None = None,
        prefetch: int | None = None,
        nice: int | None = None,
        spin: float | None = None,
    ) -> None:
        nice = self.NICE if nice is None else nice
        if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
            raise ValueError(f"nice must be an integer from 0 to 19, not {nice!r}")
        spin = self.SPIN if spin is None else spin
        if isinstance(spin, bool) or not isinstance(spin, (int, float)) or not 0 <= spin <= 0.01:
            raise ValueError(f"spin must be a number of seconds from 0 to 0.01, not {spin!r}")
        super().__init__()
        self.nice = nice
        self.spin = float(spin)
        self.workers = max(1, workers or os.cpu_count() or 1)
        if memory_limit is None:
            memory_limit = max(2 << 30, psutil.virtual_memory().total)
        self.memory_limit = memory_limit or None
        self.max_tasks_per_worker = max_tasks_per_worker
        # below RING and KEEP: the board and the contexts cover every attempt held
        self.prefetch = min(max(1, prefetch or self.PREFETCH), 32)
        self._abandon = False  # shutdown(wait=False): running attempts are not reported
        # a slot's thread reporting an outcome runs the engine's turn (``in_turn``); the
        # first attempt that turn submits stays with that slot (``submit``)
        self._local = threading.local()
        self.in_turn = self._reporting
        self._dir = tempfile.mkdtemp(prefix="taskflow-workers-")
        self._slots = [_Slot(self, i) for i in range(self.workers)]
        for slot in self._slots:
            slot.thread.start()

    def _reporting(self) -> bool:
        """Whether this thread is a slot's, reporting the outcome its worker sent."""
        return getattr(self._local, "slot", None) is not None

    def alone(self, slot: _Slot) -> bool:
        """Whether ``slot`` is the only one with work and none waits in the queue: a
        serial run, whose next step follows this slot's (module docstring, "Spinning")."""
        return self._queue.empty() and all(not s.running for s in self._slots if s is not slot)

    def submit(self, job: Job, report: Report) -> Attempt:
        local = self._local
        slot: _Slot | None = getattr(local, "slot", None)
        if slot is None or local.kept or self._closed or slot.ending:
            return super().submit(job, report)
        attempt = Attempt(job, report)
        # a new attempt is queued: the claim cannot fail
        self._claim(attempt, _Held(slot, slot.seq + 1), starts=False)
        slot.seq += 1
        slot.held.append(attempt)  # sent when the turn is over, by this thread
        local.kept = True
        return attempt

    def _stop_running(self, handle: Attempt) -> bool:
        held = handle.slot
        return held.slot.stop(held.seq) if isinstance(held, _Held) else True

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


class _Held:
    """The handle's ``slot`` of an attempt a slot took: the slot, and its seq there."""

    __slots__ = ("seq", "slot")

    def __init__(self, slot: _Slot, seq: int) -> None:
        self.slot, self.seq = slot, seq


class _Slot:
    """One worker process and the parent thread that feeds it."""

    def __init__(self, executor: ProcessExecutor, index: int) -> None:
        self.ex = executor
        self.index = index
        self.proc: BaseProcess | None = None  # a loky process: fork+exec
        self.conn: Connection | None = None
        self.poller: Any = None  # select.poll of the pipe and the process sentinel
        self.tasks_run = 0  # outcomes of the current worker
        self.sent = 0  # attempts sent to the current worker
        self.crash_path = os.path.join(executor._dir, f"worker-{index}.crash")
        self.board_path = os.path.join(executor._dir, f"worker-{index}.board")
        self.board: Board | None = None
        self.stderr: _Tee | None = None
        self.seq = 0  # of the last attempt taken; grows across workers
        self.running: dict[int, Attempt] = {}  # sent, not finished: by seq, in order
        self.held: deque[Attempt] = deque()  # taken, waiting for an idle worker (large)
        self.encoder = Encoder()
        self.buf = bytearray()  # what the worker sent that is not a whole message yet
        self.ending = False  # the queue's end marker was taken
        self.stalled = False  # what waited behind its running attempt was recalled
        self.thread = threading.Thread(
            target=self._serve, daemon=True, name=f"taskflow-process-slot-{index}"
        )

    # -- the slot's thread ------------------------------------------------------------
    def _serve(self) -> None:
        _lower_priority(self.ex.nice)  # before the first worker starts: they inherit it
        while True:
            if self.proc is None and not self.ex._closed:
                self._spawn_quietly()
            if self.ending and not self.running and not self.held:
                return
            batch = self._take()
            if batch:
                self._send(batch)
            if self.running:
                self._receive()

    def _take(self) -> list[Attempt]:
        """The attempts to send now: those held back, then the queue's (waiting for one
        only when the worker has nothing), up to the room the worker has."""
        room = self.ex.prefetch - len(self.running)
        if self.stalled and self.running:
            return []
        self.stalled = False
        if self.ex.max_tasks_per_worker:
            room = min(room, self.ex.max_tasks_per_worker - self.sent)
        taken: list[Attempt] = []
        while self.held and len(taken) < room:
            taken.append(self.held.popleft())
        q = self.ex._queue
        while len(taken) < room and not self.ending:
            if taken or self.running:
                try:
                    attempt = q.get_nowait()
                except queue.Empty:
                    break
            else:
                attempt = q.get()
            if attempt is None:
                self.ending = True
            elif self.ex._claim(attempt, _Held(self, self.seq + 1), starts=False):
                self.seq += 1
                taken.append(attempt)
        return taken

    def _send(self, batch: list[Attempt]) -> None:
        """Send ``batch`` in one message; a batch past ``_BATCH_BYTES`` is cut, its rest
        held for when the worker is idle."""
        if self.proc is None:
            self._spawn_quietly()
        if self.conn is None:
            for attempt in batch:
                self._finish(attempt, _failed(attempt.job, _NO_WORKER))
            return
        contexts: list[tuple[int, bytes]] = []
        entries: list[tuple[int, bytes]] = []
        size = 0
        for i, attempt in enumerate(batch):
            job, known = attempt.job, len(contexts)
            try:
                data = self.encoder.encode(job, contexts)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                what = f"task {job.task!r} cannot be sent to a worker process: {error}"
                self._finish(attempt, _failed(job, f"PicklingError: {what}"))
                continue
            size += len(data) + sum(len(blob) for _, blob in contexts[known:])
            if size > _BATCH_BYTES and (entries or self.running):
                self.held.extendleft(reversed(batch[i:]))
                break
            seq = attempt.slot.seq  # type: ignore[attr-defined]
            entries.append((seq, data))
            self.running[seq] = attempt
        self.sent += len(entries)
        with contextlib.suppress(OSError):  # the worker died: ``_receive`` sees it
            message = (contexts, entries, self.ex.spin if self.ex.alone(self) else 0.0)
            send_frame(self.conn.fileno(), pickle.dumps(message, 5))

    def _receive(self) -> None:
        """Wait for the worker's messages or its death; handle what came."""
        conn, proc = self.conn, self.proc
        if conn is None or proc is None:
            self._died(eof=True)
            return
        fd = conn.fileno()
        waiting = len(self.running) > 1 and not self.stalled
        timeout = self.ex.RECALL_AFTER * 1000 if waiting else None
        found = (
            spin(self.poller, self.ex.spin)
            if self.ex.spin and len(self.running) == 1 and self.ex.alone(self)
            else None
        )
        ready = {ready_fd for ready_fd, _ in found or self.poller.poll(timeout)}
        if not ready:
            self._recall()
        elif fd in ready:
            # a reply is in the pipe before the sentinel fires; the sentinel alone means
            # death (even if a subprocess of the task still holds the pipe open)
            if self._read(fd):
                return
            self._died(eof=True)
        elif proc.sentinel in ready:
            while self.conn is conn and _readable(fd, 0) and self._read(fd):
                pass  # what it wrote before it died
            if self.conn is conn:  # (not replaced after the outcome that retired it)
                self._died()

    def _recall(self) -> None:
        """The running attempt is long: those waiting behind it go back to the queue,
        for another worker (marked on the board, as by ``stop``: this worker skips them).
        Nothing is recalled before the worker began an attempt (it may be starting, or
        unable to: the attempt it was sent first is then the one that fails)."""
        board, proc = self.board, self.proc
        if board is None or proc is None:
            return
        back: list[Attempt] = []
        with self.ex._lock:
            locked = self._lock_board(board, proc)
            try:
                current = board.words[CURRENT]
                if current <= 0:
                    return
                for seq in [seq for seq in self.running if seq > current]:
                    back.append(self.running.pop(seq))
                    board.words[1 + seq % RING] = seq
            finally:
                if locked:
                    fcntl.flock(board.fd, fcntl.LOCK_UN)
            back.extend(self.held)
            self.held.clear()
            back = [attempt for attempt in back if attempt.state != DONE]
            for attempt in back:
                attempt.state, attempt.slot = QUEUED, None
            self.stalled = True  # until its outcome: it takes no more
        for attempt in back:
            self.ex._queue.put(attempt)

    def _read(self, fd: int) -> bool:
        """Read what the worker sent and handle each whole message; False at the end."""
        want = 1 << 16
        if len(self.buf) >= FRAME.size:
            want = max(
                want, min(FRAME.unpack_from(self.buf)[0] + FRAME.size - len(self.buf), 1 << 24)
            )
        try:
            chunk = os.read(fd, want)
        except OSError:
            return False
        if not chunk:
            return False
        buf = self.buf
        buf += chunk
        messages: list[bytes] = []
        pos = 0
        while len(buf) - pos >= FRAME.size:
            (size,) = FRAME.unpack_from(buf, pos)
            end = pos + FRAME.size + size
            if len(buf) < end:
                break
            messages.append(bytes(buf[pos + FRAME.size : end]))
            pos = end
        del buf[:pos]
        # the last whole message of this read may run the engine's turn: the outcomes
        # before it wait for that turn, which takes them all at once
        last = len(messages) - 1
        for i, msg in enumerate(messages):
            self._message(msg, i == last)
            if self.buf is not buf:  # the worker was replaced: the rest was its
                return True
        return True

    def _message(self, msg: bytes, last: bool) -> None:
        kind, seq = HEAD.unpack_from(msg)
        attempt = self.running.get(seq)
        if attempt is None:
            return
        job, body = attempt.job, msg[HEAD.size :]
        if kind == OUTCOME:
            self._outcome(seq, attempt, body, turn=last)
        elif kind == SKIPPED:  # stopped before it began: ``stop`` reported it
            del self.running[seq]
        elif attempt.state == DONE:
            return
        elif kind == STARTED:
            attempt.report(Started(job.task, job.attempt, job.map_index))
        elif kind == PROGRESS:
            done, total = (int(n) for n in body.split(b"/"))
            attempt.report(Progress(job.task, job.attempt, done, total, job.map_index))
        elif kind == LOGS:
            out, err = pickle.loads(body)
            attempt.report(Logs(job.task, job.attempt, out, err, job.map_index))

    def _outcome(self, seq: int, attempt: Attempt, body: bytes, *, turn: bool) -> None:
        del self.running[seq]
        self.stalled = False
        job = attempt.job
        outcome: Outcome
        retire: str | None
        try:
            outcome, retire = pickle.loads(body)
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
            self.discard()  # it ran nothing after this one: the rest go back to the queue
            self._requeue()
        self._finish(attempt, outcome, turn=turn)

    def _finish(self, attempt: Attempt, outcome: Outcome, *, turn: bool = False) -> None:
        """Report an attempt's outcome, unless ``stop`` already did. ``turn``: the
        outcome came from the worker, between messages: this thread may run the engine's
        turn in ``report`` (``ProcessExecutor.in_turn``)."""
        with self.ex._lock:
            if attempt.state == DONE:
                return
            attempt.state, attempt.slot = DONE, None
        if self.ex._abandon:
            return
        if not turn:
            self.ex._deliver(attempt, outcome)
            return
        local = self.ex._local
        local.slot, local.kept = self, False
        try:
            self.ex._deliver(attempt, outcome)
        finally:
            local.slot = None

    def _requeue(self) -> None:
        """The attempts the worker had not begun go back to the queue (or, once the
        executor is shut down, are abandoned)."""
        attempts = list(self.running.values()) + list(self.held)
        self.running.clear()
        self.held.clear()
        for attempt in attempts:
            with self.ex._lock:
                if attempt.state == DONE:
                    continue
                if self.ex._closed:
                    attempt.state = DONE
                    continue
                attempt.state, attempt.slot = QUEUED, None
            self.ex._queue.put(attempt)

    def _died(self, *, eof: bool = False) -> None:
        """The worker ended: a crash, or our own kill (``stop``). The attempt it was
        running fails; those it had not begun go back to the queue."""
        proc, tee, board = self.proc, self.stderr, self.board
        pid = proc.pid if proc is not None else None
        if proc is not None:
            # its pipe may close a moment before it exits: the exit code is its own only
            # if it is reaped before ``discard`` kills it
            proc.join(5)
        killed_here = proc is not None and proc.exitcode is None
        current = board.words[CURRENT] if board is not None else 0
        victim = self.running.pop(current, None) if current > 0 else None
        if victim is None and current == 0 and self.running:  # it died before any began
            victim = self.running.pop(next(iter(self.running)))
        self.discard()
        self._requeue()
        if victim is None:
            return
        code = proc.exitcode if proc is not None else None
        if victim.stopped:
            error = f"Stopped: the attempt was stopped and its worker process {pid} killed"
            self._finish(victim, _failed(victim.job, error))
            return
        crash = _read_crash(self.crash_path)
        tail = tee.tail() if tee is not None else ""
        error = (
            f"WorkerDied: worker process {pid} died (exit code {code}"
            f"{_signal_name(code)}) while running task {victim.job.task!r}"
        )
        if code == -signal.SIGKILL and not killed_here:
            error += "; killed from outside (out of memory?)"
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        if last:
            error += f"; its stderr ends with: {last.strip()}"
        stderr = "\n".join(part for part in (crash, tail) if part)
        self._finish(victim, _failed(victim.job, error, crash or tail or None, stderr))

    def _spawn_quietly(self) -> None:
        try:
            self._spawn()
        except Exception:
            log.exception("process executor: cannot start worker %d", self.index)
            self.discard()

    def _spawn(self) -> None:
        from loky.backend.context import get_context

        if self.board is None:
            self.board = Board(self.board_path, reset=True)
        self.board.reset()
        ctx = get_context("loky")
        parent, child = ctx.Pipe()
        err_read, err_write = ctx.Pipe(duplex=False)
        args = (
            child,
            os.getpid(),
            self.crash_path,
            self.ex.memory_limit,
            (self.ex.LEAKED_FDS, self.ex.LEAKED_RSS),
            self.board_path,
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
        poller = select.poll()
        poller.register(parent.fileno(), select.POLLIN)
        poller.register(proc.sentinel, select.POLLIN)
        with self.ex._lock:
            self.proc, self.conn, self.stderr, self.poller = proc, parent, tee, poller

    # -- any thread ---------------------------------------------------------------------
    def stop(self, seq: int) -> bool:
        """Stop attempt ``seq`` of this slot (under the executor's lock): kill the worker
        if that attempt is the one running (True), else mark it on the board so that it
        never begins (False: ``stop`` reports it)."""
        board, proc = self.board, self.proc
        if board is None or proc is None:
            return False  # no worker: it will not begin
        locked = self._lock_board(board, proc)
        try:
            current = board.words[CURRENT]
            if current == seq:
                self.kill()
                return True
            if abs(current) < seq:  # not begun
                board.words[1 + seq % RING] = seq
                return False
            return True  # it ended: its outcome is on its way
        finally:
            if locked:
                fcntl.flock(board.fd, fcntl.LOCK_UN)

    @staticmethod
    def _lock_board(board: Board, proc: BaseProcess) -> bool:
        """The board's lock, held by the worker a few microseconds at a time; False
        when the worker died (a subprocess of its task may hold the lock after it)."""
        while True:
            try:
                fcntl.flock(board.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if _readable(proc.sentinel, 1):
                    return False

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
            self.proc = self.conn = self.stderr = self.poller = None  # its _Tee ends with the pipe
            self.buf = bytearray()
            self.encoder = Encoder()  # a new worker knows no context
            self.tasks_run = self.sent = 0
        if proc is not None:
            proc.join(5)
        if conn is not None:
            conn.close()


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice``, as ``nice -n`` does; the
    processes it starts inherit it. Linux only: elsewhere the priority is the process's
    and would be the server's own."""
    if not nice or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))


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
