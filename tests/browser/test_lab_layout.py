"""The execution view's DAG geometry and counts, read from the page a user sees.

Workflows are posted over REST: the ETL example's graph (notebooks/etl-example.ipynb:
extract -> transform, validate -> route -> publish / quarantine -> summary), a seeded
random 50-task DAG, and a copy of the ETL graph whose `transform` fails. Each execution
view is opened and every node box and edge path is read from the rendered SVG
(`getBBox`, `getPointAtLength`, in screen coordinates through `getScreenCTM`): no edge
may pass through a node box other than its own two ends. On the failed execution the
counts text must be the one the REST detail gives, and the status bar must have one
segment per status, sized by its count. Screenshots: ci-artifacts/screenshots/layout-*.png.

The server is test_notebook_tasks's: it serves the labextension as `jlpm build` last
wrote it (through JUPYTER_PATH), not an editable install's older copy.
"""

from __future__ import annotations

import random
import re

import pytest

from tests.browser.test_lab_panel import SCREENSHOTS, Lab, _open_lab
from tests.browser.test_notebook_tasks import lab, page  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.browser


def _py(code: str, *deps: str) -> dict[str, object]:
    return {"type": "python", "params": {"code": code}, "dependencies": list(deps)}


def _etl(wf_id: str, fail: bool = False) -> dict[str, object]:
    """The ETL example's graph; with `fail`, `transform` raises."""
    transform = "raise ValueError('bad rows')" if fail else "result = 2"
    tasks = {
        "extract": _py("result = 1"),
        "transform": _py(transform, "extract"),
        "validate": _py("result = 3", "extract"),
        "route": {"type": "branch", "params": {"next": ["publish"]}, "dependencies": ["validate"]},
        "publish": _py("result = 4", "route", "transform"),
        "quarantine": _py("result = 5", "route", "validate"),
        "summary": _py("result = 6", "publish", "quarantine", "transform"),
    }
    return {
        "id": wf_id,
        "name": "sales etl" if not fail else "sales etl (failing)",
        "tasks": [{"name": k, **v} for k, v in tasks.items()],
    }


def _random_dag(n: int, seed: int) -> dict[str, object]:
    """Task i depends on up to 3 of the 8 tasks before it."""
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        k = 0 if i == 0 else rng.randint(0, 3)
        deps = sorted({f"t{max(0, i - 1 - rng.randrange(8))}" for _ in range(k)})
        tasks.append({"name": f"t{i}", **_py("result = 1", *deps)})
    return {"id": f"random_{n}", "name": f"random {n}", "tasks": tasks}


# Node boxes and sampled edge paths, in screen pixels.
_GEOMETRY = """
(view) => {
  const corners = (el, b) => {
    const m = el.getScreenCTM();
    const pts = [[b.x, b.y], [b.x + b.width, b.y + b.height]].map(([x, y]) => {
      const p = new DOMPoint(x, y).matrixTransform(m);
      return [p.x, p.y];
    });
    return {x0: pts[0][0], y0: pts[0][1], x1: pts[1][0], y1: pts[1][1]};
  };
  const nodes = [...view.querySelectorAll('.jp-TaskflowDag-node')].map(g => {
    const rect = g.querySelector('rect');
    return {name: g.dataset.task, ...corners(rect, rect.getBBox())};
  });
  const edges = [...view.querySelectorAll('.jp-TaskflowDag-edge')].map(p => {
    const m = p.getScreenCTM();
    const len = p.getTotalLength();
    const n = Math.max(2, Math.ceil(len / 2));
    const pts = [];
    for (let i = 0; i <= n; i++) {
      const q = p.getPointAtLength((len * i) / n).matrixTransform(m);
      pts.push([q.x, q.y]);
    }
    return {from: p.dataset.from, to: p.dataset.to, points: pts};
  });
  return {nodes, edges};
}
"""


