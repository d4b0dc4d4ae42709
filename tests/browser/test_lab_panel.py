"""The TaskFlow panel in a real JupyterLab, driven through Debian's Chromium.

One `jupyter lab` subprocess (non-root base_url, token auth, its own database
and root directory) serves the whole module. The scenario follows a user: the
panel is open and empty; a workflow with a branch and a failing task is posted
over REST by "someone else"; the panel shows the execution running, then
failed, without a reload (only /ws can tell it); the execution view shows the
DAG, the task table and the failing task's logs; the user fixes the cause and
clicks Retry; the new execution appears and completes.

Screenshots go to ci-artifacts/screenshots/ (reproduce with
`python -m pytest tests/browser`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS, require_chromium

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "ci-artifacts" / "screenshots"
BASE_URL = "/lab-test/"


@dataclass
class Lab:
    """A `jupyter lab` subprocess; `restart()` keeps its port, token and database."""

    cmd: list[str]
    env: dict[str, str]
    url: str  # http://127.0.0.1:<port>/lab-test/
    token: str
    root: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.root.parent
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited early:\n{self.tail()}")
            try:
                self.api("GET", "api/status")
                return
            except (OSError, AssertionError):
                time.sleep(0.3)
        raise AssertionError(f"jupyter lab not ready after {timeout}s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def api(self, method: str, path: str, body: object | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:2000]!r}") from exc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def new_lab(tmp: Path, root: Path, *extra: str, fresh_build: bool = False) -> Lab:
    """A `jupyter lab` (not started) with its own database, config, runtime dir and port
    under ``tmp``, serving ``root``. ``fresh_build``: serve the labextension that
    `jlpm build` last wrote (through JUPYTER_PATH), not an install's older copy."""
    token = secrets.token_hex(16)
    port = _free_port()
    env = {
        **os.environ,
        "PYTASKFLOW_DB": str(tmp / "taskflow.db"),
        # A user config or a saved workspace of the machine must not leak in.
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
    }
    built = REPO / "pytaskflow_jupyter" / "labextension"
    if fresh_build and (built / "package.json").exists():
        (tmp / "data" / "labextensions").mkdir(parents=True)
        (tmp / "data" / "labextensions" / "pytaskflow-jupyter").symlink_to(built)
        env["JUPYTER_PATH"] = os.pathsep.join(
            p for p in (str(tmp / "data"), os.environ.get("JUPYTER_PATH")) if p
        )
    # No "get notified about Jupyter news?" toast over the screenshots.
    (tmp / "config" / "labconfig").mkdir(parents=True)
    (tmp / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    cmd = [
        # `-m jupyterlab` (= `jupyter lab`) binds the server to this interpreter's environment.
        sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
        f"--port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
        f"--ServerApp.base_url={BASE_URL}",
        f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        *extra,
    ]  # fmt: skip
    return Lab(
        cmd=cmd,
        env=env,
        url=f"http://127.0.0.1:{port}{BASE_URL}",
        token=token,
        root=root,
        log=tmp / "jupyter-lab.log",
    )


def checkout_lab(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Lab]:
    """A Lab serving this checkout: its package (``PYTHONPATH``, whatever an install's
    path says) and the labextension `jlpm build` last wrote; its log is kept with the
    screenshots as ``<name>-jupyter-lab.log``. For a module's ``lab`` fixture to yield
    from."""
    require_chromium()
    tmp = tmp_path_factory.mktemp(f"lab-{name}")
    root = tmp / "root"
    root.mkdir()
    lab = new_lab(tmp, root, fresh_build=True)
    lab.env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p
    )
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if lab.log.exists():
            shutil.copy(lab.log, SCREENSHOTS / f"{name}-jupyter-lab.log")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    lab = new_lab(tmp, root)
    try:
        lab.start()
        # Fail here, with the server log, when the server extension did not load.
        try:
            lab.api("GET", "workflows")
        except AssertionError as exc:
            raise AssertionError(
                f"the TaskFlow REST API is not served: {exc}\n{lab.tail()}"
            ) from exc
        yield lab
    finally:
        lab.stop()
        # Keep the server log with the screenshots: it explains a red CI run.
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if lab.log.exists():
            shutil.copy(lab.log, SCREENSHOTS / "jupyter-lab.log")


