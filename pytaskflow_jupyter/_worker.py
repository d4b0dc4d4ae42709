"""What runs in a worker process of the process executor, and the protocol it speaks
with its parent (``_process.py``, which starts it and feeds it).

Protocol
--------
Both ways a message is a frame: its length in 8 bytes (big-endian), then its bytes.

* parent -> worker: a *batch*, ``pickle((contexts, entries, linger))``. ``contexts`` are
  the new ``(id, cloudpickled Context)`` pairs: what every attempt of an execution
  shares (its id, its parameters, where results spill...), sent once per worker and
  kept for the last ``KEEP`` ids. ``entries`` are ``(seq, pickled Entry)``: the rest of one ``Job``,
  pickled on its own (plain ``pickle`` when it holds only plain values, cloudpickle
  when it carries a notebook function or objects), so one that cannot be loaded fails
  only its attempt. ``seq`` numbers a slot's attempts in the order they are sent.
  ``linger``: seconds the worker, done with the batch, polls for the next one without
  sleeping (a serial run's next step comes soon, ``spin``), or 0.
* worker -> parent: a kind and a seq (``!cQ``), then: ``O`` the pickled
  ``(Outcome, retire)``; ``S`` nothing (a timed attempt begins: its clock starts);
  ``K`` nothing (a stopped attempt was skipped); ``P`` ``b"done/total"``; ``L`` the
  pickled ``(stdout, stderr)`` so far.

The worker runs a batch's attempts one after the other and sends each outcome before
it claims the next attempt, so a kill meant for one attempt never costs another its
reported outcome. Whether an attempt has begun is kept in the slot's *board*, a file
of words both processes map: ``CURRENT`` is the seq of the attempt running (negative
once its outcome is sent), word ``1 + seq % RING`` holds ``seq`` when the parent stopped
that attempt before it began. The worker claims an attempt, and the parent decides
between killing the worker and marking an attempt skipped, under an ``flock`` of that
file: the kernel drops it if its holder dies, so a crash can never leave it held.
"""

from __future__ import annotations

import contextlib
import faulthandler
import fcntl
import mmap
import os
import pickle
import select
import signal
import struct
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle
import psutil

from .kinds import Hooks
from .results import Spill, Spilled
from .tasks import Job, Logs, Outcome, run_job, uses_hooks

__all__ = ["Board", "Encoder", "read_frame", "send_frame", "spin", "worker_main"]

FRAME = struct.Struct("!Q")
HEAD = struct.Struct("!cQ")  # a message from the worker: its kind, the attempt's seq
OUTCOME, STARTED, SKIPPED, PROGRESS, LOGS = b"O", b"S", b"K", b"P", b"L"
KEEP = 64  # contexts a worker keeps (the newest ids)
RING = 64  # stop marks on the board; more than a slot ever has sent and not finished
CURRENT = 0

# (execution_id, workflow, capture, log_limit, root_dir, exec_params, runs_dir, spill)
Context = tuple[str, str, bool, int, "str | None", dict[str, Any], "str | None", "Spill | None"]
# (context id, task, attempt, type, params, timeout, map_index, upstream, item, fn)
Entry = tuple[int, str, int, str, dict[str, Any], "float | None", "int | None", Any, Any, Any]


