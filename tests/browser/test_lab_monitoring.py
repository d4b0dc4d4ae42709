"""Monitoring in the TaskFlow panel (issue 14), in a real JupyterLab through Chromium.

On real executions of a real server (this checkout's package and its fresh `jlpm build`):

- the workflow page of a workflow with 25 executions over two revisions: the grid's
  first page (20 columns), paged back to all 25, cells coloured by status, a cell that
  opens its task's attempts in its execution, a new run appearing live on the right,
  the revisions and parameters;
- the live timeline and the live log of a running task that fails once and is retried:
  the first attempt's bar and the running one's, its output appearing line by line
  while it runs, then each attempt with its times, error and logs;
- a notification (Lab's own) when an execution started from the panel fails; Retry
  opens a new execution whose reused task links to where it ran; a completion
  notification with the setting on; the comparison of the failed and the completed
  execution, the differing tasks highlighted;
- an execution of 5,000 tasks: frames while scrolling its view (during and after the
  run) and the sidebar, measured by requestAnimationFrame and printed, never asserted.

Screenshots: ci-artifacts/screenshots/lab-monitoring-*.png.
"""

from __future__ import annotations

import json
import time
import urllib.request
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

PLUGIN = "pytaskflow-jupyter:plugin"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from checkout_lab(tmp_path_factory, "monitoring")


def _wait_ended(lab: Lab, ids: list[str], timeout: float = 120) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        status = {}
        for i in ids:
            detail = lab.api("GET", f"executions/{i}")
            assert isinstance(detail, dict)
            status[i] = str(detail["status"])
        if all(s in ("completed", "failed", "cancelled") for s in status.values()):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.3)


def _grid_workflow(extra: bool) -> dict[str, object]:
    tasks: list[dict[str, object]] = [
        {"name": "extract", "params": {"code": "result = 1"}},
        {
            "name": "check",
            "dependencies": ["extract"],
            "params": {
                "code": (
                    "print('checking', params['fail'])\n"
                    "if params['fail']:\n"
                    "    raise ValueError('asked to fail')\n"
                    "result = 2"
                )
            },
        },
        {"name": "load", "dependencies": ["check"], "params": {"code": "result = 3"}},
    ]
    if extra:
        tasks.append({"name": "report", "dependencies": ["load"]})
    return {
        "id": "grid_demo",
        "name": "Grid demo",
        "description": "browser test: a history grid",
        "parameters": {"fail": False},
        "tasks": tasks,
    }