def _crosses(a: list[float], b: list[float], box: dict[str, float], eps: float = 1.0) -> bool:
    """Segment a-b passes through the box's interior (shrunk by eps: touching is not)."""
    x0, y0, x1, y1 = box["x0"] + eps, box["y0"] + eps, box["x1"] - eps, box["y1"] - eps
    t0, t1 = 0.0, 1.0
    dx, dy = b[0] - a[0], b[1] - a[1]
    for p, q in ((-dx, a[0] - x0), (dx, x1 - a[0]), (-dy, a[1] - y0), (dy, y1 - a[1])):
        if p == 0:
            if q < 0:
                return False
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return t0 < t1


def _edge_crossings(geometry: dict[str, list[dict]]) -> list[str]:  # type: ignore[type-arg]
    found = []
    for e in geometry["edges"]:
        pts = e["points"]
        for n in geometry["nodes"]:
            if n["name"] in (e["from"], e["to"]):
                continue
            if any(_crosses(pts[i - 1], pts[i], n) for i in range(1, len(pts))):
                found.append(f"{e['from']}->{e['to']} crosses {n['name']}")
    return found


def _open_execution(page, panel, exec_id: str, status: str):  # type: ignore[no-untyped-def]  # noqa: F811
    item = panel.locator(f'.jp-TaskflowPanel-execution[data-execution-id="{exec_id}"]')
    item.and_(page.locator(f'[data-status="{status}"]')).wait_for(timeout=90_000)
    item.click()
    view = page.locator(f"#taskflow-execution-{exec_id} .jp-TaskflowExecution")
    view.wait_for(state="visible")
    view.locator(f'.jp-TaskflowExecution-title [data-status="{status}"]').wait_for()
    return view


def _check_layout(view, definition: dict[str, object], dense: bool) -> None:  # type: ignore[no-untyped-def]
    tasks = definition["tasks"]
    assert isinstance(tasks, list)
    want = sum(len(t["dependencies"]) for t in tasks)
    view.locator(".jp-TaskflowDag-edge").nth(want - 1).wait_for(state="attached")
    geometry = view.evaluate(_GEOMETRY)
    assert len(geometry["nodes"]) == len(tasks)
    assert len(geometry["edges"]) == want
    assert _edge_crossings(geometry) == []
    # On the dense graph the check can see a crossing: some edge drawn as a
    # straight line between its ends would cross a box.
    assert not dense or any(
        _crosses(e["points"][0], e["points"][-1], n)
        for e in geometry["edges"]
        for n in geometry["nodes"]
        if n["name"] not in (e["from"], e["to"])
    ), "no edge would cross a node even drawn straight: the graph tests nothing"


