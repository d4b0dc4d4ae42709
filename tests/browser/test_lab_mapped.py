"""A 1,000-item mapped task in the TaskFlow panel, in a real JupyterLab through Chromium.

A workflow ``list`` -> ``work`` (``map_over: list``) is posted over REST: ``list``
returns ``range(1000)``, each ``work`` instance sleeps a little (so the map is live for
a few seconds) and fails for the items divisible by 97 until a flag file exists. The
execution view draws ``work`` as one node with ``done/total`` and a histogram; opening it
lists its instances one page at a time; the "failed" filter lists exactly the failing
indexes; an instance's logs and traceback open from its row; "Retry failed instances"
opens a new execution that reruns only the failed instances (every run appends its item
to a file, so the reuse of the completed ones is counted, not assumed).

Responsiveness is measured and printed, never asserted (no timed assertions in tests):
the time from a click to the instance list painted (two animation frames after the rows
are in the DOM), and the long tasks (PerformanceObserver ``longtask``, > 50 ms on the
main thread) while the list and its filters are used during and after the run.

The server is test_lab_panel's, serving the labextension as this checkout last built
it (``jlpm build``). Screenshots: ci-artifacts/screenshots/lab-mapped*.png.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_lab_panel import (
    SCREENSHOTS,
    Lab,
    _open_lab,
    checkout_lab,
    page,  # noqa: F401  (the fixture, with this module's lab)
)

pytestmark = pytest.mark.browser

N = 1000
FAILING = [i for i in range(N) if i % 97 == 0]  # 0, 97, ..., 970: eleven

# Long tasks of the page since the script ran, and a helper to read and reset them.
LONGTASKS = """
window.__longtasks = [];
try {
  new PerformanceObserver(list => {
    for (const e of list.getEntries()) window.__longtasks.push(e.duration);
  }).observe({ type: 'longtask', buffered: true });
} catch (err) { window.__longtasks = null; }
"""

# Click `selector`, then resolve with the ms until `ready` matches and two frames later
# (the rows are laid out and painted).
CLICK_TO_PAINT = """
async ([selector, ready]) => {
  const t0 = performance.now();
  document.querySelector(selector).dispatchEvent(new MouseEvent('click', { bubbles: true }));
  const deadline = t0 + 30000;
  while (!document.querySelector(ready)) {
    if (performance.now() > deadline) throw new Error('not painted: ' + ready);
    await new Promise(r => setTimeout(r, 5));
  }
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}
"""

# Click a filter, then resolve with the ms until the list says what it shows (no longer
# "Loading…") and two frames later.
CLICK_TO_LIST = """
async (selector) => {
  const t0 = performance.now();
  document.querySelector(selector).dispatchEvent(new MouseEvent('click', { bubbles: true }));
  const status = document.querySelector(selector)
    .closest('.jp-TaskflowInstances').querySelector('.jp-TaskflowInstances-status');
  while (status.textContent.startsWith('Loading')) {
    if (performance.now() - t0 > 30000) throw new Error('the list never loaded');
    await new Promise(r => setTimeout(r, 5));
  }
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from checkout_lab(tmp_path_factory, "mapped")


def _definition(flag: Path, runs: Path) -> dict[str, object]:
    work = (
        "import os, time\n"
        f"with open({str(runs)!r}, 'a') as f:\n"
        "    f.write(f'{item}\\n')\n"
        "print(f'working on item {item}')\n"
        "time.sleep(0.01)\n"
        f"if item % 97 == 0 and not os.path.exists({str(flag)!r}):\n"
        "    raise ValueError(f'item {item} is a multiple of 97')\n"
        "result = item * 2"
    )
    return {
        "id": "lab_mapped",
        "name": "Lab mapped",
        "description": "browser test: a 1,000-item map",
        "tasks": [
            {"name": "list", "type": "python", "params": {"code": f"result = list(range({N}))"}},
            {
                "name": "work",
                "type": "python",
                "dependencies": ["list"],
                "map_over": "list",
                "params": {"code": work},
            },
        ],
    }


def _longtasks(browser_page) -> list[float] | None:  # type: ignore[no-untyped-def]
    """The long tasks (ms) since the last call; None where the browser has no such entry."""
    return browser_page.evaluate(  # type: ignore[no-any-return]
        "() => { const l = window.__longtasks; if (l) window.__longtasks = []; return l; }"
    )


def _report(figures: dict[str, object]) -> None:
    lines = [f"  {key}: {value}" for key, value in figures.items()]
    head = "responsiveness of the instance list (1,000 instances), measured, not asserted:"
    print("\n" + "\n".join([head, *lines]))  # noqa: T201  (the figures are the output)


def _summary(tasks: list[float] | None) -> str:
    if tasks is None:
        return "n/a (no longtask entries in this browser)"
    if not tasks:
        return "none"
    return f"{len(tasks)}, longest {max(tasks):.0f} ms, total {sum(tasks):.0f} ms"


def test_a_1000_item_map_in_the_panel(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    figures: dict[str, object] = {}
    page.add_init_script(LONGTASKS)
    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    panel.locator(".jp-TaskflowPanel-live.jp-mod-open").wait_for()

    flag, runs = lab.root / "fixed", lab.root / "runs.txt"
    created = lab.api("POST", "workflows", _definition(flag, runs))
    assert isinstance(created, dict), created
    first = str(created["id"])
    item = panel.locator(f'.jp-TaskflowPanel-execution[data-execution-id="{first}"]')
    item.click()
    view = page.locator(f"#taskflow-execution-{first} .jp-TaskflowExecution")
    view.wait_for(state="visible")

    # One node for the thousand instances, with done/total and a histogram.
    node = view.locator('.jp-TaskflowDag-node[data-task="work"]')
    view.locator('.jp-TaskflowDag-node[data-task="work"][data-mapped$="/1000"]').wait_for(
        timeout=60_000
    )
    assert view.locator(".jp-TaskflowDag-node").count() == 2
    assert node.locator(".jp-TaskflowDag-segment").count() >= 1
    assert "/1000" in (node.locator(".jp-TaskflowDag-sub").text_content() or "")
    _longtasks(page)

    # Open it while it runs (if it still does): its instance list, first page only.
    scope = f"#taskflow-execution-{first}"
    ms = page.evaluate(
        CLICK_TO_PAINT,
        [f'{scope} .jp-TaskflowDag-node[data-task="work"]', f"{scope} tr[data-map-index]"],
    )
    figures["click on the node to first page painted (while running)"] = f"{ms:.0f} ms"
    instances = view.locator('.jp-TaskflowInstances[data-task="work"]')
    summary = instances.locator(".jp-TaskflowInstances-summary")
    assert "/1000" in summary.inner_text(), summary.inner_text()
    figures["status while the list opened"] = view.locator(
        ".jp-TaskflowExecution-title [data-status]"
    ).first.get_attribute("data-status")
    assert instances.locator("tr[data-map-index]").count() <= 100
    page.screenshot(path=str(SCREENSHOTS / "lab-mapped-running.png"))

    # Flip filters while the map runs: the list must keep answering.
    clicks = []
    for name in ("running", "completed", "failed", "all"):
        ms = page.evaluate(
            CLICK_TO_LIST, f'{scope} .jp-TaskflowInstances button[data-filter="{name}"]'
        )
        clicks.append(f"{name} {ms:.0f} ms")
    figures["filter click to list painted, while running"] = ", ".join(clicks)

    # The end: the task failed for exactly the failing items.
    view.locator('.jp-TaskflowExecution-title [data-status="failed"]').wait_for(timeout=120_000)
    figures["long tasks while running, list open"] = _summary(_longtasks(page))
    done = f"{N - len(FAILING)}/{N}"
    view.locator(f'.jp-TaskflowDag-node[data-task="work"][data-mapped="{done}"]').wait_for()
    instances.locator(f'.jp-TaskflowInstances-summary[data-done="{done}"]').wait_for()
    assert f"{len(FAILING)} failed" in summary.inner_text(), summary.inner_text()
    assert view.locator('tr[data-task="work"]').get_attribute("data-status") == "failed"

    # All instances, paged: 100 rows, and "Show more" reads the next 100.
    instances.locator("tr[data-map-index]").nth(99).wait_for()
    assert instances.locator("tr[data-map-index]").count() == 100
    ms = page.evaluate(
        CLICK_TO_PAINT,
        [f"{scope} .jp-TaskflowInstances-more", f'{scope} tr[data-map-index="199"]'],
    )
    figures["'Show more' click to 200 rows painted"] = f"{ms:.0f} ms"
    assert instances.locator("tr[data-map-index]").count() == 200

    # Filter the failed ones: exactly the failing indexes.
    ms = page.evaluate(
        CLICK_TO_PAINT,
        [
            f'{scope} .jp-TaskflowInstances button[data-filter="failed"]',
            f'{scope} .jp-TaskflowInstances tr[data-map-index="970"]',
        ],
    )
    figures["filter 'failed' click to list painted"] = f"{ms:.0f} ms"
    rows = instances.locator("tr[data-map-index]")
    listed = [int(rows.nth(i).get_attribute("data-map-index") or -1) for i in range(rows.count())]
    assert listed == FAILING, listed
    assert {rows.nth(i).get_attribute("data-status") for i in range(rows.count())} == {"failed"}
    assert "multiple of 97" in rows.nth(1).inner_text()
    figures["long tasks while filtering after the run"] = _summary(_longtasks(page))

    # One instance's logs and traceback.
    instances.locator('tr[data-map-index="97"]').click()
    detail = instances.locator('.jp-TaskflowInstances-detail[data-map-index="97"]')
    detail.get_by_text("working on item 97").wait_for()
    assert "ValueError" in detail.inner_text(), detail.inner_text()
    assert "item 97 is a multiple of 97" in detail.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "lab-mapped.png"))
    instances.screenshot(path=str(SCREENSHOTS / "lab-mapped-instances.png"))

    # Fix the cause and retry from the list: a new execution reruns the failed only.
    flag.write_text("ok")
    before = len(runs.read_text().split())
    assert before == N, before
    instances.locator('button[data-action="retry-instances"]').click()
    newer = panel.locator(
        '.jp-TaskflowPanel-execution[data-workflow-id="lab_mapped"]'
        f':not([data-execution-id="{first}"])'
    )
    newer.first.wait_for(timeout=30_000)
    second = newer.first.get_attribute("data-execution-id")
    assert second and second != first
    retry_view = page.locator(f"#taskflow-execution-{second} .jp-TaskflowExecution")
    retry_view.wait_for(state="visible")
    retry_view.locator('.jp-TaskflowExecution-title [data-status="completed"]').wait_for(
        timeout=120_000
    )
    retry_view.locator(f'.jp-TaskflowDag-node[data-task="work"][data-mapped="{N}/{N}"]').wait_for()
    page.screenshot(path=str(SCREENSHOTS / "lab-mapped-retried.png"))

    detail_json = lab.api("GET", f"executions/{second}")
    assert isinstance(detail_json, dict)
    work = next(t for t in detail_json["tasks"] if t["name"] == "work")
    assert work["status"] == "completed", work
    assert work["mapped"]["completed"] == N, work["mapped"]
    assert work["result"] == [i * 2 for i in range(N)]
    # Only the failed instances ran again.
    time.sleep(0.2)
    reran = sorted(int(x) for x in runs.read_text().split()[before:])
    assert reran == FAILING, reran
    _report(figures)