@pytest.fixture
def page(lab: Lab) -> Iterator[object]:
    from playwright import sync_api  # in the test extra

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.ws_urls = []  # type: ignore[attr-defined]
        page.on("websocket", lambda ws: page.ws_urls.append(ws.url))  # type: ignore[attr-defined]
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
        assert not [e for e in errors if "taskflow" in e.lower()], errors


def _workflow(flag: Path) -> dict[str, object]:
    """A branch, a task that fails until `flag` exists, a skipped path, a join."""
    return {
        "id": "lab_demo",
        "name": "Lab demo",
        "description": "browser test: branch + failure + retry",
        "tasks": [
            {
                "name": "extract",
                "type": "python",
                # Slow enough that the panel is seen in the running state.
                "params": {"code": "import time\ntime.sleep(2)\nresult = 21"},
            },
            {
                "name": "choose",
                "type": "branch",
                "params": {"next": ["transform"]},
                "dependencies": ["extract"],
            },
            {
                "name": "transform",
                "type": "python",
                "params": {
                    "code": (
                        "import os\n"
                        "print('checking the flag file')\n"
                        f"assert os.path.exists({str(flag)!r}), 'flag file missing'\n"
                        "result = 42"
                    )
                },
                "dependencies": ["choose"],
            },
            {
                "name": "archive",
                "type": "python",
                "params": {"code": "result = 'not selected'"},
                "dependencies": ["choose"],
            },
            {
                "name": "report",
                "type": "python",
                "params": {"code": "print('report done')\nresult = 'ok'"},
                "dependencies": ["transform", "archive"],
            },
        ],
    }


def _open_lab(page, lab: Lab) -> None:  # type: ignore[no-untyped-def]
    # `reset`: start from the default layout, not the one an earlier test left.
    page.goto(f"{lab.url}lab?reset&token={lab.token}")
    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="taskflow-panel"]')
    tab.wait_for(timeout=60_000)
    page.locator(".jp-LabShell:not(.jp-mod-devMode) #jp-main-dock-panel").wait_for()
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()  # clicking the current tab would close the sidebar
    page.locator("#taskflow-panel").wait_for(state="visible")