def test_no_edge_crosses_a_node(lab: Lab, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel = page.locator("#taskflow-panel")
    _open_lab(page, lab)
    for name, definition in (("etl", _etl("etl_layout")), ("random50", _random_dag(50, 7))):
        created = lab.api("POST", "workflows", definition)
        assert isinstance(created, dict), created
        view = _open_execution(page, panel, created["id"], "completed")
        _check_layout(view, definition, dense=name != "etl")
        if name == "etl":
            tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
            assert re.fullmatch(r"sales etl · exec_[0-9a-f]{4}", tab.inner_text().strip())
        page.screenshot(path=str(SCREENSHOTS / f"layout-{name}.png"))


def test_counts_and_segmented_bar_on_a_failure(lab: Lab, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel = page.locator("#taskflow-panel")
    _open_lab(page, lab)
    created = lab.api("POST", "workflows", _etl("etl_failing", fail=True))
    assert isinstance(created, dict), created
    exec_id = created["id"]
    view = _open_execution(page, panel, exec_id, "failed")
    detail = lab.api("GET", f"executions/{exec_id}")
    assert isinstance(detail, dict)
    statuses = [t["status"] for t in detail["tasks"]]
    assert statuses.count("failed") == 1, statuses
    by = {s: statuses.count(s) for s in set(statuses)}
    text = (
        f"{by.get('completed', 0)}/{len(statuses)} completed · {by['skipped']} skipped · 1 failed"
    )

    # The same counts in the execution view's meta line and in the panel.
    view.locator(".jp-TaskflowExecution-meta", has_text=text).wait_for()
    item = panel.locator(f'.jp-TaskflowPanel-execution[data-execution-id="{exec_id}"]')
    item.locator(".jp-TaskflowPanel-counts", has_text=text).wait_for()
    # At the default sidebar width the meta line wraps: nothing is cut off.
    cut = item.locator(".jp-TaskflowPanel-counts").evaluate(
        "el => el.scrollWidth > el.clientWidth + 1"
    )
    assert not cut

    for bar in (
        view.locator(":scope > .jp-TaskflowStatusBar"),
        item.locator(".jp-TaskflowStatusBar"),
    ):
        segments = bar.locator(".jp-TaskflowStatusBar-segment")
        got = {
            segments.nth(i).get_attribute("data-segment"): int(
                segments.nth(i).get_attribute("data-count") or 0
            )
            for i in range(segments.count())
        }
        assert got == by, (got, by)
        total = bar.evaluate("el => el.getBoundingClientRect().width")
        for status, count in by.items():
            seg = bar.locator(f'[data-segment="{status}"]')
            width = seg.evaluate("el => el.getBoundingClientRect().width")
            assert abs(width - total * count / len(statuses)) <= 3, (status, width, total)
        colours = {
            s: bar.locator(f'[data-segment="{s}"]').evaluate(
                "el => getComputedStyle(el).backgroundColor"
            )
            for s in ("completed", "failed")
        }
        assert colours["completed"] != colours["failed"], colours
    panel.screenshot(path=str(SCREENSHOTS / "layout-panel-counts.png"))
    page.screenshot(path=str(SCREENSHOTS / "layout-failed-counts.png"))


def test_workflow_filter_limit_and_ticking_elapsed(lab: Lab, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel = page.locator("#taskflow-panel")
    _open_lab(page, lab)
    for i in range(12):
        lab.api(
            "POST",
            "workflows",
            {"id": f"many_{i:02}", "name": f"many {i:02}", "tasks": [{"name": "a", **_py("")}]},
        )
    slow = lab.api(
        "POST",
        "workflows",
        {
            "id": "slow_one",
            "name": "slow one",
            "tasks": [{"name": "nap", **_py("import time\ntime.sleep(6)")}],
        },
    )
    assert isinstance(slow, dict), slow
    workflows = panel.locator(".jp-TaskflowPanel-workflow")
    more = panel.locator('button[data-action="more"]')
    more.wait_for()
    total = len(lab.api("GET", "workflows"))  # type: ignore[arg-type]
    # the panel hears of the workflows over /ws: wait until it has all of them
    panel.locator('button[data-action="more"]', has_text=f"(of {total - 10})").wait_for()
    assert workflows.count() == 10
    assert more.inner_text() == f"Show {min(20, total - 10)} more (of {total - 10})"
    one = '.jp-TaskflowPanel-workflow[data-workflow-id^="many_"] .jp-TaskflowPanel-meta'
    meta = panel.locator(one).first.inner_text()
    assert meta.startswith("1 task") and "1 tasks" not in meta, meta
    more.click()
    assert workflows.count() == total

    # Typing filters; the panel re-renders live meanwhile and keeps the caret.
    box = panel.locator(".jp-TaskflowPanel-filter")
    # JupyterLab activates (focuses) the launcher once it has started: not mid-typing.
    page.locator(".jp-Launcher").wait_for()
    page.wait_for_timeout(1000)
    box.click()
    page.keyboard.type("slow", delay=150)
    assert box.evaluate("el => document.activeElement === el"), (
        box.input_value(),
        page.evaluate("document.activeElement.outerHTML.slice(0, 200)"),
    )
    assert box.input_value() == "slow"
    assert [
        workflows.nth(i).get_attribute("data-workflow-id") for i in range(workflows.count())
    ] == ["slow_one"]

    # A running task's duration ticks.
    view = _open_execution(page, panel, slow["id"], "running")
    cell = view.locator('tr[data-task="nap"] .jp-Taskflow-elapsed')
    cell.wait_for()
    first = cell.inner_text()
    page.wait_for_timeout(1500)
    assert cell.inner_text() != first, first
    page.screenshot(path=str(SCREENSHOTS / "layout-running-filter.png"))
