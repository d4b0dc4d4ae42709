"""What the REST handlers and the ``/ws`` handler share: the one HTTP mapping of errors
(``ErrorMixin``), the auth resource, and the one query parser with its checkers.

``ErrorMixin.write_error`` is the only place an exception becomes an HTTP answer: a
``TaskFlowError`` becomes its status (400/404/409/413/415) with a JSON body
``{message, reason, code, errors}``; anything else is logged and answered with a
generic 500 that carries no detail.

``parse_query`` checks every query parameter against a table ``name -> checker``;
unknown or repeated parameters, bad UTF-8 and every value a checker refuses become one
400 ``invalid_query`` that lists each problem. Checkers take ``(key, value)`` and return
the value to use or raise ``InvalidInput`` naming ``key``; the same ones check JSON body
fields (``int_range(..., text=False)``, ``params_value``, ``rerun_value``).

This module imports nothing from ``server/``: ``handlers.py`` and ``websocket.py`` sit
on it, and ``app.py`` on them (``tests/server/test_layers.py`` keeps it so).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from http.client import responses
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from ..errors import InvalidInput, Problem, TaskFlowError
from ..model import EXECUTION_STATUSES, TASK_STATUSES, Trigger
from ..runner import Runner

__all__ = [
    "AUTH_RESOURCE",
    "HTTP_CODES",
    "JUPYTER_QUERY",
    "Checker",
    "ErrorMixin",
    "Host",
    "cursor_value",
    "encode_cursor",
    "int_range",
    "nonempty",
    "params_value",
    "parse_query",
    "problem",
    "rerun_value",
    "seq_value",
    "status_value",
]

Json = dict[str, Any]
Checker = Callable[[str, Any], Any]
P = ParamSpec("P")
T = TypeVar("T")

AUTH_RESOURCE = "taskflow"
# Query parameters Jupyter itself reads on any URL; never an error.
JUPYTER_QUERY = frozenset({"token", "_xsrf", "no_track_activity"})
HTTP_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}
_VERBS = ("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS")


class Host(Protocol):
    """What the handlers need of the extension app (``TaskFlowApp`` in ``app.py``)."""

    @property
    def runner(self) -> Runner: ...

    @property
    def max_body_bytes(self) -> int: ...

    @property
    def max_json_depth(self) -> int: ...

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...


def problem(where: str, code: str, detail: str) -> InvalidInput:
    """An ``InvalidInput`` with one problem at ``where``."""
    return InvalidInput(
        f"{where}: {detail}" if where else detail, [Problem(where, code, detail)], code=code
    )


class ErrorMixin(JupyterHandler):
    """The one HTTP mapping of errors, first in the bases of the REST and /ws handlers."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        errors: list[Json] = []
        if isinstance(exc, TaskFlowError) and (exc.status < 500 or exc.status == 503):
            status, message, code = exc.status, exc.message, exc.code
            errors = [p.to_json() for p in exc.problems]
        elif isinstance(exc, web.HTTPError) and exc.status_code < 500:
            status = exc.status_code
            message = exc.get_message() or responses.get(status, "HTTP error")
            code = HTTP_CODES.get(status, "http_error")
        elif exc is None and status_code < 500:
            status, message = status_code, responses.get(status_code, "HTTP error")
            code = HTTP_CODES.get(status, "http_error")
        else:
            status, code = 500, "internal_error"
            message = "Internal server error; the server log has the details"
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        if status == 405:  # RFC 9110: a 405 names the methods the resource has
            mine = [v for v in _VERBS if _overrides(type(self), v.lower())]
            self.set_header("Allow", ", ".join(mine))
        body = {"message": message, "reason": responses.get(status), "code": code}
        self.finish(json.dumps({**body, "errors": errors}))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Never the query string (it may carry ?token=) nor the headers.
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, TaskFlowError) and value.status == 503:  # storage_unavailable
            self.log.error("%s -> 503 %s: %s", where, value.code, value.message)
        elif isinstance(value, TaskFlowError) and value.status < 500:
            self.log.info("%s -> %s %s: %s", where, value.status, value.code, value.message)
        elif isinstance(value, web.HTTPError) and value.status_code < 500:
            self.log.warning("%s -> %s: %s", where, value.status_code, value.get_message())
        else:
            self.log.error(
                "Unexpected error in %s", where, exc_info=value
            )  # its __traceback__ is tb


def _overrides(cls: type, verb: str) -> bool:
    return getattr(cls, verb) is not getattr(web.RequestHandler, verb)