def test_panel_shows_failure_live_and_retry_completes(lab: Lab, page) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel = page.locator("#taskflow-panel")
    _open_lab(page, lab)

    # Empty state first: nothing registered yet, and the stream is live.
    panel.get_by_text("No workflows yet").wait_for()
    panel.locator(".jp-TaskflowPanel-live.jp-mod-open").wait_for()

    # Someone else posts a workflow over REST; the open panel must follow.
    flag = lab.root / "ok"
    created = lab.api("POST", "workflows", _workflow(flag))
    assert isinstance(created, dict), created
    first = created["id"]
    assert re.fullmatch(r"exec_[0-9a-f]+", first), first
    item = panel.locator(f'.jp-TaskflowPanel-execution[data-execution-id="{first}"]')
    item.and_(page.locator('[data-status="running"]')).wait_for()
    panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="lab_demo"]').wait_for()
    item.and_(page.locator('[data-status="failed"]')).wait_for(timeout=60_000)
    panel.screenshot(path=str(SCREENSHOTS / "panel-failed.png"))

    # The execution view: graph, table and the failing task's logs.
    item.click()
    view = page.locator(f"#taskflow-execution-{first} .jp-TaskflowExecution")
    view.wait_for(state="visible")
    node_status = {
        "extract": "completed",
        "choose": "completed",
        "transform": "failed",
        "archive": "skipped",
        "report": "skipped",
    }
    for name, status in node_status.items():
        view.locator(f'.jp-TaskflowDag-node[data-task="{name}"][data-status="{status}"]').wait_for()
        view.locator(f'tr[data-task="{name}"][data-status="{status}"]').wait_for()
    assert view.locator(".jp-TaskflowDag-edge").count() == 5
    row = view.locator('tr[data-task="transform"]')
    assert "flag file missing" in row.inner_text()
    row.click()
    logs = view.locator('.jp-TaskflowExecution-logs[data-task="transform"]')
    logs.get_by_text("checking the flag file").first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "execution-failed.png"))

    # Fix the cause, then Retry: a new execution that reruns the failed part.
    flag.write_text("ok")
    view.locator('button[data-action="retry"]').click()
    newer = panel.locator(
        f'.jp-TaskflowPanel-execution[data-workflow-id="lab_demo"]'
        f':not([data-execution-id="{first}"])'
    )
    newer.and_(page.locator('[data-status="completed"]')).wait_for(timeout=60_000)
    second = newer.first.get_attribute("data-execution-id")
    assert second and second != first

    # Retry opened the new execution's view; it went green live.
    retry_view = page.locator(f"#taskflow-execution-{second} .jp-TaskflowExecution")
    retry_view.wait_for(state="visible")
    for name, status in {**node_status, "transform": "completed", "report": "completed"}.items():
        retry_view.locator(
            f'.jp-TaskflowDag-node[data-task="{name}"][data-status="{status}"]'
        ).wait_for()
    page.screenshot(path=str(SCREENSHOTS / "execution-retried.png"))
    panel.screenshot(path=str(SCREENSHOTS / "panel-retried.png"))

    # The server agrees with what the browser shows.
    detail = lab.api("GET", f"executions/{second}")
    assert isinstance(detail, dict)
    assert detail["status"] == "completed"
    assert item.get_attribute("data-status") == "failed"


def test_panel_reconnects_with_since_after_a_server_restart(lab: Lab, page) -> None:  # type: ignore[no-untyped-def]
    panel = page.locator("#taskflow-panel")
    live = panel.locator(".jp-TaskflowPanel-live.jp-mod-open")
    _open_lab(page, lab)
    live.wait_for()
    task = {"name": "only", "type": "python", "params": {"code": "result = 1"}}
    wf = {"id": "reconnect_demo", "name": "Reconnect demo", "tasks": [task]}
    first = lab.api("POST", "workflows", wf)
    assert isinstance(first, dict)
    done = '[data-status="completed"]'
    panel.locator(f'[data-execution-id="{first["id"]}"]{done}').wait_for(timeout=60_000)

    lab.restart()

    # The page saw the drop and came back on its own, resuming after the last seq.
    def ours() -> list[str]:
        return [u for u in page.ws_urls if re.search(rf"{re.escape(BASE_URL)}ws(\?|$)", u)]

    deadline = time.monotonic() + 60
    while not any(re.search(r"[?&]since=\d+", u) for u in ours()[1:]):
        assert time.monotonic() < deadline, f"no reconnect with since=: {ours()}"
        page.wait_for_timeout(250)
    assert "since=" not in ours()[0], ours()
    live.wait_for(timeout=60_000)

    again = lab.api("POST", "workflows/reconnect_demo/executions", {})
    assert isinstance(again, dict)
    panel.locator(f'[data-execution-id="{again["id"]}"]{done}').wait_for(timeout=60_000)


