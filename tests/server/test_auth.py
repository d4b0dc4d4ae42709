"""Security: no route answers without authentication, every route is authorized on the
``taskflow`` resource (``execute`` for the POSTs that run code), browsers need cookie +
XSRF, and a foreign Origin cannot open ``/ws`` with a browser's cookie."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import pytest
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.utils import JupyterServerAuthWarning
from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

from pytaskflow_jupyter.server.app import default_handlers

from .helpers import REPO, task, until_live, wf

# (method, path, action the authorizer must be asked for)
ROUTES = [
    ("GET", "workflows", "read"),
    ("POST", "workflows", "execute"),
    ("GET", "workflows/w", "read"),
    ("PUT", "workflows/w", "execute"),
    ("DELETE", "workflows/w", "write"),
    ("POST", "workflows/w/schedule/pause", "write"),
    ("POST", "workflows/w/schedule/resume", "execute"),
    ("POST", "workflows/w/executions", "execute"),
    ("GET", "workflows/w/revisions", "read"),
    ("GET", "executions", "read"),
    ("GET", "executions/exec_1", "read"),
    ("POST", "executions/exec_1/cancel", "write"),
    ("POST", "executions/exec_1/retry", "execute"),
    ("GET", "executions/exec_1/compare/exec_2", "read"),
    ("GET", "executions/exec_1/tasks/a/logs", "read"),
    ("GET", "executions/exec_1/tasks/a/instances", "read"),
    ("GET", "taskflow/openapi.json", "read"),
    ("GET", "taskflow/notebooks/parameters?path=a.ipynb", "read"),
]
BODY = json.dumps(wf("w", task("a"))).encode()


def test_the_route_table_covers_every_handler_and_verb():
    """Adding a route or a verb without adding it here (and so to the auth tests) fails."""
    declared = set()
    for pattern, handler in default_handlers():
        if pattern == "/ws":
            continue
        for verb in ("get", "post", "delete", "put", "patch"):
            if verb in vars(handler):
                declared.add((verb.upper(), pattern))
    tested = set()
    for method, path, _ in ROUTES:
        for pattern, _handler in default_handlers():
            if re.fullmatch(pattern, "/" + path.partition("?")[0]):
                tested.add((method, pattern))
    assert tested == declared


async def _fetch(client, url: str, method: str, headers: dict[str, str], body: bytes | None = None):
    if method in ("POST", "PUT") and body is None:
        body = BODY
    return await client.fetch(
        url,
        method=method,
        headers=headers,
        body=body,
        raise_error=False,
        follow_redirects=False,
        allow_nonstandard_methods=True,
    )


@pytest.mark.parametrize("auth", [None, "token wrong", "Bearer x", "token "])
@pytest.mark.parametrize(("method", "path", "action"), ROUTES)
async def test_without_valid_token_every_route_is_403(
    api, http_server_client, jp_base_url, method, path, action, auth
):
    await api.submit(wf("w", task("a")))
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    resp = await _fetch(http_server_client, jp_base_url + path, method, headers)
    assert resp.code == 403, resp.body
    body = json.loads(resp.body)
    assert body["code"] == "forbidden" and set(body) == {"message", "reason", "code", "errors"}
    # and nothing happened
    listed = (await api("GET", "executions"))[1]
    assert len(listed) == 1


async def test_ws_without_token_is_403(api, jp_ws_fetch):
    for auth in ("", "token wrong"):
        with pytest.raises(HTTPClientError) as info:
            await jp_ws_fetch("ws", headers={"Authorization": auth})
        assert info.value.code == 403


async def test_token_in_query_is_jupyters_and_not_an_unknown_parameter(
    api, http_server_client, jp_base_url, jp_serverapp
):
    token = jp_serverapp.identity_provider.token
    resp = await http_server_client.fetch(f"{jp_base_url}executions?token={token}&limit=5")
    assert resp.code == 200 and json.loads(resp.body) == []


class RecordingAuthorizer(Authorizer):
    """Allows everything but what ``deny`` names; records every taskflow decision."""

    calls: list[tuple[str, str]] = []
    deny: set[str] = set()

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        if resource == "taskflow":
            self.calls.append((handler.request.method, action))
            return action not in self.deny
        return True


@pytest.fixture
def server_config():
    RecordingAuthorizer.calls = []
    RecordingAuthorizer.deny = set()
    return {"authorizer_class": RecordingAuthorizer}


@pytest.mark.parametrize(("method", "path", "action"), ROUTES)
async def test_each_route_asks_for_its_action(
    api, http_server_client, jp_base_url, jp_auth_header, method, path, action
):
    RecordingAuthorizer.calls.clear()
    headers = {**jp_auth_header, "Content-Type": "application/json"}
    await _fetch(http_server_client, jp_base_url + path, method, headers)
    assert RecordingAuthorizer.calls == [(method, action)]


@pytest.mark.parametrize("denied", ["read", "write", "execute"])
async def test_denied_actions_are_403(
    api, http_server_client, jp_base_url, jp_auth_header, jp_ws_fetch, denied
):
    RecordingAuthorizer.deny = {denied}
    headers = {**jp_auth_header, "Content-Type": "application/json"}
    for method, path, action in ROUTES:
        resp = await _fetch(http_server_client, jp_base_url + path, method, headers)
        if action == denied:
            assert resp.code == 403, (method, path)
            assert json.loads(resp.body)["code"] == "forbidden"
        else:
            assert resp.code != 403, (method, path)
    if denied == "read":
        with pytest.raises(HTTPClientError) as info:
            await jp_ws_fetch("ws")
        assert info.value.code == 403
    else:
        (await jp_ws_fetch("ws")).close()
    assert (await api("GET", "executions"))[0] == (403 if denied == "read" else 200)


# -- browsers: login cookie + XSRF --------------------------------------------------------------
class Browser:
    """A cookie jar over the test client, logged in through Jupyter's login form."""

    def __init__(self, client: Any, base_url: str) -> None:
        self.client, self.base_url = client, base_url
        self.cookies: dict[str, str] = {}

    def _remember(self, resp: Any) -> None:
        for header in resp.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {"Cookie": jar, **(extra or {})}

    async def login(self, token: str) -> None:
        resp = await self.client.fetch(
            self.base_url + "login", headers=self.headers(), raise_error=False
        )
        self._remember(resp)
        form = urlencode({"_xsrf": self.cookies["_xsrf"], "password": token})
        resp = await self.client.fetch(
            self.base_url + "login",
            method="POST",
            body=form,
            headers=self.headers(),
            follow_redirects=False,
            raise_error=False,
        )
        assert resp.code == 302, resp.body
        self._remember(resp)

    async def fetch(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        resp = await self.client.fetch(
            self.base_url + path,
            method=method,
            body=body,
            headers=self.headers(headers),
            raise_error=False,
            follow_redirects=False,
            allow_nonstandard_methods=True,
        )
        self._remember(resp)
        return resp


async def test_browser_needs_cookie_and_xsrf(api, http_server_client, jp_base_url, jp_serverapp):
    browser = Browser(http_server_client, jp_base_url)
    anonymous = await browser.fetch("GET", "workflows")
    assert anonymous.code == 403
    await browser.login(jp_serverapp.identity_provider.token)
    json_type = {"Content-Type": "application/json"}
    assert (await browser.fetch("GET", "workflows")).code == 200
    # a POST with the cookie alone is a possible CSRF: refused
    no_xsrf = await browser.fetch("POST", "workflows", body=BODY, headers=json_type)
    assert no_xsrf.code == 403
    assert "_xsrf" in json.loads(no_xsrf.body)["message"]
    wrong = await browser.fetch(
        "POST", "workflows", body=BODY, headers={**json_type, "X-XSRFToken": "2|00|11|22"}
    )
    assert wrong.code == 403
    xsrf = {**json_type, "X-XSRFToken": browser.cookies["_xsrf"]}
    ok = await browser.fetch("POST", "workflows", body=BODY, headers=xsrf)
    assert ok.code == 200, ok.body
    execution = json.loads(ok.body)
    await api.wait(execution["id"])
    # an HTML form can send the XSRF field but never application/json: 415
    form = await browser.fetch(
        "POST",
        f"workflows?_xsrf={browser.cookies['_xsrf']}",
        body=BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.code == 415
    assert (await browser.fetch("DELETE", "workflows/w")).code == 403
    assert (await browser.fetch("DELETE", "workflows/w", headers=xsrf)).code == 204
    # a foreign page cannot use the cookie on the REST API either
    foreign = await browser.fetch("GET", "workflows", headers={"Origin": "http://evil.example"})
    assert foreign.code in (403, 404)


async def test_ws_refuses_a_foreign_origin_with_a_browser_cookie(
    api, http_server_client, jp_base_url, jp_serverapp, jp_http_port
):
    browser = Browser(http_server_client, jp_base_url)
    await browser.login(jp_serverapp.identity_provider.token)
    url = f"ws://127.0.0.1:{jp_http_port}{jp_base_url}ws"  # the login cookie is per host
    from tornado.httpclient import HTTPRequest

    evil = HTTPRequest(url, headers=browser.headers({"Origin": "http://evil.example"}))
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(evil)
    assert info.value.code == 403
    same = HTTPRequest(url, headers=browser.headers({"Origin": f"http://127.0.0.1:{jp_http_port}"}))
    ws = await websocket_connect(same)
    await until_live(api.app.web_app.settings["taskflow"].hub, 1)
    execution = await api.submit(wf("cookie ws", task("a")))
    message = json.loads(await ws.read_message())
    assert message["execution_id"] == execution["id"]
    ws.close()
    anonymous = HTTPRequest(url, headers={"Origin": f"http://127.0.0.1:{jp_http_port}"})
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(anonymous)
    assert info.value.code == 403


# -- every handler is decorated: the check_auth script, and a control that it can fail -----------
def test_check_auth_script_passes():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_auth.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "routes are authenticated" in proc.stdout


class Undecorated(web.RequestHandler):
    def get(self) -> None:  # no @web.authenticated: the check must flag it
        self.finish("data")


async def test_jupyter_flags_an_undecorated_handler(api, jp_serverapp):
    """Control for the check above: Jupyter's warning does fire for a bare handler."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jp_serverapp.web_app.add_handlers(".*$", [("/undecorated", Undecorated)])
    assert any(
        issubclass(w.category, JupyterServerAuthWarning) and "undecorated" in str(w.message)
        for w in caught
    )
