"""Schedules in the TaskFlow panel, in a real JupyterLab through Debian's Chromium.

Workflows are registered with a schedule over REST (``PUT /workflows/{id}``, which runs
nothing): one every hour, one on a cron with a time zone. The panel shows each
schedule in words with its next run; "Pause schedule" pauses it on the server (no next
run) and "Resume schedule" brings the next run back. A workflow every 2 seconds is fired
by the server on its own: its executions appear in the list with a "scheduled" badge,
which the execution view shows too. Last, slots that fall while no server runs are
reported in a banner after a restart, until dismissed.

The server is test_lab_panel's, serving the labextension as this checkout last built it
(``jlpm build``, like test_notebook_tasks), with ``TaskFlowApp.schedule_grace`` short
enough that a restart misses slots. Screenshots: ci-artifacts/screenshots/lab-schedules*.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.browser.test_lab_panel import (
    SCREENSHOTS,
    Lab,
    _open_lab,
    checkout_lab,
    page,  # noqa: F401  (the fixture, with this module's lab)
)

pytestmark = pytest.mark.browser

TASK = {"name": "only", "type": "python", "params": {"code": "result = 1"}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from checkout_lab(tmp_path_factory, "schedules")


def _put(lab: Lab, wf_id: str, name: str, schedule: dict[str, object]) -> dict[str, object]:
    wf = lab.api("PUT", f"workflows/{wf_id}", {"name": name, "tasks": [TASK], "schedule": schedule})
    assert isinstance(wf, dict) and wf["id"] == wf_id, wf
    return wf


def _get(lab: Lab, wf_id: str) -> dict[str, object]:
    wf = lab.api("GET", f"workflows/{wf_id}")
    assert isinstance(wf, dict), wf
    return wf


def _poll(fn, what: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    """``fn()`` once it is truthy, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.2)
    return value


def test_schedule_words_next_run_and_pause_resume(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    hourly = _put(lab, "hourly", "Hourly", {"every": 3600})
    nightly = _put(lab, "nightly", "Nightly", {"cron": "30 2 * * 1-5", "timezone": "Europe/Paris"})
    plain = lab.api("PUT", "workflows/plain", {"name": "Plain", "tasks": [TASK]})
    assert isinstance(plain, dict) and plain["schedule"] is None, plain
    assert lab.api("GET", "executions") == [], "PUT must not run anything"

    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    for wf in (hourly, nightly):
        item = panel.locator(f'.jp-TaskflowPanel-workflow[data-workflow-id="{wf["id"]}"]')
        item.wait_for()
        words = item.locator(".jp-TaskflowPanel-scheduleText")
        assert words.inner_text() == wf["scheduleText"], (words.inner_text(), wf)
        nxt = item.locator(".jp-Taskflow-nextRun")
        assert nxt.get_attribute("title") == wf["nextRunTime"]
        assert re.fullmatch(r"next run (\S+ )?\d\d:\d\d:\d\d · in \d.*", nxt.inner_text()), (
            nxt.inner_text()
        )
        assert item.get_by_role("button", name="Pause schedule").is_visible()
    assert "Europe/Paris" in str(nightly["scheduleText"]), nightly
    assert re.search(
        r"· in (\d+ min|1 h)$",
        panel.locator('[data-workflow-id="hourly"] .jp-Taskflow-nextRun').inner_text(),
    )
    # No schedule, nothing extra.
    plain_item = panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="plain"]')
    plain_item.wait_for()
    assert plain_item.locator(".jp-TaskflowPanel-schedule").count() == 0
    assert plain_item.get_by_role("button", name="Pause schedule").count() == 0

    # Pause from the panel: the server agrees, and there is no next run.
    item = panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="nightly"]')
    item.get_by_role("button", name="Pause schedule").click()
    item.locator(".jp-TaskflowPanel-paused", has_text="paused").wait_for()
    resume = item.get_by_role("button", name="Resume schedule")
    resume.wait_for()
    assert item.locator(".jp-Taskflow-nextRun").count() == 0
    state = _get(lab, "nightly")
    assert state["paused"] is True and state["nextRunTime"] is None, state
    panel.screenshot(path=str(SCREENSHOTS / "lab-schedules-paused.png"))

    # Resume: a next run again, shown as the server says.
    resume.click()
    item.locator(".jp-Taskflow-nextRun").wait_for()
    item.get_by_role("button", name="Pause schedule").wait_for()
    state = _get(lab, "nightly")
    assert state["paused"] is False and state["nextRunTime"], state
    assert item.locator(".jp-Taskflow-nextRun").get_attribute("title") == state["nextRunTime"]
    assert item.locator(".jp-TaskflowPanel-paused").count() == 0


