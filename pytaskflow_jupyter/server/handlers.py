"""REST handlers: thin adapters over the ``Runner`` (SPEC §3).

Every verb is ``@web.authenticated`` (outermost) and ``@authorized`` on the
``taskflow`` resource; the verbs that run code check the ``execute`` action. Errors are
mapped to HTTP in ONE place, ``base.ErrorMixin.write_error``; queries are checked by
``base.parse_query``. The handlers call nothing but the ``Runner`` (``self.runner``);
``app.py`` mounts them.

Work never happens on the event loop: body decoding, validation, SQLite and the JSON
encoding of responses all run in the app's thread pool (``TaskFlowApp.run``).

Bodies are streamed (``@stream_request_body``) so that the size cap is checked against
``Content-Length`` before a byte is read and against the real length while reading.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web

from ..errors import InvalidInput, PayloadTooLarge, Problem
from ..runner import Runner
from ..serialize import encode
from .base import (
    AUTH_RESOURCE,
    Checker,
    ErrorMixin,
    Host,
    cursor_value,
    encode_cursor,
    int_range,
    nonempty,
    params_value,
    parse_query,
    problem,
    rerun_value,
    status_value,
    task_status_value,
    trigger_value,
)
from .body import check_media_type, parse_json
from .openapi import openapi

__all__ = [
    "CancelHandler",
    "CompareHandler",
    "ExecutionHandler",
    "ExecutionsHandler",
    "InstancesHandler",
    "LogsHandler",
    "OpenAPIHandler",
    "PauseHandler",
    "ResumeHandler",
    "RetryHandler",
    "RevisionsHandler",
    "TaskFlowHandler",
    "WorkflowExecutionsHandler",
    "WorkflowHandler",
    "WorkflowsHandler",
]

_KEY_CHARS = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")
Json = dict[str, Any]
P = ParamSpec("P")
Verb = TypeVar("Verb", bound=Callable[..., Awaitable[None]])


def _authorized(action: str) -> Callable[[Verb], Verb]:
    """``@authorized(action)``, typed (jupyter_server's loses the type with an argument)."""
    decorate: Callable[[Verb], Verb] = authorized(action)
    return decorate


_execute = _authorized("execute")


@web.stream_request_body
class TaskFlowHandler(ErrorMixin, ExtensionHandlerMixin, APIHandler):
    """Base of every REST handler: auth resource, body reading, query checks, replies."""

    auth_resource = AUTH_RESOURCE

    def initialize(self, name: str, *args: Any, **kwargs: Any) -> None:
        super().initialize(name, *args, **kwargs)
        self._chunks: list[bytes] = []
        self._size = 0
        self._too_large = False

    def compute_etag(self) -> None:
        """No ``ETag``: Tornado's is a SHA-1 of the whole body, on the loop, before the
        first byte goes out (20-30 ms for the 22 MB of ``GET /workflows`` holding a
        100,000-task definition), and no client of these routes sends ``If-None-Match``."""
        return None

    @property
    def app(self) -> Host:
        return cast(Host, self.extensionapp)

    @property
    def runner(self) -> Runner:
        return self.app.runner

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
    def body_decoder(self) -> Callable[[], Any]:
        """What decodes the body, to call in the pool (where a route may go on with it:
        one hop from the loop instead of two); the checks that need no decoding are made
        now."""
        if self._too_large:
            raise PayloadTooLarge(
                f"the body has more than {self.app.max_body_bytes} bytes; "
                f"the limit is {self.app.max_body_bytes}"
            )
        check_media_type(self.request.headers.get("Content-Type"))
        chunks, limit = self._chunks, self.app.max_json_depth
        # joined in the pool too: copying a 32 MB body is 20-30 ms the loop would stall
        return lambda: parse_json(b"".join(chunks), depth_limit=limit)

    async def object_body(self, allowed: Mapping[str, Checker]) -> Json:
        """An optional JSON object body whose keys are all in ``allowed`` (key -> checker)."""
        if not self._size:  # absent (a body over the cap is never absent)
            return {}
        body = await self.app.run(self.body_decoder())
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise problem(
                "", "type_error", f"the body must be a JSON object, not {type(body).__name__}"
            )
        names = ", ".join(sorted(allowed)) or "none"
        problems = [
            Problem(k, "unknown_field", f"unknown key {k!r}; allowed: {names}")
            for k in sorted(set(body) - set(allowed))
        ]
        if problems:
            raise InvalidInput("Invalid body:", problems, code="unknown_field")
        return {k: allowed[k](k, v) for k, v in body.items()}

    def query(self, allowed: Mapping[str, Checker]) -> Json:
        """Checked query parameters (``base.parse_query``)."""
        return parse_query(self.request.query_arguments, allowed)

    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` header: 1-255 printable ASCII characters."""
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not _KEY_CHARS.match(key):
            raise problem(
                "Idempotency-Key", "invalid_header", "must be 1 to 255 printable ASCII characters"
            )
        return key

    # -- outputs -------------------------------------------------------------------------
    async def reply(self, fn: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None:
        """Run ``fn`` in the pool, encode its result there too, and send it."""
        body = await self.app.run(lambda: encode(fn(*args, **kwargs)))
        self.finish(body)

    ALONE = 64 * 1024  # a chunk of this many bytes or more is sent on its own

    def send_chunks(self, chunks: list[bytes]) -> None:
        """Send a JSON answer made of ``chunks`` without joining them: Tornado joins
        what is written between two flushes (a copy of 22 MB for a 100,000-task
        definition: 15-150 ms of page faults on this VM), so a large chunk is flushed
        on its own, and under a ``Content-Length`` (chunked encoding would copy it)."""
        self.set_header("Content-Type", "application/json")
        self.set_header("Content-Length", sum(len(chunk) for chunk in chunks))
        for chunk in chunks:
            if len(chunk) >= self.ALONE:
                self.flush()
                self.write(chunk)
                self.flush()
            else:
                self.write(chunk)
        self.finish()


class GzipCache:
    """The last large answer of a route, gzipped (level 1: the 22 MB listing of a
    100,000-task definition becomes 0.3 MB in 30 ms), kept until the answer changes,
    for the clients that accept it (browsers always do). The answer is its chunks: the
    big ones are the same cached objects from one request to the next, so comparing
    them is comparing references."""

    FROM = 32 * 1024  # smaller answers go as they are

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[bytes, ...] = ()
        self._body = b""

    def get(self, chunks: list[bytes]) -> bytes:
        key = tuple(chunks)
        with self._lock:  # one compression at a time; a request meanwhile waits for it
            if key != self._key:
                self._body, self._key = gzip.compress(b"".join(chunks), 1, mtime=0), key
            return self._body


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header accepts gzip (RFC 9110 12.5.3)."""
    for item in header.split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "x-gzip", "*"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip().rstrip("0.") == "")
    return False


# -- routes ----------------------------------------------------------------------------------
class WorkflowsHandler(TaskFlowHandler):
    """``GET /workflows`` lists definitions; ``POST /workflows`` registers one and runs it."""

    LISTED = GzipCache()  # the listing, gzipped for the clients that accept it

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.query({})
        gzipped = accepts_gzip(self.request.headers.get("Accept-Encoding", ""))

        def listing() -> bytes | list[bytes]:
            # read and compressed in one pool job: each hop back to the loop waits for
            # the GIL behind the engine's threads while executions run
            chunks = self.runner.list_workflows_json()
            if gzipped and sum(len(chunk) for chunk in chunks) >= GzipCache.FROM:
                return self.LISTED.get(chunks)
            return chunks

        body = await self.app.run(listing)
        self.set_header("Vary", "Accept-Encoding")
        if isinstance(body, list):
            self.send_chunks(body)
            return
        self.set_header("Content-Encoding", "gzip")
        self.finish(body)  # APIHandler.finish sets the JSON Content-Type

    @web.authenticated
    @_execute
    async def post(self) -> None:
        self.query({})
        key = self.idempotency_key()
        decode = self.body_decoder()
        await self.reply(lambda: self.runner.submit(decode(), idempotency_key=key))


class WorkflowHandler(TaskFlowHandler):
    """``GET /workflows/{id}[?revision=N]``, ``PUT /workflows/{id}`` (register or update
    without running) and ``DELETE /workflows/{id}``."""

    @web.authenticated
    @authorized
    async def get(self, workflow_id: str) -> None:
        q = self.query({"revision": int_range(1, 10**12)})
        await self.reply(self.runner.get_workflow, workflow_id, q.get("revision"))

    @web.authenticated
    @_execute  # a registered schedule runs its code later
    async def put(self, workflow_id: str) -> None:
        self.query({})
        decode = self.body_decoder()
        await self.reply(lambda: self.runner.register(decode(), workflow_id=workflow_id))

    @web.authenticated
    @authorized
    async def delete(self, workflow_id: str) -> None:
        self.query({})
        await self.app.run(self.runner.delete_workflow, workflow_id)
        self.set_status(204)
        self.finish()


class WorkflowExecutionsHandler(TaskFlowHandler):
    """``POST /workflows/{id}/executions``: run a registered workflow (body: params)."""

    @web.authenticated
    @_execute
    async def post(self, workflow_id: str) -> None:
        self.query({})
        key = self.idempotency_key()
        body = await self.object_body(
            {"params": params_value, "revision": int_range(1, 10**12, text=False)}
        )
        await self.reply(
            self.runner.trigger,
            workflow_id,
            revision=body.get("revision"),
            params=body.get("params"),
            idempotency_key=key,
        )


class PauseHandler(TaskFlowHandler):
    """``POST /workflows/{id}/schedule/pause``: the workflow, its schedule paused."""

    @web.authenticated
    @authorized
    async def post(self, workflow_id: str) -> None:
        self.query({})
        await self.object_body({})
        await self.reply(self.runner.pause, workflow_id, True)


class ResumeHandler(TaskFlowHandler):
    """``POST /workflows/{id}/schedule/resume``: the workflow, its schedule running again
    from now (it runs code again: the ``execute`` action)."""

    @web.authenticated
    @_execute
    async def post(self, workflow_id: str) -> None:
        self.query({})
        await self.object_body({})
        await self.reply(self.runner.pause, workflow_id, False)


class ExecutionsHandler(TaskFlowHandler):
    """``GET /executions[?workflow_id=&status=&trigger=&limit=&cursor=]``, newest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        q = self.query(
            {
                "workflow_id": nonempty,
                "status": status_value,
                "trigger": trigger_value,
                "limit": int_range(1, 1000),
                "cursor": cursor_value,
            }
        )
        limit = q.get("limit", 100)

        def page() -> tuple[bytes, int | None]:
            rows, after = self.runner.list_executions(
                workflow_id=q.get("workflow_id"),
                status=q.get("status"),
                trigger=q.get("trigger"),
                limit=limit,
                cursor=q.get("cursor"),
            )
            return encode(rows), after

        text, after = await self.app.run(page)
        if after is not None:
            cursor = encode_cursor(after)
            args = {k: v for k, v in q.items() if k in ("workflow_id", "status", "trigger")}
            link = (
                url_path_join(self.base_url, "executions")
                + "?"
                + urlencode({**args, "limit": limit, "cursor": cursor})
            )
            self.set_header("X-Next-Cursor", cursor)
            self.set_header("Link", f'<{link}>; rel="next"')
        self.finish(text)


class ExecutionHandler(TaskFlowHandler):
    """``GET /executions/{id}[?limit=&cursor=]``: one execution with full task detail;
    with ``limit`` (or ``cursor``), a page of its tasks in definition order (``cursor``:
    the index the page starts at, the answer's ``nextCursor``), the counts of all of
    them by status, and ``taskCount``."""

    @web.authenticated
    @authorized
    async def get(self, execution_id: str) -> None:
        q = self.query({"limit": int_range(1, 1000), "cursor": int_range(0, 10**9)})
        # a cursor alone pages by 100, as the other paged routes
        limit = q.get("limit", 100 if "cursor" in q else None)
        await self.reply(
            self.runner.get, execution_id, detail=True, cursor=q.get("cursor", 0), limit=limit
        )


class CompareHandler(TaskFlowHandler):
    """``GET /executions/{a}/compare/{b}``: two executions of one workflow side by side."""

    @web.authenticated
    @authorized
    async def get(self, execution_id: str, other_id: str) -> None:
        self.query({})
        await self.reply(self.runner.compare, execution_id, other_id)


class RevisionsHandler(TaskFlowHandler):
    """``GET /workflows/{id}/revisions``: its revisions, newest first."""

    @web.authenticated
    @authorized
    async def get(self, workflow_id: str) -> None:
        self.query({})
        await self.reply(self.runner.revisions, workflow_id)


class CancelHandler(TaskFlowHandler):
    """``POST /executions/{id}/cancel``."""

    @web.authenticated
    @authorized
    async def post(self, execution_id: str) -> None:
        self.query({})
        await self.object_body({})
        await self.reply(self.runner.cancel, execution_id)


class RetryHandler(TaskFlowHandler):
    """``POST /executions/{id}/retry[ {"rerun": [task, ...]}]``: a new execution that
    resumes from failure; the ``rerun`` tasks and everything downstream run again."""

    @web.authenticated
    @_execute
    async def post(self, execution_id: str) -> None:
        self.query({})
        key = self.idempotency_key()
        body = await self.object_body({"rerun": rerun_value})
        await self.reply(
            self.runner.retry, execution_id, rerun=body.get("rerun", ()), idempotency_key=key
        )


class LogsHandler(TaskFlowHandler):
    """``GET /executions/{id}/tasks/{name}/logs``: stdout/stderr of each attempt."""

    @web.authenticated
    @authorized
    async def get(self, execution_id: str, task: str) -> None:
        q = self.query({"map_index": int_range(0, 10**9)})

        def logs() -> Json:
            out = {
                "executionId": execution_id,
                "task": task,
                "attempts": self.runner.get_logs(execution_id, task, q.get("map_index")),
            }
            if "map_index" in q:
                out["mapIndex"] = q["map_index"]
            return out

        await self.reply(logs)


class InstancesHandler(TaskFlowHandler):
    """``GET /executions/{id}/tasks/{name}/instances[?status=&limit=&cursor=]``: a page of
    a mapped task's instances in index order (``cursor``: the index the page starts at;
    the answer's ``nextCursor``)."""

    @web.authenticated
    @authorized
    async def get(self, execution_id: str, task: str) -> None:
        q = self.query(
            {
                "status": task_status_value,
                "limit": int_range(1, 1000),
                "cursor": int_range(0, 10**9),
            }
        )
        await self.reply(
            self.runner.instances,
            execution_id,
            task,
            status=q.get("status"),
            cursor=q.get("cursor", 0),
            limit=q.get("limit", 100),
        )


class NotebookParametersHandler(TaskFlowHandler):
    """``GET /taskflow/notebooks/parameters?path=P``: a notebook's ``parameters`` cell,
    described (papermill's convention), so that forms can be built from it."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        q = self.query({"path": nonempty})
        if "path" not in q:
            raise problem("path", "required", "is required (a notebook under the root)")
        await self.reply(self.runner.notebook_parameters, q["path"])


class OpenAPIHandler(TaskFlowHandler):
    """``GET /taskflow/openapi.json``: the OpenAPI 3 description of these routes."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.query({})
        self.finish(json.dumps(openapi(self.base_url)))