# -- the query parser --------------------------------------------------------------------------
def parse_query(
    arguments: Mapping[str, list[bytes]],
    allowed: Mapping[str, Checker],
    *,
    cache_buster: bool = True,
) -> Json:
    """Checked query parameters: unknown or repeated ones, bad UTF-8 and values a checker
    refuses are one 400 ``invalid_query`` listing every problem. ``cache_buster``:
    ignore JupyterLab's bare-timestamp parameter (only REST GETs carry it)."""
    out: Json = {}
    problems: list[Problem] = []
    for key, values in arguments.items():
        if key in JUPYTER_QUERY or (cache_buster and _cache_buster(key, values)):
            continue
        if key not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            detail = f"unknown query parameter {key!r}; allowed: {names}"
            problems.append(Problem(key, "invalid_query", detail))
            continue
        if len(values) != 1:
            problems.append(Problem(key, "invalid_query", "must be given once"))
            continue
        try:
            text = values[0].decode("utf-8")
        except UnicodeDecodeError:
            problems.append(Problem(key, "invalid_query", "is not valid UTF-8"))
            continue
        try:
            out[key] = allowed[key](key, text)
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems:
        raise InvalidInput("Invalid query:", problems, code="invalid_query")
    return out


def _cache_buster(key: str, values: list[bytes]) -> bool:
    """``?1732579200000``: JupyterLab's ``URLExt`` appends a bare timestamp to GETs so no
    cache answers them; it carries no meaning and is ignored."""
    return key.isdigit() and len(key) <= 20 and values == [b""]


# -- checkers (query values and body fields) -----------------------------------------------------
def int_range(low: int, high: int, *, text: bool = True) -> Checker:
    """Checker of an integer in ``[low, high]``: from a query string (``text``) or a JSON
    body value (an integer, never a string or a boolean)."""

    def check(key: str, value: Any) -> int:
        if text:
            if not re.fullmatch(r"[0-9]{1,12}", value):
                raise problem(key, "invalid_query", f"must be an integer from {low} to {high}")
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise problem(key, "out_of_range", f"must be an integer from {low} to {high}")
        return value

    return check


def nonempty(key: str, value: str) -> str:
    """An id or name: 1 to 1000 characters."""
    if not value or len(value) > 1000:
        raise problem(key, "invalid_query", "must be 1 to 1000 characters")
    return value


def seq_value(key: str, value: str) -> int:
    """An event ``seq``: a non-negative integer of at most 18 ASCII digits."""
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise problem(key, "invalid_query", "must be a non-negative integer (an event seq)")
    return int(value)


def one_of(allowed: tuple[str, ...], what: str) -> Checker:
    """Checker of a word of the API (a status, a trigger)."""

    def check(key: str, value: str) -> str:
        if value not in allowed:
            raise problem(
                key, "invalid_query", f"unknown {what} {value!r}; allowed: {', '.join(allowed)}"
            )
        return value

    return check


status_value = one_of(EXECUTION_STATUSES, "status")  # an execution's
task_status_value = one_of(TASK_STATUSES, "status")  # a task's, an instance's
trigger_value = one_of(tuple(t.value for t in Trigger), "trigger")  # what started it


def params_value(key: str, value: Any) -> Json:
    """A body's ``params``: a JSON object."""
    if not isinstance(value, dict):
        raise problem(key, "type_error", f"must be an object, not {type(value).__name__}")
    return value


def rerun_value(key: str, value: Any) -> list[str]:
    """A body's ``rerun``: a list of task names (the runner says which are unknown)."""
    if not isinstance(value, list):
        raise problem(
            key, "type_error", f"must be a list of task names, not {type(value).__name__}"
        )
    for i, name in enumerate(value):
        if not isinstance(name, str):
            raise problem(
                f"{key}[{i}]", "type_error", f"must be a task name, not {type(name).__name__}"
            )
    return value


def encode_cursor(rowid: int) -> str:
    """The opaque cursor of ``GET /executions`` (``X-Next-Cursor``)."""
    return base64.urlsafe_b64encode(f"e1:{rowid}".encode()).decode().rstrip("=")


def cursor_value(key: str, value: str) -> int:
    """A cursor ``encode_cursor`` made, decoded."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    tag, _, number = text.partition(":")
    if tag != "e1" or not number.isdigit() or len(number) > 18:
        raise problem(key, "invalid_cursor", "is not a cursor this server returned")
    return int(number)
