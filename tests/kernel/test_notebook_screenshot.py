"""The getting-started notebook run in a real JupyterLab, in Debian's Chromium.

Starts ``jupyter lab`` (token auth, a free port, its own database, settings and root
directory holding a copy of ``notebooks/getting-started.ipynb``), opens the notebook,
runs all cells, waits until the three execution widgets show their final states, checks
what they draw (the labextension's widget module, as ``jlpm build`` last wrote it: the
panel's execution view), and saves screenshots to ``ci-artifacts/screenshots/``:

* ``getting-started.png``: the first run's widget (completed),
* ``getting-started-failure.png``: the failed run and the retry that fixed it.

Reproduce: ``python -m pytest tests/kernel/test_notebook_screenshot.py`` (needs
``/usr/bin/chromium``; Playwright's own browser download is never used).
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chromium import CHROMIUM, CHROMIUM_ARGS, require_chromium

from .conftest import REPO, child_env, wait_until

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO / "ci-artifacts" / "screenshots"
NOTEBOOK = "getting-started.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(settings: Path) -> None:
    """Render every cell (no virtual scrolling) and keep news toasts off the screenshot."""
    for plugin, values in {
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)  # never edit the original
    (tmp / "config" / "labconfig").mkdir(parents=True)
    (tmp / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    _settings(tmp / "settings")
    port, token = _free_port(), secrets.token_hex(16)
    # the fresh build of the labextension (its widget module), not an install's older copy
    (tmp / "data" / "labextensions").mkdir(parents=True)
    built = REPO / "pytaskflow_jupyter" / "labextension"
    (tmp / "data" / "labextensions" / "pytaskflow-jupyter").symlink_to(built)
    env = child_env(
        JUPYTER_PATH=str(tmp / "data"),
        PYTASKFLOW_DB=str(tmp / "taskflow.db"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
    )
    log_path = tmp / "jupyter-lab.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--allow-root",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError("jupyter lab exited:\n" + log_path.read_text()[-3000:])
        request = urllib.request.Request(
            url + "api/status", headers={"Authorization": f"token {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                return True
        except OSError:
            return False

    try:
        wait_until(up, timeout=120, interval=0.3)
        yield {"url": url, "token": token}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, SCREENSHOTS / "getting-started-jupyter-lab.log")


ALL_RAN = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.sessionContext.session) return false;
    const kernel = panel.sessionContext.session.kernel;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    return kernel && kernel.status === 'idle' && cells.length > 0 &&
        cells.every(c => c.model.executionCount !== null);
}"""

WIDGET = ".jp-TaskflowWidget .jp-TaskflowExecution"
FINAL_STATES = f"""() => Array.from(document.querySelectorAll(
    '{WIDGET} .jp-TaskflowExecution-title [data-status]')).map(b => b.dataset.status)"""


def test_getting_started_in_jupyterlab_shows_the_live_widget(lab):
    from playwright import sync_api  # in the test extra

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(120_000)
        try:
            page.goto(f"{lab['url']}lab/tree/{NOTEBOOK}?token={lab['token']}")
            page.wait_for_function("""() => window.jupyterapp && window.jupyterapp.shell
                .currentWidget && window.jupyterapp.shell.currentWidget.sessionContext &&
                window.jupyterapp.shell.currentWidget.sessionContext.session &&
                window.jupyterapp.shell.currentWidget.sessionContext.session.kernel &&
                window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status
                === 'idle'""")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(ALL_RAN, polling=500)
            # the widgets keep updating after the cells end: wait for their final states
            page.wait_for_function(
                f"""() => JSON.stringify(({FINAL_STATES})()) ===
                '["completed","failed","completed"]'""",
                polling=250,
            )
            page.evaluate(f"""() => document.querySelectorAll('{WIDGET}')[0]
                .closest('.jp-Cell').scrollIntoView({{block: 'start'}})""")
            page.screenshot(path=str(SCREENSHOTS / "getting-started.png"))
            page.evaluate(f"""() => document.querySelectorAll('{WIDGET}')[1]
                .closest('.jp-Cell').scrollIntoView({{block: 'start'}})""")
            page.screenshot(path=str(SCREENSHOTS / "getting-started-failure.png"))
            widgets = page.locator(WIDGET)
            assert widgets.count() == 3
            first, failed, fixed = (widgets.nth(i) for i in range(3))
            assert first.locator("g.jp-TaskflowDag-node").count() == 6
            assert first.locator('g.jp-TaskflowDag-node[data-status="completed"]').count() == 6
            assert (
                failed.locator('g.jp-TaskflowDag-node[data-task="check"]').get_attribute(
                    "data-status"
                )
                == "failed"
            )
            assert (
                failed.locator('tr[data-task="report"]').get_attribute("data-status") == "skipped"
            )
            table = failed.locator("table.jp-TaskflowExecution-tasks").inner_text()
            assert "ValueError: mean" in table
            meta = failed.locator(".jp-TaskflowExecution-meta").inner_text()
            assert "completed \u00b7 1 skipped \u00b7 1 failed" in meta, meta
            segments = failed.locator(":scope > .jp-TaskflowStatusBar > [data-segment]")
            assert segments.count() == 3  # completed, skipped, failed: not wholly red
            assert "retry of" in fixed.locator(".jp-TaskflowExecution-meta").inner_text()

        finally:
            browser.close()
    assert (SCREENSHOTS / "getting-started.png").stat().st_size > 10_000
    assert not [e for e in errors if "widget" in e.lower() or "taskflow" in e.lower()], errors
