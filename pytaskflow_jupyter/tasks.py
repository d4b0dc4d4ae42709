"""What runs inside a worker: one attempt of one task, turned into an ``Outcome``.

This module is imported by every executor's workers (threads, loky processes, Dask
workers), so it depends only on the standard library, ``errors``, ``kinds`` (which runs
each task type) and ``results`` (upstream results passed by reference, large results
spilled to a file). What a running attempt prints is captured per thread and, where the
executor gives a ``live`` callback (thread and process), reported while it runs
(``_LogPump``); tracebacks start at the task's own code (``user_traceback``).
A task's exception never escapes: it becomes ``Outcome.ok = False`` with the
error text and traceback. That holds for every ``BaseException``, ``SystemExit`` and
``KeyboardInterrupt`` included: raised by task code they end the attempt, never the
worker thread (a thread pool that loses its threads runs nothing again).
"""

from __future__ import annotations

import io
import operator
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import TaskCodeError
from .kinds import KINDS, NO_HOOKS, Hooks, Produced
from .results import Spill, load_upstream, spill

__all__ = [
    "Job",
    "Logs",
    "Outcome",
    "Progress",
    "Started",
    "failed_outcome",
    "run_job",
    "uses_hooks",
]

Json = dict[str, Any]


@dataclass
class Job:
    """Everything a worker needs to run one attempt; picklable (``fn`` by cloudpickle)."""

    execution_id: str
    workflow: str
    task: str
    attempt: int
    type: str
    params: Json
    upstream: Json = field(default_factory=dict)
    fn: Callable[..., Any] | None = None
    capture: bool = True
    log_limit: int = 64 * 1024
    root_dir: str | None = None
    exec_params: Json = field(default_factory=dict)
    timeout: float | None = None
    runs_dir: str | None = None  # where attempts save files (notebook tasks), absolute
    spill: Spill | None = None  # where a large result goes (a task with consumers)
    map_index: int | None = None  # one instance of a mapped task (SPEC 11): its index
    item: Any = None  # ... and its element of the upstream's list


@dataclass
class Started:
    """An executor's notice that an attempt left its queue and began to run; sent only
    for jobs with a ``timeout``, whose clock starts here (not at submission)."""

    task: str
    attempt: int
    map_index: int | None = None


@dataclass
class Progress:
    """How far a running attempt got (a notebook's code cells done of total)."""

    task: str
    attempt: int
    done: int
    total: int
    map_index: int | None = None


@dataclass
class Logs:
    """What a running attempt wrote so far (replaced by its outcome's when it ends)."""

    task: str
    attempt: int
    stdout: str
    stderr: str
    map_index: int | None = None


@dataclass
class Outcome:
    """The result of one attempt, reported to the engine's queue."""

    task: str
    attempt: int
    ok: bool
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    stdout: str = ""
    stderr: str = ""
    started: float = 0.0
    finished: float = 0.0
    timed_out: bool = False
    output: str | None = None  # a file the attempt left to show (kinds.Produced)
    map_index: int | None = None  # the instance of a mapped task that ran

    def __reduce__(self) -> tuple[type[Outcome], tuple[Any, ...]]:
        """Pickled as its fields in order, not as a class and a dict of names: the
        process executor's workers send one per attempt, and this is half the bytes and
        half the parent's time to load it (8.1 -> 3.8 us on a slow VM)."""
        return type(self), _outcome_fields(self)


_outcome_fields = operator.attrgetter(*(f.name for f in fields(Outcome)))


def failed_outcome(job: Job, error: str, traceback: str | None = None, stderr: str = "") -> Outcome:
    """A failed attempt that the executor, not the task, reports (a crash, a stop)."""
    now = time.time()
    return Outcome(
        job.task,
        job.attempt,
        False,
        error=error,
        traceback=traceback,
        stderr=stderr,
        started=now,
        finished=now,
        map_index=job.map_index,
    )


LIVE_LOGS_INTERVAL = 0.5  # seconds between reports of what running attempts wrote


class _Buffers:
    """What one attempt wrote so far, and where to report it while it runs (``live``)."""

    __slots__ = ("err", "job", "live", "out", "sent", "watched")

    def __init__(self, job: Job, live: Callable[[Logs], None] | None) -> None:
        self.job, self.live = job, live
        self.out: io.StringIO | None = None  # made at the attempt's first write
        self.err: io.StringIO | None = None
        self.sent = (0, 0)
        self.watched = False