def send_frame(fd: int, data: bytes) -> None:
    """Write one frame, whole (a large one in several writes)."""
    if len(data) < 1 << 16:
        data = FRAME.pack(len(data)) + data
    else:
        _write_all(fd, FRAME.pack(len(data)))
    _write_all(fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 24))
        if not chunk:
            raise EOFError("the pipe ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes:
    """Read one frame (blocking); EOFError when the pipe ends."""
    (size,) = FRAME.unpack(_read_exact(fd, FRAME.size))
    return _read_exact(fd, size)


def spin(poller: select.poll, seconds: float) -> list[tuple[int, int]]:
    """What ``poller`` finds ready within ``seconds``, polled without sleeping (the
    parent's module docstring, "Spinning"); [] when nothing was."""
    end = time.perf_counter() + seconds
    while True:
        ready = poller.poll(0)
        if ready or time.perf_counter() >= end:
            return ready


class Board:
    """A slot's board of words (see the module docstring), mapped by both processes."""

    SIZE = 8 * (1 + RING)

    def __init__(self, path: str, *, reset: bool = False) -> None:
        flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if reset else 0)
        self.fd = os.open(path, flags, 0o600)
        if reset:
            os.ftruncate(self.fd, self.SIZE)
        self._map = mmap.mmap(self.fd, self.SIZE)
        self.words = memoryview(self._map).cast("q")

    def reset(self) -> None:
        """All words zero: a new worker, which has begun nothing."""
        self._map[:] = bytes(self.SIZE)

    def claim(self, seq: int) -> bool:
        """The worker begins attempt ``seq``, unless the parent stopped it first."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            if self.words[1 + seq % RING] == seq:
                return False
            self.words[CURRENT] = seq
            return True
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.words.release()
        self._map.close()
        os.close(self.fd)


# an attempt's own values of these types go by plain pickle (else cloudpickle)
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, Spilled})


class Encoder:
    """The parent's side of one worker's entries: it remembers the contexts that worker
    has (their newest ``KEEP`` ids), so that each goes to it once."""

    def __init__(self) -> None:
        # context key -> (id, the context: it keeps alive the objects whose ids the key has)
        self._known: dict[tuple[Any, ...], tuple[int, Context]] = {}
        self._last = 0

    def encode(self, job: Job, contexts: list[tuple[int, bytes]]) -> bytes:
        """``job`` as an entry; a context the worker lacks is added to ``contexts``."""
        key = (
            job.execution_id, job.workflow, job.capture, job.log_limit, job.root_dir,
            id(job.exec_params), job.runs_dir, id(job.spill),
        )  # fmt: skip
        known = self._known.get(key)
        if known is None or known[0] <= self._last - KEEP:  # the worker forgot it
            context: Context = (
                job.execution_id, job.workflow, job.capture, job.log_limit, job.root_dir,
                job.exec_params, job.runs_dir, job.spill,
            )  # fmt: skip
            blob = bytes(cloudpickle.dumps(context))
            self._last += 1
            contexts.append((self._last, blob))
            self._known[key] = known = (self._last, context)
            if len(self._known) > 2 * KEEP:
                self._known = {k: v for k, v in self._known.items() if v[0] > self._last - KEEP}
        entry = (
            known[0], job.task, job.attempt, job.type, job.params, job.timeout,
            job.map_index, job.upstream, job.item, job.fn,
        )  # fmt: skip
        if (
            job.fn is None
            and job.item.__class__ in _PLAIN
            and all(v.__class__ in _PLAIN for v in job.upstream.values())
        ):
            return pickle.dumps(entry, 5)  # params are JSON (validation checks it)
        return bytes(cloudpickle.dumps(entry))


class _Sender:
    """The worker's end of the pipe; the log pump's thread writes to it too."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._lock = threading.Lock()

    def send(self, kind: bytes, seq: int, body: bytes = b"") -> None:
        with self._lock:
            send_frame(self.fd, HEAD.pack(kind, seq) + body)


def worker_main(
    conn: Connection,
    parent_pid: int,
    crash_path: str,
    memory_limit: int | None,
    leaks: tuple[int, int],
    board_path: str,
) -> None:
    """Serve batches until the pipe closes; runs in the worker process."""
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
    board, out = Board(board_path), _Sender(conn.fileno())
    contexts: dict[int, Context | str] = {}
    baseline: _Resources | None = None
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    linger = 0.0  # how long the last batch asked to wait for the next without sleeping
    while True:
        if linger:
            spin(poller, linger)
        try:
            new, entries, linger = pickle.loads(read_frame(conn.fileno()))
        except (EOFError, OSError):
            return
        for ctx_id, blob in new:
            contexts[ctx_id] = _load_context(blob)
            contexts.pop(ctx_id - KEEP, None)
        for seq, data in entries:
            if not board.claim(seq):
                out.send(SKIPPED, seq)
                continue
            if baseline is None:  # before the first attempt: what a clean worker holds
                baseline = _Resources(leaks)
            outcome = _run_entry(seq, data, contexts, out)
            _end_descendants()  # what the attempt started ends with it, before it is reported
            retire = baseline.leaked()
            if outcome.error and outcome.error.startswith("MemoryError"):
                retire = "the attempt ran out of memory"
            out.send(OUTCOME, seq, _dump_outcome(outcome, retire))
            board.words[CURRENT] = -seq  # its outcome is on its way
            if retire:
                return