def test_workflow_page_grid_over_25_executions(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    lab.api("PUT", "workflows/grid_demo", _grid_workflow(extra=False))
    ids: list[str] = []
    for i in range(25):
        if i == 20:  # the last five run revision 2, which has a fourth task
            lab.api("PUT", "workflows/grid_demo", _grid_workflow(extra=True))
        started = lab.api(
            "POST", "workflows/grid_demo/executions", {"params": {"fail": i % 4 == 1}}
        )
        assert isinstance(started, dict)
        ids.append(str(started["id"]))
    status = _wait_ended(lab, ids)
    failed = [i for i in ids if status[i] == "failed"]
    assert len(failed) == 6, status  # 1, 5, 9, 13, 17, 21

    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="grid_demo"]').click()
    wf_page = page.locator("#taskflow-workflow-grid_demo .jp-TaskflowWorkflow")
    wf_page.wait_for(state="visible")
    grid = wf_page.locator(".jp-TaskflowGrid")
    # The newest page: 20 executions, oldest left; more before.
    grid.and_(page.locator('[data-columns="20"]')).wait_for()
    heads = grid.locator("th.jp-TaskflowGrid-head")
    assert [heads.nth(i).get_attribute("data-execution-id") for i in range(20)] == ids[5:]
    rows = [r.get_attribute("data-task") for r in grid.locator("tbody tr").all()]
    assert rows == ["extract", "check", "load", "report"], rows
    for i in ids[5:]:
        cell = grid.locator(f'td[data-execution-id="{i}"][data-task="check"]')
        assert cell.get_attribute("data-status") == ("failed" if i in failed else "completed")
    # Revision 1's executions have no "report" cell.
    assert grid.locator("td.jp-mod-absent").count() == 15  # ids[5:20], three tasks each
    wf_page.locator('.jp-TaskflowWorkflow-parameters tr[data-param="fail"]').wait_for()
    revisions = wf_page.locator(".jp-TaskflowWorkflow-revision")
    assert revisions.count() == 2
    assert wf_page.locator(".jp-TaskflowDag-node").count() == 4
    page.screenshot(path=str(SCREENSHOTS / "lab-monitoring-grid.png"))

    # Paged back: all 25.
    wf_page.locator('button[data-action="older"]').click()
    grid.and_(page.locator('[data-columns="25"]')).wait_for()
    assert wf_page.locator('button[data-action="older"]').count() == 0
    assert [heads.nth(i).get_attribute("data-execution-id") for i in range(25)] == ids
    page.screenshot(path=str(SCREENSHOTS / "lab-monitoring-grid-all.png"))

    # Revision 1 drawn: three tasks.
    revisions.and_(page.locator('[data-revision="1"]')).click()
    wf_page.locator(".jp-TaskflowDag-node").nth(2).wait_for()
    wf_page.get_by_text("Definition (rev 1)").wait_for()
    assert wf_page.locator(".jp-TaskflowDag-node").count() == 3

    # A new execution appears on the right, live, and goes green.
    newer = lab.api("POST", "workflows/grid_demo/executions", {"params": {"fail": False}})
    assert isinstance(newer, dict)
    grid.and_(page.locator('[data-columns="26"]')).wait_for()
    assert heads.nth(25).get_attribute("data-execution-id") == newer["id"]
    grid.locator(
        f'td[data-execution-id="{newer["id"]}"][data-task="report"][data-status="completed"]'
    ).wait_for(timeout=60_000)

    # A failed cell opens its task's attempts in its execution.
    grid.locator(f'td[data-execution-id="{failed[-1]}"][data-task="check"] button').click()
    view = page.locator(f"#taskflow-execution-{failed[-1]} .jp-TaskflowExecution")
    view.wait_for(state="visible")
    logs = view.locator('.jp-TaskflowExecution-logs[data-task="check"]')
    logs.locator('tr[data-attempt-row="1"][data-status="failed"]').wait_for()
    assert "asked to fail" in logs.inner_text()
    logs.get_by_text("checking True").wait_for()


def _flaky_workflow(flag: str) -> dict[str, object]:
    code = (
        "import os, time\n"
        f"if not os.path.exists({flag!r}):\n"
        f"    open({flag!r}, 'w').close()\n"
        "    print('first try', flush=True)\n"
        "    raise RuntimeError('the first attempt fails')\n"
        "for i in range(12):\n"
        "    print(f'line {i}', flush=True)\n"
        "    time.sleep(0.5)\n"
        "result = 'done'"
    )
    return {
        "id": "flaky_demo",
        "name": "Flaky demo",
        "tasks": [
            {"name": "prepare", "params": {"code": "result = 1"}},
            {
                "name": "flaky",
                "dependencies": ["prepare"],
                "retries": 1,
                "retry_delay": 0.5,
                "params": {"code": code},
            },
            {"name": "finish", "dependencies": ["flaky"]},
        ],
    }