def test_launcher_and_palette_commands(lab: Lab, page) -> None:  # type: ignore[no-untyped-def]
    task = {"name": "only", "type": "python", "params": {"code": "result = 1"}}
    lab.api("POST", "workflows", {"id": "palette_demo", "name": "Palette demo", "tasks": [task]})
    _open_lab(page, lab)
    page.locator(".jp-Launcher .jp-LauncherCard", has_text="TaskFlow").wait_for()

    # Run a workflow from the palette: a dialog asks which one, then its view opens.
    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#command-palette")
    palette.locator("input").fill("TaskFlow")
    for label in ("Open TaskFlow Panel", "Run TaskFlow Workflow…", "Open TaskFlow Execution…"):
        palette.locator(".lm-CommandPalette-item", has_text=label).wait_for()
    palette.locator(".lm-CommandPalette-item", has_text="Run TaskFlow Workflow…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select").select_option("palette_demo")
    dialog.locator(".jp-mod-accept").click()
    view = page.locator(".jp-TaskflowExecution", has=page.locator("h2", has_text="Palette demo"))
    view.locator('.jp-TaskflowExecution-title [data-status="completed"]').wait_for(timeout=60_000)
    runs = lab.api("GET", "executions?workflow_id=palette_demo")
    assert isinstance(runs, list) and len(runs) == 2, runs


def test_a_large_listing_reaches_the_panel_gzipped(lab: Lab, page) -> None:  # type: ignore[no-untyped-def]
    """``GET /workflows`` over 32 KiB goes gzipped to a browser (docs/rest.md): what
    Chromium asks for it, gets and decodes, and the Run dialog lists what it read."""
    root = {"name": "root", "params": {"code": "result = 1"}}
    leaves = [
        {"name": f"leaf_{i:03d}", "dependencies": ["root"], "params": {"code": "result = 1"}}
        for i in range(400)
    ]
    lab.api("PUT", "workflows/big_listing", {"name": "Big listing", "tasks": [root, *leaves]})
    _open_lab(page, lab)
    got = page.evaluate(
        """async ([url, token]) => {
            const r = await fetch(url + 'workflows', {headers: {Authorization: 'token ' + token}});
            const listing = await r.json();
            const big = listing.find(w => w.id === 'big_listing');
            return [r.status, r.headers.get('content-encoding'), big && big.tasks.length];
        }""",
        [lab.url, lab.token],
    )
    assert got == [200, "gzip", 401], got
    page.keyboard.press("Control+Shift+C")
    palette = page.locator("#command-palette")
    palette.locator("input").fill("Run TaskFlow")
    palette.locator(".lm-CommandPalette-item", has_text="Run TaskFlow Workflow…").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select option[value='big_listing']").wait_for(state="attached")
    dialog.locator(".jp-mod-reject").click()


def test_cancel_from_the_execution_view(lab: Lab, page) -> None:  # type: ignore[no-untyped-def]
    slow = {"name": "slow", "type": "python", "params": {"code": "import time\ntime.sleep(120)"}}
    after = {"name": "after", "type": "python", "dependencies": ["slow"]}
    _open_lab(page, lab)
    created = lab.api("POST", "workflows", {"name": "Cancel demo", "tasks": [slow, after]})
    assert isinstance(created, dict)
    panel = page.locator("#taskflow-panel")
    item = panel.locator(f'[data-execution-id="{created["id"]}"]')
    item.and_(page.locator('[data-status="running"]')).wait_for(timeout=60_000)
    item.click()
    view = page.locator(f"#taskflow-execution-{created['id']} .jp-TaskflowExecution")
    view.locator('.jp-TaskflowDag-node[data-task="slow"][data-status="running"]').wait_for()
    assert view.locator('button[data-action="retry"]').is_disabled()
    view.locator('button[data-action="cancel"]').click()
    view.locator('.jp-TaskflowExecution-title [data-status="cancelled"]').wait_for(timeout=60_000)
    item.and_(page.locator('[data-status="cancelled"]')).wait_for()
    assert view.locator('button[data-action="cancel"]').is_disabled()
    # Retry is enabled once the view's last read after the cancel is in (it is busy
    # until then)
    view.locator('button[data-action="retry"]:not([disabled])').wait_for(timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "execution-cancelled.png"))