def test_scheduled_executions_are_badged(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    panel.locator(".jp-TaskflowPanel-live.jp-mod-open").wait_for()
    _put(lab, "ticker", "Ticker", {"every": 2})

    # The server fires it on its own; the panel learns of it over /ws.
    badge = panel.locator(
        '.jp-TaskflowPanel-execution[data-workflow-id="ticker"] [data-trigger="schedule"]'
    ).first
    badge.wait_for(timeout=15_000)
    assert badge.inner_text() == "scheduled"
    item = panel.locator('.jp-TaskflowPanel-execution[data-workflow-id="ticker"]').first
    exec_id = item.get_attribute("data-execution-id")
    detail = lab.api("GET", f"executions/{exec_id}")
    assert isinstance(detail, dict), detail
    assert detail["trigger"] == "schedule" and detail["scheduledFor"], detail
    assert str(detail["scheduledFor"]) in (badge.get_attribute("title") or "")
    scheduled = lab.api("GET", "executions?trigger=schedule&workflow_id=ticker")
    assert isinstance(scheduled, list) and exec_id in [e["id"] for e in scheduled]
    # Its workflow row shows the schedule too (learnt from the first event).
    wf_item = panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="ticker"]')
    wf_item.locator(".jp-TaskflowPanel-scheduleText", has_text="Every 2 seconds").wait_for()

    # The execution view carries the badge as well.
    page.locator(f'.jp-TaskflowPanel-execution[data-execution-id="{exec_id}"]').click()
    view = page.locator(f"#taskflow-execution-{exec_id} .jp-TaskflowExecution")
    view.wait_for(state="visible")
    view.locator('.jp-TaskflowExecution-title [data-trigger="schedule"]').wait_for()
    view.locator('.jp-TaskflowExecution-title [data-status="completed"]').wait_for(timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "lab-schedules.png"))
    panel.screenshot(path=str(SCREENSHOTS / "lab-schedules-panel.png"))

    # Stop the ticking for the next test.
    wf_item.get_by_role("button", name="Pause schedule").click()
    wf_item.get_by_role("button", name="Resume schedule").wait_for()
    assert _get(lab, "ticker")["paused"] is True


def test_missed_slots_banner_after_a_restart(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    _put(lab, "catchup_demo", "Catch-up demo", {"every": 1, "catchup": "latest"})
    _poll(
        lambda: lab.api("GET", "executions?workflow_id=catchup_demo&trigger=schedule"),
        "catchup_demo fired",
    )
    # Slots fall while no server runs; the restarted one sees them late: with a grace
    # of half a second (not the default minute), the seconds of the restart are missed.
    grace = "--TaskFlowApp.schedule_grace=0.5"
    lab.cmd.append(grace)
    try:
        lab.restart()
    finally:
        lab.cmd.remove(grace)
    missed = _poll(lambda: _get(lab, "catchup_demo")["missedSlots"], "missedSlots reported")
    lab.api("POST", "workflows/catchup_demo/schedule/pause", {})
    assert missed["catchup"] == "latest" and missed["fired"] == 1, missed
    assert missed["count"] >= 1 and missed["first"] and missed["last"], missed

    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    item = panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="catchup_demo"]')
    banner = item.locator(".jp-TaskflowPanel-missed")
    banner.wait_for()
    text = banner.inner_text()
    assert re.match(
        r"(1 run was|\d+ runs were) missed while no server ran \(.+\); catch-up 'latest' ran",
        text,
    ), text
    item.screenshot(path=str(SCREENSHOTS / "lab-schedules-missed.png"))
    banner.get_by_role("button", name="Dismiss").click()
    banner.wait_for(state="detached")
    # Dismissed for this detection, also after a refresh re-rendered the list (the
    # refresh is seen by a workflow registered meanwhile appearing).
    lab.api("PUT", "workflows/after_dismiss", {"name": "After dismiss", "tasks": [TASK]})
    panel.locator('button[data-action="refresh"]').click()
    panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="after_dismiss"]').wait_for()
    assert banner.count() == 0
    assert item.get_by_role("button", name="Resume schedule").is_visible()


def double(x: int = 21) -> int:
    """The "notebook function" of the snapshot test."""
    return 2 * x


def test_task_detail_names_its_snapshot(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    # What the notebook side does when it registers a workflow of notebook functions:
    # store the snapshot, name it in the task's params.
    from pytaskflow_jupyter.snapshots import take
    from pytaskflow_jupyter.store import Store

    snap = take(double, "double")
    store = Store(lab.env["PYTASKFLOW_DB"])
    try:
        store.save_snapshots([snap.row()])
    finally:
        store.close()
    task = {"name": "double", "type": "python",
            "params": {"callable": "double", "snapshot": snap.digest}}  # fmt: skip
    lab.api("PUT", "workflows/snap_demo", {"name": "Snapshot demo", "tasks": [task]})
    run = lab.api("POST", "workflows/snap_demo/executions", {})
    assert isinstance(run, dict), run

    _open_lab(page, lab)
    page.locator(f'.jp-TaskflowPanel-execution[data-execution-id="{run["id"]}"]').click()
    view = page.locator(f"#taskflow-execution-{run['id']} .jp-TaskflowExecution")
    view.wait_for(state="visible")
    row = view.locator('tr[data-task="double"]')
    row.locator(".jp-TaskflowExecution-snapshotTag", has_text="snapshot").wait_for()
    row.click()
    detail = view.locator('.jp-TaskflowExecution-logs[data-task="double"]')
    short = snap.digest[: len("sha256:") + 12]
    detail.locator(".jp-TaskflowExecution-snapshot").get_by_text(
        f"runs snapshot {short}…", exact=True
    ).wait_for()
    assert snap.digest in (
        detail.locator(".jp-TaskflowExecution-snapshot").get_attribute("title") or ""
    )
    view.screenshot(path=str(SCREENSHOTS / "lab-schedules-snapshot.png"))