def test_live_timeline_and_log_of_a_running_task(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    flag = str(lab.root / "flaky-tried")
    lab.api("PUT", "workflows/flaky_demo", _flaky_workflow(flag))
    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    item = panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="flaky_demo"]')
    item.locator('button[data-action="run"]').click()
    view = page.locator(".jp-TaskflowExecution", has=page.locator("h2", has_text="Flaky demo"))
    view.wait_for(state="visible")
    row = view.locator('tr[data-task="flaky"]')
    row.and_(page.locator('[data-status="running"]')).wait_for(timeout=60_000)
    row.click()

    # The timeline: attempt 1 failed, attempt 2 running and growing.
    gantt = view.locator('.jp-TaskflowGantt-row[data-task="flaky"]')
    gantt.locator('.jp-TaskflowGantt-bar[data-attempt="1"][data-status="failed"]').wait_for(
        timeout=30_000
    )
    running = gantt.locator('.jp-TaskflowGantt-bar[data-attempt="2"][data-status="running"]')
    running.wait_for(timeout=30_000)
    width = running.evaluate("el => el.style.width")
    page.wait_for_function(
        "([sel, w]) => { const el = document.querySelector(sel);"
        " return el && el.style.width !== w; }",
        arg=[
            '.jp-TaskflowGantt-row[data-task="flaky"] .jp-TaskflowGantt-bar[data-attempt="2"]',
            width,
        ],
    )

    # The live log: lines appear while the task still runs.
    logs = view.locator('.jp-TaskflowExecution-logs[data-task="flaky"]')
    logs.and_(page.locator('[data-live="true"]')).wait_for()
    attempt2 = logs.locator('.jp-TaskflowExecution-attempt[data-attempt="2"]')
    attempt2.get_by_text("line 1", exact=False).wait_for(timeout=30_000)
    seen_first = attempt2.inner_text()
    attempt2.get_by_text("line 5", exact=False).wait_for(timeout=30_000)
    assert "line 5" not in seen_first, seen_first
    assert row.get_attribute("data-status") == "running"  # still running: it was followed
    page.screenshot(path=str(SCREENSHOTS / "lab-monitoring-live.png"))

    # The end: each attempt with its outcome, error and logs; following stops.
    row.and_(page.locator('[data-status="completed"]')).wait_for(timeout=60_000)
    logs.and_(page.locator(":not([data-live])")).wait_for()
    attempt2.get_by_text("line 11").wait_for()
    table = logs.locator(".jp-TaskflowExecution-attempts")
    table.locator('tr[data-attempt-row="1"][data-status="failed"]').wait_for()
    table.locator('tr[data-attempt-row="2"][data-status="completed"]').wait_for()
    assert "the first attempt fails" in table.inner_text()
    assert "first try" in logs.locator('[data-attempt="1"]').inner_text()
    gantt.locator('.jp-TaskflowGantt-bar[data-attempt="2"][data-status="completed"]').wait_for()
    assert view.locator(".jp-TaskflowGantt-row").count() == 3
    page.screenshot(path=str(SCREENSHOTS / "lab-monitoring-timeline.png"))


def _set_setting(lab: Lab, values: dict[str, object]) -> None:
    body = json.dumps({"raw": json.dumps(values)}).encode()
    req = urllib.request.Request(
        f"{lab.url}lab/api/settings/{PLUGIN}",
        data=body,
        method="PUT",
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status in (200, 204)


def test_failure_notifies_retry_reuses_and_the_two_compare(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    flag = lab.root / "notify-fixed"
    wf = {
        "id": "notify_demo",
        "name": "Notify demo",
        "parameters": {"size": 3},
        "tasks": [
            {"name": "extract", "params": {"code": "print('extracting')\nresult = [1, 2, 3]"}},
            {
                "name": "transform",
                "dependencies": ["extract"],
                "params": {
                    "code": (
                        "import os\n"
                        f"assert os.path.exists({str(flag)!r}), 'the flag file is missing'\n"
                        "result = sum(upstream['extract'])"
                    )
                },
            },
            {"name": "load", "dependencies": ["transform"], "params": {"code": "result = 'ok'"}},
        ],
    }
    lab.api("PUT", "workflows/notify_demo", wf)
    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="notify_demo"]').locator(
        'button[data-action="run"]'
    ).click()

    # Lab's own notification of the failure, with an Open action.
    toast = page.locator(".Toastify__toast", has_text="Notify demo failed")
    toast.wait_for(timeout=60_000)
    assert "transform" in toast.inner_text() and "flag file is missing" in toast.inner_text()
    page.wait_for_timeout(800)  # the toast slides in: let it land for the picture
    page.screenshot(path=str(SCREENSHOTS / "lab-monitoring-notification.png"))
    runs = lab.api("GET", "executions?workflow_id=notify_demo")
    assert isinstance(runs, list) and len(runs) == 1
    failed_id = str(runs[0]["id"])
    toast.get_by_role("button", name="Open").click()

    # With the setting on, a completion notifies too; Retry reuses extract.
    _set_setting(lab, {"notifyOnCompletion": True})
    flag.write_text("ok")
    view = page.locator(f"#taskflow-execution-{failed_id} .jp-TaskflowExecution")
    view.locator('button[data-action="retry"]').click()
    page.locator(".Toastify__toast", has_text="Notify demo completed").wait_for(timeout=60_000)
    runs = lab.api("GET", "executions?workflow_id=notify_demo")
    assert isinstance(runs, list) and len(runs) == 2
    done_id = str(runs[0]["id"])
    retried = page.locator(f"#taskflow-execution-{done_id} .jp-TaskflowExecution")
    reused = retried.locator('tr[data-task="extract"][data-reused="true"]')
    reused.wait_for()
    link = reused.locator(f'a[data-reused-from="{failed_id}"]')
    assert link.count() == 1
    gantt_row = retried.locator('.jp-TaskflowGantt-row[data-task="extract"][data-reused="true"]')
    gantt_row.locator(f'a[data-reused-from="{failed_id}"]').wait_for()
    link.click()
    view.locator('.jp-TaskflowExecution-logs[data-task="extract"]').get_by_text(
        "extracting"
    ).wait_for()

    # Compare the failed and the completed one, from the workflow page.
    panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="notify_demo"]').click()
    wf_page = page.locator("#taskflow-workflow-notify_demo .jp-TaskflowWorkflow")
    wf_page.locator(".jp-TaskflowGrid[data-columns='2']").wait_for()
    wf_page.locator(f'input[data-compare="{failed_id}"]').check()
    wf_page.locator(f'input[data-compare="{done_id}"]').check()
    wf_page.locator('button[data-action="compare"]').click()
    cmp = page.locator(f"#taskflow-compare-{failed_id}-{done_id} .jp-TaskflowCompare")
    cmp.wait_for(state="visible")
    tasks = cmp.locator(".jp-TaskflowCompare-tasks")
    tasks.locator('tr[data-task="transform"].jp-mod-differs').wait_for()
    assert "status" in (
        tasks.locator('tr[data-task="transform"]').get_attribute("data-differs") or ""
    )
    assert tasks.locator('tr[data-task="load"].jp-mod-differs').count() == 1
    status_a = tasks.locator('tr[data-task="transform"] td[data-field="status"][data-side="a"]')
    assert status_a.locator('[data-status="failed"]').count() == 1
    assert "jp-mod-differs" in (status_a.get_attribute("class") or "")
    params = cmp.locator('.jp-TaskflowCompare-params tr[data-param="size"]')
    assert params.get_attribute("data-differs") == "false"
    cmp.screenshot(path=str(SCREENSHOTS / "lab-monitoring-compare.png"))
    _set_setting(lab, {})