class _LogPump:
    """One thread per process that reports, every ``LIVE_LOGS_INTERVAL``, what each
    running attempt that printed wrote so far (a ``Logs`` message: the logs route shows
    it while the attempt runs, and keeps it if the attempt is then stopped). An attempt
    is watched from its first write; ``forget`` (under the same lock as a report) makes
    sure nothing is reported for it once its outcome is on its way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: set[_Buffers] = set()
        self._thread: threading.Thread | None = None

    def watch(self, bufs: _Buffers) -> None:
        with self._lock:
            bufs.watched = True
            self._watched.add(bufs)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="taskflow-live-logs", daemon=True
                )
                self._thread.start()

    def forget(self, bufs: _Buffers) -> None:
        with self._lock:
            self._watched.discard(bufs)

    def _run(self) -> None:
        while True:
            time.sleep(LIVE_LOGS_INTERVAL)
            with self._lock:
                for bufs in list(self._watched):
                    self._report(bufs)

    @staticmethod
    def _report(bufs: _Buffers) -> None:
        out = "" if bufs.out is None else bufs.out.getvalue()
        err = "" if bufs.err is None else bufs.err.getvalue()
        if (len(out), len(err)) == bufs.sent or bufs.live is None:
            return
        bufs.sent = (len(out), len(err))
        job = bufs.job
        try:
            bufs.live(Logs(job.task, job.attempt, out, err, job.map_index))
        except Exception:  # a closed pipe, a stopped engine: the outcome will say the rest
            bufs.live = None


_PUMP = _LogPump()


class _Capture(io.TextIOBase):
    """A stand-in for ``sys.stdout``/``sys.stderr`` that sends each thread's writes to
    that thread's buffer while it runs a task, and everything else to the real stream."""

    def __init__(self, real: Any, slot: str) -> None:
        self._real = real
        self._slot = slot

    def write(self, text: str) -> int:
        if not getattr(_local, "capturing", False):
            return int(self._real.write(text))
        bufs: _Buffers = _local.buffers
        buf = getattr(bufs, self._slot)
        if buf is None:  # the attempt's first write to this stream
            buf = io.StringIO()
            setattr(bufs, self._slot, buf)
            if bufs.live is not None and not bufs.watched:
                _PUMP.watch(bufs)
        limit = bufs.job.log_limit
        if buf.tell() < limit:
            buf.write(text[: max(0, limit - buf.tell())])
        return len(text)

    def flush(self) -> None:
        if not getattr(_local, "capturing", False):
            self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


_local = threading.local()
_install_lock = threading.Lock()


def _install_capture() -> None:
    if isinstance(sys.stdout, _Capture) and isinstance(sys.stderr, _Capture):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Capture):
            sys.stdout = _Capture(sys.stdout, "out")
        if not isinstance(sys.stderr, _Capture):
            sys.stderr = _Capture(sys.stderr, "err")


def run_job(
    job: Job, hooks: Hooks = NO_HOOKS, live: Callable[[Logs], None] | None = None
) -> Outcome:
    """Run one attempt; never raises: any ``BaseException`` of the task fails it.
    ``live``: where what the attempt writes is reported while it runs (``_LogPump``;
    a kind that takes hooks reports its own through them)."""
    started = time.time()
    if job.capture:
        _install_capture()
        bufs = _local.buffers = _Buffers(job, None if KINDS[job.type].USES_HOOKS else live)
        _local.capturing = True
    try:
        if job.upstream:
            job.upstream = load_upstream(job.upstream)
        value = KINDS[job.type].run(job, hooks)
        output = None
        if value.__class__ is Produced:
            value, output = value.value, value.output
        if job.spill is not None:
            value = spill(value, job.spill, job.task, job.attempt) or value
        out = Outcome(job.task, job.attempt, True, value, output=output, map_index=job.map_index)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt: the task's, not ours
        out = Outcome(
            job.task,
            job.attempt,
            False,
            error=f"{type(exc).__name__}: {exc}",
            traceback=getattr(exc, "traceback_text", None) or user_traceback(exc),
            output=getattr(exc, "output", None),
            timed_out=bool(getattr(exc, "timed_out", False)),  # it stopped itself at its timeout
            map_index=job.map_index,
        )
    finally:
        # a pool thread keeps its last job until it takes the next one: not its inputs
        job.upstream = {}
        value = None
        if job.capture:
            _local.capturing = False
            _local.buffers = None
            if bufs.watched:
                _PUMP.forget(bufs)
            stdout = "" if bufs.out is None else bufs.out.getvalue()
            stderr = "" if bufs.err is None else bufs.err.getvalue()
    if job.capture:
        out.stdout, out.stderr = stdout, stderr
    out.started, out.finished = started, time.time()
    return out


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_traceback(exc: BaseException) -> str:
    """The traceback of a task's exception from the user's code on: the frames of this
    package that called it (run_job, the kind, the call) are left out, at most the last
    20 frames are kept. A failure inside this package (an import error, say) keeps them."""
    if isinstance(exc, TaskCodeError):  # our own words on the task's definition suffice
        return "".join(traceback.format_exception_only(type(exc), exc))
    frames = traceback.extract_tb(exc.__traceback__)
    first = 0
    while first < len(frames) and frames[first].filename.startswith(_PACKAGE):
        first += 1
    if first == len(frames):  # the error is ours, not the task's: keep every frame
        first = 0
    kept = traceback.StackSummary.from_list(frames[first:][-20:])
    lines = ["Traceback (most recent call last):\n", *kept.format()]
    return "".join(lines + traceback.format_exception_only(type(exc), exc))


def uses_hooks(job: Job) -> bool:
    """Whether ``job``'s kind takes ``Hooks`` (an executor builds them only then)."""
    return KINDS[job.type].USES_HOOKS
