"""Task results on their way downstream: kept while needed, large ones spilled to a file.

Design
------
A result is needed in memory only to hand it to the attempts of the tasks downstream
(``transitions.RunState.results`` drops it once none of them can start another attempt);
the store keeps what REST shows (the JSON, or a summary). A large result would still be
held by the server from its task's end to its consumers' start, so a worker whose task
has consumers writes a result larger than ``Spill.over`` bytes pickled to ``Spill.path``
(``<runs_dir>/<execution id>/results/...``) and reports a ``Spilled`` reference instead:
the server never holds the value (with the process and Dask executors it does not even
cross the pipe), and each consumer's worker loads it (``load_upstream``, in
``tasks.run_job``), so no executor knows about any of this. A worker on the same machine
reads the file (the Dask executor's workers are expected to share the runs folder).
A task without consumers gets a ``Spill`` without a path: its worker reports only what
the store keeps of its result (``Spilled`` without a path), since nothing else will
read the value; so a big result never crosses a process executor's pipe, nor stays in
the reply an idle worker's thread still holds.

Pickling streams into ``_Sink``: a result under the threshold costs a pickle in memory
and no file; over it, the pickle goes to disk as it is made (no second copy in memory),
to a temporary name renamed at the end, so a file that exists is whole. A result that
cannot be pickled stays in memory, as before.

The files live as long as the execution (``results_dir``): a consumer whose attempt a restart of the
server cut short reruns on the resumed server and reads its upstream result from the
file (``spill_path`` is a function of the execution, task and attempt, so the resumed
engine finds it again); the engine removes the folder when the execution ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SPILL_OVER",
    "Spill",
    "Spilled",
    "load_upstream",
    "remove",
    "results_dir",
    "spill",
    "spill_path",
]

SPILL_OVER = 1 << 20  # bytes pickled: a result larger than this is spilled


@dataclass(frozen=True, slots=True)
class Spill:
    """Where a worker writes its result if it is large: a file in ``folder`` (None: no
    task downstream needs it, report only its stored form), and how the store shows it.
    One per execution, shared by its jobs: nothing is built per attempt."""

    folder: str | None
    over: int  # bytes pickled (``SPILL_OVER`` by default in the engine)
    stored: Callable[[Any], Any]  # the value as the store keeps it (``engine.stored_result``)


@dataclass(frozen=True, slots=True)
class Spilled:
    """A result reported by reference: ``stored`` is what the store keeps of it,
    ``path`` the file holding the value (None: nothing downstream reads it)."""

    path: str | None
    stored: Any = None

    def load(self) -> Any:
        if self.path is None:
            raise ValueError("this result was not kept: no task downstream needed it")
        with open(self.path, "rb") as f:
            return pickle.load(f)


def results_dir(runs_dir: str, execution_id: str) -> str:
    """The folder of an execution's spilled results: the engine makes it when the
    execution starts and removes it when it ends; workers only write into it, so an
    attempt that ends after its execution (one the engine gave up on) leaves no file."""
    return os.path.join(runs_dir, execution_id, "results")


def spill_path(runs_dir: str, execution_id: str, task: str, attempt: int) -> str:
    """The file of ``task``'s result of ``attempt``."""
    return _file(results_dir(runs_dir, execution_id), task, attempt)


def _file(folder: str, task: str, attempt: int) -> str:
    # task names may hold any character, and differ only in case: named by a digest
    digest = hashlib.sha256(task.encode()).hexdigest()[:24]
    return os.path.join(folder, f"{digest}.{attempt}.pickle")


class _Sink(io.RawIOBase):
    """A file-like target for ``pickle.dump``: memory up to ``over`` bytes, then the
    file ``path + '.part'`` (what was buffered first)."""

    def __init__(self, path: str, over: int) -> None:
        self.path, self.over = path, over
        self.buffer: io.BytesIO | None = io.BytesIO()
        self.file: io.BufferedWriter | None = None

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes  # pickle hands large buffers over as they are
        if self.file is None:
            assert self.buffer is not None
            self.buffer.write(data)
            if self.buffer.tell() <= self.over:
                return size
            self.file = open(self.path + ".part", "wb")  # noqa: SIM115 (closed in spill)
            self.file.write(self.buffer.getbuffer())
            self.buffer = None
            return size
        self.file.write(data)
        return size


def spill(value: Any, to: Spill, task: str, attempt: int) -> Spilled | None:
    """Write ``value``, ``task``'s result of ``attempt``, to its file in ``to.folder``
    if its pickle is larger than ``to.over``; None when it is smaller or cannot be
    pickled (it then goes downstream in memory). Without a folder, only the stored form
    of ``value`` is reported."""
    if value is None or value.__class__ in (bool, int, float):
        return None
    if to.folder is None:
        return Spilled(None, to.stored(value))
    path = _file(to.folder, task, attempt)
    sink = _Sink(path, to.over)
    try:
        pickle.dump(value, sink, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        if sink.file is not None:
            sink.file.close()
            os.unlink(sink.path + ".part")
        return None
    if sink.file is None:
        return None
    try:
        sink.file.close()
        os.replace(sink.path + ".part", path)
    except OSError:  # a full disk, say: the value goes downstream in memory
        with contextlib.suppress(OSError):
            os.unlink(sink.path + ".part")
        return None
    return Spilled(path, to.stored(value))


def load_upstream(upstream: dict[str, Any]) -> dict[str, Any]:
    """``upstream`` with each ``Spilled`` reference replaced by the value it names."""
    if not any(v.__class__ is Spilled for v in upstream.values()):
        return upstream
    return {k: v.load() if v.__class__ is Spilled else v for k, v in upstream.items()}


def remove(runs_dir: str, execution_id: str) -> None:
    """Remove an ended execution's spilled results (nothing else under its folder)."""
    folder = results_dir(runs_dir, execution_id)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith((".pickle", ".part")):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
    with contextlib.suppress(OSError):
        os.rmdir(folder)