def _load_context(blob: bytes) -> Context | str:
    try:
        context: Context = cloudpickle.loads(blob)
        return context
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def _dump_outcome(outcome: Outcome, retire: str | None) -> bytes:
    """The outcome pickled: plain ``pickle`` where it can (several times faster), else
    cloudpickle (results of notebook functions: classes and functions by value)."""
    try:
        return pickle.dumps((outcome, retire), 5)
    except Exception:
        pass
    try:
        return bytes(cloudpickle.dumps((outcome, retire)))
    except Exception as exc:
        outcome.ok, outcome.result = False, None
        outcome.error = (
            f"PicklingError: the result of task {outcome.task!r} cannot be "
            f"sent back from its worker process: {type(exc).__name__}: {exc}"
        )
        return pickle.dumps((outcome, retire), 5)


def _run_entry(seq: int, data: bytes, contexts: dict[int, Context | str], out: _Sender) -> Outcome:
    try:
        ctx_id, task, attempt, kind, params, timeout, map_index, upstream, item, fn = pickle.loads(
            data
        )
        context = contexts[ctx_id]
        if isinstance(context, str):
            raise pickle.UnpicklingError(context)
        ex_id, workflow, capture, log_limit, root_dir, exec_params, runs_dir, spill = context
        job = Job(
            ex_id, workflow, task, attempt, kind, params, upstream, fn, capture, log_limit,
            root_dir, exec_params, timeout, runs_dir, spill, map_index, item,
        )  # fmt: skip
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
    if timeout is not None:
        out.send(STARTED, seq)

    def live(logs: Logs) -> None:  # what a running attempt wrote so far
        out.send(LOGS, seq, pickle.dumps((logs.stdout, logs.stderr)))

    if not uses_hooks(job):
        return run_job(job, live=live)

    def progress(done: int, total: int) -> None:
        out.send(PROGRESS, seq, b"%d/%d" % (done, total))

    def logs(stdout: str, stderr: str) -> None:
        limit = job.log_limit
        out.send(LOGS, seq, pickle.dumps((stdout[:limit], stderr[:limit])))

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


class _Resources:
    """What this process holds: open descriptors and resident bytes (Linux /proc), read
    cheaply enough to be checked after every attempt (a few microseconds): statm is
    opened once and re-read with ``pread``, and descriptors are counted only when the
    lowest free one moved up by the limit (one ``dup``): new descriptors take the lowest
    free numbers, so that many more open ones push it at least that far."""

    def __init__(self, leaks: tuple[int, int]) -> None:
        self.leaks = leaks
        self.fds, self.rss, self.free = 0, 0, 0
        try:
            self.statm = os.open("/proc/self/statm", os.O_RDONLY)
            self.fds, self.rss, self.free = self._count(), self._rss(), self._free()
        except (OSError, ValueError, IndexError):
            self.statm = -1  # no /proc: nothing to compare

    def _count(self) -> int:
        return len(os.listdir("/proc/self/fd"))

    def _rss(self) -> int:
        return int(os.pread(self.statm, 128, 0).split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _free(self) -> int:
        fd = os.dup(self.statm)
        os.close(fd)
        return fd

    def leaked(self) -> str | None:
        """Why this worker should not serve another attempt (descriptors or memory an
        attempt left behind since the first one began), or None."""
        if self.statm < 0:
            return None
        try:
            fds = self._count() if self._free() - self.free >= self.leaks[0] else 0
            rss = self._rss()
        except (OSError, ValueError, IndexError):
            return None
        if fds - self.fds > self.leaks[0]:
            return f"it left {fds - self.fds} more file descriptors open than a fresh worker"
        if rss - self.rss > self.leaks[1]:
            return f"it left the worker {(rss - self.rss) >> 20} MiB larger than a fresh one"
        return None


def _become_subreaper() -> None:
    """Linux: the worker adopts its orphaned descendants (``PR_SET_CHILD_SUBREAPER``), so
    a subprocess that detached itself (a double fork, a new session) stays one of its
    descendants, which ``_end_descendants`` and the parent's kill find."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _has_children() -> bool:
    """Whether this process has a child (a zombie counts, and is reaped): one
    ``waitpid(-1, WNOHANG)``, which fails with ECHILD only when there is none."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


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
