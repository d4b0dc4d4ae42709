"""431 for a request line or headers over 64 KiB, instead of a dropped connection.

Tornado reads a request's head up to its ``max_header_size`` (64 KiB) and, past it,
closes the connection without an answer; jupyter_server builds its ``HTTPServer``
without that option. So the limit moves: tornado reads heads up to 1 MiB (the
``HTTPServer``'s ``conn_params``, set once the server exists), and the first rule of the
application's router answers any request whose head is over 64 KiB with a JSON 431 before
a handler sees it. A head over 1 MiB still gets tornado's closed connection.
"""

from __future__ import annotations

import json
from typing import Any

from tornado import httputil
from tornado.routing import Matcher, Rule
from tornado.web import Application, RequestHandler

__all__ = ["MAX_HEADER_BYTES", "READ_HEADER_BYTES", "HeadersTooLarge", "install"]

MAX_HEADER_BYTES = 64 * 1024
READ_HEADER_BYTES = 1 << 20


def head_size(request: httputil.HTTPServerRequest) -> int:
    """Bytes of the request line and headers as sent (``Name: value\\r\\n`` each)."""
    line = len(request.method or "") + len(request.uri or "") + len(request.version) + 4
    return line + sum(len(k) + len(v) + 4 for k, v in request.headers.get_all())


class _HeadOver(Matcher):
    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        return {} if head_size(request) > MAX_HEADER_BYTES else None


class HeadersTooLarge(RequestHandler):
    """Answers every method with 431 (before any check of the request: its head is the
    problem, so neither XSRF nor auth is looked at)."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")

    def check_xsrf_cookie(self) -> None:
        """The refusal does not depend on the request's cookies."""

    def prepare(self) -> None:
        detail = (
            f"the request line and headers are {head_size(self.request)} bytes; "
            f"the limit is {MAX_HEADER_BYTES}"
        )
        self.set_status(431)
        self.set_header("Content-Type", "application/json")
        self.set_header("Connection", "close")
        body = {
            "message": detail,
            "reason": "Request Header Fields Too Large",
            "code": "headers_too_large",
            "errors": [{"path": "", "code": "headers_too_large", "detail": detail}],
        }
        self.finish(json.dumps(body))


def install(web_app: Application, http_server: Any = None) -> None:
    """Put the 431 rule first in ``web_app``; let ``http_server`` read heads up to
    ``READ_HEADER_BYTES`` (None: the server is not built yet, or is not ours)."""
    router = web_app.default_router
    if not any(isinstance(rule.matcher, _HeadOver) for rule in router.rules):
        router.rules.insert(0, router.process_rule(Rule(_HeadOver(), HeadersTooLarge)))
    params = getattr(http_server, "conn_params", None)
    if params is not None and (params.max_header_size or 0) < READ_HEADER_BYTES:
        params.max_header_size = READ_HEADER_BYTES
