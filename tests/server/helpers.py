"""Helpers of the server tests: definition builders and a live `jupyter taskflow`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def wf(name: str, *tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "tasks": list(tasks), **extra}


def task(name: str, *deps: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    params = dict(extra.pop("params", {}))
    if code is not None:
        params["code"] = code
    return {
        "name": name,
        "type": extra.pop("type", "python"),
        "params": params,
        "dependencies": list(deps),
        **extra,
    }


# -- a real `jupyter taskflow` in a subprocess (schemathesis, bench) --------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(
    url: str, token: str, method: str = "GET", body: Any = None, timeout: float = 30
) -> tuple[int, Any]:
    """One JSON request with a token; ``(status, decoded body)`` (text when not JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")[:500]


class LiveServer:
    """``jupyter taskflow`` started as a user would, on a free port, with a token."""

    def __init__(
        self,
        tmp: Path,
        *,
        token: str = "secret-token",
        base_url: str = "/",
        extra: list[str] | None = None,
    ) -> None:
        self.port, self.token, self.base_url = free_port(), token, base_url
        self.url = f"http://127.0.0.1:{self.port}{base_url.rstrip('/')}"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_DATA_DIR": str(tmp / "data"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "PYTASKFLOW_DB": str(tmp / "live.db"),
        }
        env.pop("JUPYTER_PORT", None)
        self.log = open(tmp / "server.log", "wb")  # noqa: SIM115
        cmd = [
            sys.executable,
            "-c",
            "from pytaskflow_jupyter.server.app import main; main()",
            "--allow-root",
            f"--port={self.port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.base_url={base_url}",
            f"--ServerApp.root_dir={tmp}",
            "--ServerApp.jpserver_extensions=pytaskflow_jupyter=True",
            "--TaskFlowApp.executor=thread",
            *(extra or []),
        ]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=tmp
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                self.get("/workflows")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return http_json(self.url + path, self.token, method, body)

    def get(self, path: str) -> Any:
        _status, body = self.request("GET", path)
        return body

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def until_live(hub: Any, count: int) -> None:
    """Wait until ``count`` /ws clients have joined the live stream (after their replay),
    so that a test's next action is seen by them; fails instead of hanging."""
    import asyncio

    for _ in range(2000):
        if sum(c.live for c in hub.clients) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{count} live clients expected, {len(hub.clients)} attached")


def store_with_events(path: Path, count: int) -> Any:
    """A store at ``path`` holding workflow ``w`` (one task ``a``), execution ``exec_x``
    and ``count`` stored ``task_started`` events of it (seq 1..count): what the hub
    tests replay and fan out."""
    from pytaskflow_jupyter.events import make_event
    from pytaskflow_jupyter.store import Store
    from pytaskflow_jupyter.transitions import Changes
    from pytaskflow_jupyter.validation import parse_workflow

    store = Store(path)
    store.save_workflow(parse_workflow(wf("w", task("a"))))
    store.create_execution("exec_x", "w", 1)
    events = [make_event("task_started", "exec_x", "w", "running", "a") for _ in range(count)]
    store.commit("exec_x", Changes(events=events))
    return store
