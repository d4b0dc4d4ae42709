"""REST handlers: thin adapters over the ``Runner`` and ``Store`` (SPEC §3).

Every verb is ``@web.authenticated`` (outermost) and ``@authorized`` on the
``taskflow`` resource; the verbs that run code check the ``execute`` action. Errors are
mapped to HTTP in ONE place, ``ErrorMixin.write_error``: a ``TaskFlowError`` becomes
its status (400/404/409/413/415) with a JSON body ``{message, reason, code, errors}``;
anything else is logged and answered with a generic 500 that carries no detail.

Work never happens on the event loop: body decoding, validation, SQLite and the JSON
encoding of responses all run in the app's thread pool (``TaskFlowApp.run``).

Bodies are streamed (``@stream_request_body``) so that the size cap is checked against
``Content-Length`` before a byte is read and against the real length while reading.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from http.client import responses
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import InvalidInput, PayloadTooLarge, Problem, TaskFlowError
from ..model import EXECUTION_STATUSES
from .body import check_media_type, parse_json

if TYPE_CHECKING:
    from .app import TaskFlowApp

__all__ = ["AUTH_RESOURCE", "ErrorMixin", "TaskFlowHandler", "default_handlers"]

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
_KEY_CHARS = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")
Json = dict[str, Any]


def _problem(where: str, code: str, detail: str) -> InvalidInput:
    return InvalidInput(
        f"{where}: {detail}" if where else detail, [Problem(where, code, detail)], code=code
    )


class ErrorMixin:
    """The one HTTP mapping of errors, shared by the REST and the WebSocket handlers."""

    request: Any
    log: Any
    set_status: Any
    set_header: Any
    finish: Any

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        errors: list[Json] = []
        if isinstance(exc, TaskFlowError) and exc.status < 500:
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
            self.set_header(
                "Allow",
                ", ".join(
                    m
                    for m in ("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS")
                    if getattr(type(self), m.lower()) is not getattr(web.RequestHandler, m.lower())
                ),
            )
        self.finish(
            json.dumps(
                {
                    "message": message,
                    "reason": responses.get(status),
                    "code": code,
                    "errors": errors,
                }
            )
        )

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        # Never the query string (it may carry ?token=) nor the headers.
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, TaskFlowError) and value.status < 500:
            self.log.info("%s -> %s %s: %s", where, value.status, value.code, value.message)
        elif isinstance(value, web.HTTPError) and value.status_code < 500:
            self.log.warning("%s -> %s: %s", where, value.status_code, value.get_message())
        else:
            self.log.error("Unexpected error in %s", where, exc_info=(typ, value, tb))


@web.stream_request_body
class TaskFlowHandler(ErrorMixin, ExtensionHandlerMixin, APIHandler):
    """Base of every REST handler: auth resource, body reading, query checks, replies."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, name: str, *args: Any, **kwargs: Any) -> None:
        super().initialize(name, *args, **kwargs)
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False

    @property
    def app(self) -> TaskFlowApp:
        return self.extensionapp  # type: ignore[return-value]

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        cap = self.app.max_body_bytes
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > cap:
            raise PayloadTooLarge(f"the body has {int(length)} bytes; the limit is {cap}")

    def data_received(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self.app.max_body_bytes:
            self._too_large = True
            self._chunks = []
        else:
            self._chunks.append(chunk)

    # -- inputs --------------------------------------------------------------------------
    async def json_body(self, *, optional: bool = False) -> Any:
        """The decoded body (in the pool); ``None`` when optional and absent."""
        if self._too_large:
            raise PayloadTooLarge(
                f"the body has more than {self.app.max_body_bytes} bytes; "
                f"the limit is {self.app.max_body_bytes}"
            )
        raw = b"".join(self._chunks)
        if optional and not raw:
            return None
        check_media_type(self.request.headers.get("Content-Type"))
        return await self.app.run(parse_json, raw, depth_limit=self.app.max_json_depth)

    async def object_body(self, allowed: dict[str, Callable[[str, Any], Any]]) -> Json:
        """An optional JSON object body whose keys are all in ``allowed`` (key -> checker)."""
        body = await self.json_body(optional=True)
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise _problem(
                "", "type_error", f"the body must be a JSON object, not {type(body).__name__}"
            )
        problems = [
            Problem(
                k,
                "unknown_field",
                f"unknown key {k!r}; allowed: {', '.join(sorted(allowed)) or 'none'}",
            )
            for k in sorted(set(body) - set(allowed))
        ]
        if problems:
            raise InvalidInput("Invalid body:", problems, code="unknown_field")
        return {k: allowed[k](k, v) for k, v in body.items()}

    def query(self, allowed: dict[str, Callable[[str, str], Any]]) -> Json:
        """Checked query parameters: unknown or repeated ones are 400 ``invalid_query``."""
        out: Json = {}
        problems = []
        for key, values in self.request.query_arguments.items():
            if key in JUPYTER_QUERY or _cache_buster(key, values):
                continue
            if key not in allowed:
                problems.append(
                    Problem(
                        key,
                        "invalid_query",
                        f"unknown query parameter {key!r}; "
                        f"allowed: {', '.join(sorted(allowed)) or 'none'}",
                    )
                )
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

    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` header: 1-255 printable ASCII characters."""
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not _KEY_CHARS.match(key):
            raise _problem(
                "Idempotency-Key", "invalid_header", "must be 1 to 255 printable ASCII characters"
            )
        return key

    # -- outputs -------------------------------------------------------------------------
    async def reply(
        self, fn: Callable[..., Any], *args: Any, status: int = 200, **kwargs: Any
    ) -> None:
        """Run ``fn`` in the pool, encode its result there too, and send it."""
        text = await self.app.run(lambda: json.dumps(fn(*args, **kwargs)))
        self.set_status(status)
        self.finish(text)

    @property
    def runner(self) -> Any:
        return self.app.runner


# -- query and body checkers ---------------------------------------------------------------
def _cache_buster(key: str, values: list[bytes]) -> bool:
    """``?1732579200000``: JupyterLab's ``URLExt`` appends a bare timestamp to GETs so no
    cache answers them; it carries no meaning and is ignored."""
    return key.isdigit() and len(key) <= 20 and values == [b""]


def int_range(low: int, high: int, *, text: bool = True) -> Callable[[str, Any], int]:
    """Checker of an integer in ``[low, high]``: from a query string (``text``) or a JSON
    body value (an integer, never a string or a boolean)."""

    def check(key: str, value: Any) -> int:
        if text:
            if not re.fullmatch(r"[0-9]{1,12}", value):
                raise _problem(key, "invalid_query", f"must be an integer from {low} to {high}")
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _problem(key, "out_of_range", f"must be an integer from {low} to {high}")
        return value

    return check


def nonempty(key: str, value: str) -> str:
    if not value or len(value) > 1000:
        raise _problem(key, "invalid_query", "must be 1 to 1000 characters")
    return value


def status_value(key: str, value: str) -> str:
    if value not in EXECUTION_STATUSES:
        raise _problem(
            key,
            "invalid_query",
            f"unknown status {value!r}; allowed: {', '.join(EXECUTION_STATUSES)}",
        )
    return value


def params_value(key: str, value: Any) -> Json:
    if not isinstance(value, dict):
        raise _problem(key, "type_error", f"must be an object, not {type(value).__name__}")
    return value


def encode_cursor(rowid: int) -> str:
    return base64.urlsafe_b64encode(f"e1:{rowid}".encode()).decode().rstrip("=")


def cursor_value(key: str, value: str) -> int:
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    tag, _, number = text.partition(":")
    if tag != "e1" or not number.isdigit() or len(number) > 18:
        raise _problem(key, "invalid_cursor", "is not a cursor this server returned")
    return int(number)


# -- routes ----------------------------------------------------------------------------------
class WorkflowsHandler(TaskFlowHandler):
    """``GET /workflows`` lists definitions; ``POST /workflows`` registers one and runs it."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.query({})
        await self.reply(self.runner.store.list_workflows)

    @web.authenticated
    @authorized("execute")
    async def post(self) -> None:
        self.query({})
        key = self.idempotency_key()
        definition = await self.json_body()
        await self.reply(self.runner.submit, definition, idempotency_key=key)


class WorkflowHandler(TaskFlowHandler):
    """``GET /workflows/{id}[?revision=N]`` and ``DELETE /workflows/{id}``."""

    @web.authenticated
    @authorized
    async def get(self, workflow_id: str) -> None:
        q = self.query({"revision": int_range(1, 10**12)})
        await self.reply(self.runner.store.get_workflow, workflow_id, q.get("revision"))

    @web.authenticated
    @authorized
    async def delete(self, workflow_id: str) -> None:
        self.query({})
        await self.app.run(self.runner.store.delete_workflow, workflow_id)
        self.set_status(204)
        self.finish()


class WorkflowExecutionsHandler(TaskFlowHandler):
    """``POST /workflows/{id}/executions``: run a registered workflow (body: params)."""

    @web.authenticated
    @authorized("execute")
    async def post(self, workflow_id: str) -> None:
        self.query({})
        key = self.idempotency_key()
        body = await self.object_body(
            {"params": params_value, "revision": int_range(1, 10**12, text=False)}
        )

        def start() -> Json:
            revision = body.get("revision")
            self.runner.store.get_workflow(workflow_id, revision)  # 404 for deleted/unknown
            return self.runner.start(
                workflow_id, revision=revision, params=body.get("params"), idempotency_key=key
            )

        await self.reply(start)


class ExecutionsHandler(TaskFlowHandler):
    """``GET /executions[?workflow_id=&status=&limit=&cursor=]``, newest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        q = self.query(
            {
                "workflow_id": nonempty,
                "status": status_value,
                "limit": int_range(1, 1000),
                "cursor": cursor_value,
            }
        )
        limit = q.get("limit", 100)

        def page() -> tuple[str, int | None]:
            rows, after = self.runner.store.list_executions(
                workflow_id=q.get("workflow_id"),
                status=q.get("status"),
                limit=limit,
                cursor=q.get("cursor"),
            )
            return json.dumps(rows), after

        text, after = await self.app.run(page)
        if after is not None:
            cursor = encode_cursor(after)
            args = {
                k: v
                for k, v in (("workflow_id", q.get("workflow_id")), ("status", q.get("status")))
                if v is not None
            }
            link = (
                url_path_join(self.base_url, "executions")
                + "?"
                + urlencode({**args, "limit": limit, "cursor": cursor})
            )
            self.set_header("X-Next-Cursor", cursor)
            self.set_header("Link", f'<{link}>; rel="next"')
        self.finish(text)


class ExecutionHandler(TaskFlowHandler):
    """``GET /executions/{id}``: one execution with full task detail."""

    @web.authenticated
    @authorized
    async def get(self, execution_id: str) -> None:
        self.query({})
        await self.reply(self.runner.get, execution_id, detail=True)


class CancelHandler(TaskFlowHandler):
    """``POST /executions/{id}/cancel``."""

    @web.authenticated
    @authorized
    async def post(self, execution_id: str) -> None:
        self.query({})
        await self.object_body({})
        await self.reply(self.runner.cancel, execution_id)


class RetryHandler(TaskFlowHandler):
    """``POST /executions/{id}/retry``: a new execution that resumes from failure."""

    @web.authenticated
    @authorized("execute")
    async def post(self, execution_id: str) -> None:
        self.query({})
        key = self.idempotency_key()
        await self.object_body({})
        await self.reply(self.runner.retry, execution_id, idempotency_key=key)


class LogsHandler(TaskFlowHandler):
    """``GET /executions/{id}/tasks/{name}/logs``: stdout/stderr of each attempt."""

    @web.authenticated
    @authorized
    async def get(self, execution_id: str, task: str) -> None:
        self.query({})

        def logs() -> Json:
            return {
                "executionId": execution_id,
                "task": task,
                "attempts": self.runner.store.get_logs(execution_id, task),
            }

        await self.reply(logs)


class OpenAPIHandler(TaskFlowHandler):
    """``GET /taskflow/openapi.json``: the OpenAPI 3 description of these routes."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        from .openapi import openapi

        self.query({})
        self.finish(json.dumps(openapi(self.base_url)))


def default_handlers() -> list[tuple[str, type]]:
    """Route patterns relative to ``base_url`` (the ExtensionApp prefixes it)."""
    from .websocket import EventsWebSocket

    ident = r"(?P<{}>[^/]+)"
    wid, eid = ident.format("workflow_id"), ident.format("execution_id")
    return [
        (r"/workflows", WorkflowsHandler),
        (rf"/workflows/{wid}", WorkflowHandler),
        (rf"/workflows/{wid}/executions", WorkflowExecutionsHandler),
        (r"/executions", ExecutionsHandler),
        (rf"/executions/{eid}", ExecutionHandler),
        (rf"/executions/{eid}/cancel", CancelHandler),
        (rf"/executions/{eid}/retry", RetryHandler),
        (rf"/executions/{eid}/tasks/{ident.format('task')}/logs", LogsHandler),
        (r"/taskflow/openapi.json", OpenAPIHandler),
        (r"/ws", EventsWebSocket),
    ]
