"""The exception tree of PyTaskFlow for Jupyter.

Every error that crosses a layer boundary is one of these; the server maps them to
HTTP statuses in ONE place (``server/handlers.py``)::

    TaskFlowError                     base of everything we raise
    ├── InvalidInput        (400)     a request or definition that cannot be accepted;
    │   │                             carries every ``Problem`` with its location
    │   └── ValidationError (400)     a workflow definition that breaks a rule of SPEC §3
    ├── NotFound            (404)     unknown workflow, revision, execution or task
    ├── Conflict            (409)     cancel a finished execution, delete a running workflow
    ├── PayloadTooLarge     (413)     body over the configured limit
    ├── UnsupportedMediaType(415)     body that is not ``application/json``
    ├── StoreError                    the database cannot be used (schema too new, ...)
    │   └── StorageUnavailable (503)  the database file vanished or was replaced, the
    │                                 disk is full or unwritable: names path and cause
    └── TaskCodeError                 raised in a worker: a task that cannot run as defined
                                      (bad callable, bad branch result); becomes data

Task code never raises into the engine: executors turn its exceptions into an
``Outcome`` record (see ``executors.py``), so a user's exception is data, not control flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "Problem",
    "StorageUnavailable",
    "StoreError",
    "TaskCodeError",
    "TaskFlowError",
    "UnsupportedMediaType",
    "ValidationError",
]


@dataclass(frozen=True)
class Problem:
    """One problem in an input: where it is, a stable code, and a sentence about it."""

    path: str
    code: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}" if self.path else self.detail

    def to_json(self) -> dict[str, Any]:
        """The problem as it appears in an error body's ``errors`` list."""
        return {"path": self.path, "code": self.code, "detail": self.detail, **self.extra}


class TaskFlowError(Exception):
    """Base class of every error PyTaskFlow raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def problems(self) -> list[Problem]:
        """The individual problems; most errors have none beyond their message."""
        return []


class InvalidInput(TaskFlowError):
    """A request that cannot be accepted; lists every problem found."""

    status = 400
    code = "invalid_input"

    def __init__(
        self,
        message: str,
        problems: list[Problem] | None = None,
        *,
        code: str | None = None,
        total: int | None = None,
    ) -> None:
        self._problems = list(problems or [])
        self.total = max(total or 0, len(self._problems))
        if self._problems and message.endswith(":"):
            message = f"{message} " + "; ".join(str(p) for p in self._problems[:5])
            if self.total > 5:
                message += f"; and {self.total - 5} more"
        super().__init__(message, code=code)

    @property
    def problems(self) -> list[Problem]:
        return self._problems


class ValidationError(InvalidInput):
    """A workflow definition that breaks a rule of the SPEC (cycle, unknown task, ...)."""

    code = "validation_failed"


class NotFound(TaskFlowError):
    """An id that names nothing stored."""

    status = 404
    code = "not_found"


class Conflict(TaskFlowError):
    """A request that the current state forbids (cancel a finished execution, ...)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(TaskFlowError):
    """A body over the configured size limit."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(TaskFlowError):
    """A body that is not declared as ``application/json``."""

    status = 415
    code = "unsupported_media_type"


class StoreError(TaskFlowError):
    """The database cannot be used as it is (for example a schema newer than this code)."""

    code = "store_error"


class StorageUnavailable(StoreError):
    """The database cannot be read or written now: its file was deleted or replaced
    under the running store, or a write failed (disk full, I/O error, read-only file).
    The message names the path and the cause; nothing of the failed write is kept."""

    status = 503
    code = "storage_unavailable"


class TaskCodeError(TaskFlowError):
    """A task that cannot run as defined (a callable that cannot be imported, a branch
    that selects what it may not); raised in a worker, reported as the attempt's error."""

    code = "task_code_error"