# Scroll `selector` by `step` px per frame for `frames` frames; resolve with the frame
# intervals (ms) seen meanwhile.
SCROLL_FRAMES = """
async ([selector, step, frames]) => {
  const el = document.querySelector(selector);
  if (!el) throw new Error('nothing to scroll: ' + selector);
  const gaps = [];
  let last = performance.now();
  for (let i = 0; i < frames; i++) {
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now();
    gaps.push(now - last);
    last = now;
    el.scrollTop += step;
    if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1) step = -Math.abs(step);
    if (el.scrollTop <= 0) step = Math.abs(step);
  }
  return gaps;
}
"""


def _frames(gaps: list[float]) -> str:
    gaps = sorted(gaps)
    over = sum(1 for g in gaps if g > 100)
    p95 = gaps[int(len(gaps) * 0.95) - 1]
    return (
        f"{len(gaps)} frames, longest {gaps[-1]:.0f} ms, p95 {p95:.0f} ms, "
        f"median {gaps[len(gaps) // 2]:.0f} ms, {over} over 100 ms"
    )


def test_5000_tasks_stay_responsive_while_scrolling(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    layers, width = 50, 100  # 5,000 tasks: 50 layers of 100, each after one of the last
    tasks: list[dict[str, object]] = []
    for d in range(layers):
        for i in range(width):
            # 10 ms each, two workers: the run lasts long enough to scroll through it.
            task: dict[str, object] = {
                "name": f"t{d:02d}_{i:03d}",
                "params": {"code": "import time\ntime.sleep(0.01)"},
            }
            if d:
                task["dependencies"] = [f"t{d - 1:02d}_{i:03d}"]
            tasks.append(task)
    _open_lab(page, lab)
    created = lab.api("POST", "workflows", {"id": "big_demo", "name": "Big demo", "tasks": tasks})
    assert isinstance(created, dict)
    exec_id = str(created["id"])
    panel = page.locator("#taskflow-panel")
    panel.locator(f'.jp-TaskflowPanel-execution[data-execution-id="{exec_id}"]').click()
    scope = f"#taskflow-execution-{exec_id} .jp-TaskflowExecution"
    view = page.locator(scope)
    view.locator(".jp-TaskflowExecution-tasks.jp-mod-virtual tbody tr[data-task]").first.wait_for(
        timeout=120_000
    )
    figures: dict[str, str] = {}
    status = view.locator(".jp-TaskflowExecution-title [data-status]").first
    figures["status when scrolling began"] = str(status.get_attribute("data-status"))
    figures["view, while running"] = _frames(page.evaluate(SCROLL_FRAMES, [scope, 150, 240]))
    figures["timeline rows, while running"] = _frames(
        page.evaluate(SCROLL_FRAMES, [f"{scope} .jp-TaskflowGantt-scroller", 200, 120])
    )
    figures["task table rows, while running"] = _frames(
        page.evaluate(SCROLL_FRAMES, [f"{scope} .jp-TaskflowExecution-tasksScroller", 200, 120])
    )
    figures["status after"] = str(status.get_attribute("data-status"))
    view.locator('.jp-TaskflowExecution-title [data-status="completed"]').wait_for(timeout=300_000)
    # Every node drawn, the table's rows only in its window (all 5,000 tasks).
    view.locator(".jp-TaskflowDag-node").nth(4999).wait_for()
    table = view.locator(".jp-TaskflowExecution-tasks.jp-mod-virtual")
    assert table.get_attribute("data-tasks") == "5000"
    assert 0 < table.locator("tbody tr[data-task]").count() <= 60
    figures["view, after the run"] = _frames(page.evaluate(SCROLL_FRAMES, [scope, 150, 240]))
    figures["timeline rows, after the run"] = _frames(
        page.evaluate(SCROLL_FRAMES, [f"{scope} .jp-TaskflowGantt-scroller", 200, 120])
    )
    figures["task table rows, after the run"] = _frames(
        page.evaluate(SCROLL_FRAMES, [f"{scope} .jp-TaskflowExecution-tasksScroller", 200, 120])
    )
    table.locator('tbody tr[data-task][data-status="completed"]').first.wait_for()
    figures["sidebar"] = _frames(
        page.evaluate(SCROLL_FRAMES, ["#taskflow-panel .jp-TaskflowPanel-body", 60, 120])
    )
    assert "5000/5000 completed" in view.locator(".jp-TaskflowExecution-meta").inner_text()
    figures["the run took"] = (
        view.locator(".jp-TaskflowExecution-meta").inner_text().rsplit("·", 1)[-1].strip()
    )
    page.screenshot(path=str(SCREENSHOTS / "lab-monitoring-5000.png"))
    lines = [f"  {k}: {v}" for k, v in figures.items()]
    head = "frames while scrolling an execution of 5,000 tasks, measured, not asserted:"
    print("\n" + "\n".join([head, *lines]))  # noqa: T201  (the figures are the output)


def test_workflow_page_shows_parameters_schedule_and_pause(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    """Item 2's "its parameters and schedule when it has them": a scheduled workflow's
    page says the schedule in words with its next run, and shows it paused once paused."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    definition = {
        "id": "scheduled_page",
        "name": "Scheduled page",
        "parameters": {"region": "eu", "limit": 5},
        "schedule": {"cron": "0 6 * * 1-5", "timezone": "Europe/Paris"},
        "tasks": [{"name": "only", "params": {"code": "result = 1"}}],
    }
    lab.api("PUT", "workflows/scheduled_page", definition)
    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="scheduled_page"]').click()
    wf_page = page.locator("#taskflow-workflow-scheduled_page .jp-TaskflowWorkflow")
    wf_page.wait_for(state="visible")
    sched = wf_page.locator('.jp-TaskflowWorkflow-schedule[data-paused="false"]')
    sched.wait_for()
    assert "At 06:00, Monday through Friday (Europe/Paris)" in sched.inner_text()
    assert "next run" in sched.inner_text().lower()
    for name in ("region", "limit"):
        wf_page.locator(f'.jp-TaskflowWorkflow-parameters tr[data-param="{name}"]').wait_for()
    page.screenshot(path=str(SCREENSHOTS / "lab-monitoring-schedule.png"))
    lab.api("POST", "workflows/scheduled_page/schedule/pause", {})  # as another client would
    panel.locator('button[data-action="refresh"]').first.click()  # no event says it: re-read
    paused = wf_page.locator('.jp-TaskflowWorkflow-schedule[data-paused="true"]')
    paused.wait_for(timeout=30_000)
    assert "paused" in paused.inner_text()
