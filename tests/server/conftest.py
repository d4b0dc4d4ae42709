"""Server fixtures: a real Jupyter server (pytest-jupyter) with the extension enabled,
a real SQLite file in ``tmp_path``, the thread executor, and ``base_url`` ``/a%40b/``.

pytest-jupyter's fixtures and hooks are imported here rather than declared in
``pytest_plugins`` so that its autouse fixtures (event loop, server cleanup) apply to
the server tests only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403
from traitlets.config import Config

from .helpers import until_live

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db" / "taskflow.db"


@pytest.fixture
def taskflow_config() -> dict[str, Any]:
    """Per-test overrides of ``TaskFlowApp`` traits (tests mutate it before the server)."""
    return {}


@pytest.fixture
def server_config() -> dict[str, Any]:
    """Per-test extra ``ServerApp`` traits."""
    return {}


@pytest.fixture
def jp_server_config(
    db_path: Path, taskflow_config: dict[str, Any], server_config: dict[str, Any]
) -> Config:
    return Config(
        {
            "ServerApp": {
                **server_config,
                # terminals' TermSocket lacks @ws_authenticated: with it, the auth warning
                # (an error here) would not be about our handlers
                "jpserver_extensions": {
                    "pytaskflow_jupyter": True,
                    "jupyter_server_terminals": False,
                },
                "allow_unauthenticated_access": False,
                "reraise_server_extension_failures": True,
            },
            "TaskFlowApp": {
                "db_path": str(db_path),
                "executor": "thread",
                "ws_poll_interval": 0.05,
                "adopt_interval": 0.1,
                "shutdown_timeout": 0.2,
                "heartbeat_interval": 0.5,
                **taskflow_config,
            },
        }
    )


class Api:
    """``jp_fetch`` that returns ``(status, json, headers)`` instead of raising."""

    def __init__(self, fetch: Any, app: Any) -> None:
        self._fetch, self.app = fetch, app

    async def __call__(
        self,
        method: str,
        *parts: str,
        body: Any = None,
        raw: bytes | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Any]:
        headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if data is None and method in ("POST", "PUT", "PATCH"):
            data = b""
        resp = await self._fetch(
            *parts,
            method=method,
            body=data,
            params=params,
            headers=headers,
            raise_error=False,
            allow_nonstandard_methods=True,
        )
        text = resp.body.decode() if resp.body else ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return resp.code, payload, resp.headers

    async def submit(self, definition: dict[str, Any], **kw: Any) -> dict[str, Any]:
        status, body, _ = await self("POST", "workflows", body=definition, **kw)
        assert status == 200, body
        return body

    async def wait(
        self,
        execution_id: str,
        statuses=("completed", "failed", "cancelled"),
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Poll ``GET /executions/{id}`` until the status is one of ``statuses``."""
        import asyncio

        deadline = time.monotonic() + timeout
        while True:
            status, body, _ = await self("GET", "executions", execution_id)
            assert status == 200, body
            if body["status"] in statuses:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"execution stuck in {body['status']}: {body}")
            await asyncio.sleep(0.02)


@pytest.fixture
def api(jp_fetch: Any, jp_serverapp: Any, jp_asyncio_loop: Any) -> Api:
    """The started server (start hook run, as ``jupyter server`` does) and a client."""
    jp_asyncio_loop.run_until_complete(jp_serverapp._post_start())
    return Api(jp_fetch, jp_serverapp)


@pytest.fixture
def taskflow_app(api: Api) -> Any:
    """The running ``TaskFlowApp`` instance."""
    return api.app.web_app.settings["taskflow"]


@pytest.fixture(autouse=True)
def jp_server_cleanup(jp_asyncio_loop: Any) -> Any:
    """pytest-jupyter's cleanup, bounded: a shutdown that hangs fails with the stuck tasks."""
    import asyncio

    from jupyter_server.serverapp import ServerApp

    yield
    app = ServerApp.instance()

    async def cleanup() -> None:
        try:
            await asyncio.wait_for(app._cleanup(), 30)
        except asyncio.TimeoutError:
            stuck = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in stuck:
                t.print_stack()
            raise AssertionError(f"server shutdown hung; tasks: {stuck}") from None

    try:
        jp_asyncio_loop.run_until_complete(cleanup())
    finally:
        if hasattr(app, "kernel_manager"):
            app.kernel_manager.context.destroy()
        ServerApp.clear_instance()


@pytest.fixture
def ws_connect(jp_ws_fetch: Any, api: Api) -> Any:
    """``jp_ws_fetch("ws", ...)`` that returns once the new client is live."""
    hub = api.app.web_app.settings["taskflow"].hub

    async def connect(**kwargs: Any) -> Any:
        live = sum(c.live for c in hub.clients)
        ws = await jp_ws_fetch("ws", **kwargs)
        await until_live(hub, live + 1)
        return ws

    return connect
