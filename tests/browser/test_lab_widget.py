"""The notebook's execution widget in a real JupyterLab, in Debian's Chromium: one
renderer for the notebook and the panel.

A notebook in the Lab's root builds the ETL example's graph (notebooks/etl-example.ipynb)
with `transform` failing, so the counts are mixed (completed, failed, skipped), runs it
in the Lab's own kernel (which imports this checkout: PYTHONPATH in the Lab's
environment, inherited by its kernels) and displays the run. The widget's front end is
the labextension's widget module (`labextension/src/widget.ts`, the build `jlpm build`
last wrote). The test waits for the widget's final state, opens the same execution in
the TaskFlow panel, and compares what both draw: the DAG's nodes (names, statuses,
positions) and edges, the counts words, the status bar's segments and the task rows;
no edge of the widget's DAG crosses a node box. Screenshots:
ci-artifacts/screenshots/lab-widget*.png.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytaskflow_jupyter
from tests.browser.test_lab_layout import _GEOMETRY, _edge_crossings, _random_dag
from tests.browser.test_lab_panel import (
    SCREENSHOTS,
    Lab,
    new_lab,
    page,  # noqa: F401  (the fixture, with this module's lab)
)
from tests.chromium import require_chromium

pytestmark = pytest.mark.browser

NOTEBOOK = "widget.ipynb"
#: the checkout under test, for the Lab's kernels
PACKAGE_ROOT = Path(pytaskflow_jupyter.__file__).resolve().parents[1]

#: test_lab_layout's seeded random 50-task DAG: (name, dependencies) per task
DENSE = [(t["name"], t["dependencies"]) for t in _random_dag(50, 7)["tasks"]]  # type: ignore[index, union-attr]

CELLS = [
    "import time\n\nfrom pytaskflow_jupyter import Workflow\n\n"
    'etl = Workflow("widget etl")\n\n\n'
    "@etl.task\n"
    "def extract():\n"
    "    time.sleep(1.5)  # long enough to see the widget follow a running task\n"
    "    return [5, 60, 7]\n\n\n"
    "@etl.task(depends_on=extract)\n"
    "def transform(extract):\n"
    '    raise ValueError("bad rows")\n\n\n'
    "@etl.task(depends_on=extract)\n"
    "def validate(extract):\n"
    '    return {"suspicious": [x for x in extract if x < 10]}\n\n\n'
    "@etl.branch(depends_on=validate)\n"
    "def route(validate):\n"
    '    return "publish"\n\n\n'
    "@etl.task(depends_on=[route, transform])\n"
    "def publish(transform):\n"
    "    return transform\n\n\n"
    "@etl.task(depends_on=[route, validate])\n"
    "def quarantine(validate):\n"
    '    return validate["suspicious"]\n\n\n'
    "@etl.task(depends_on=[publish, quarantine, transform])\n"
    "def summary(upstream):\n"
    "    return len(upstream)\n",
    "run = etl.run()\nrun",
    "dense = Workflow('random 50')\n"
    f"for name, deps in {DENSE!r}:\n"
    "    dense.task(name=name, depends_on=deps or None)(lambda **_: 1)\n"
    "dense_run = dense.run(wait=True)\n"
    "dense_run",
]

ALL_RAN = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (!panel || !panel.content || !panel.sessionContext.session) return false;
    const kernel = panel.sessionContext.session.kernel;
    const cells = panel.content.widgets.filter(c => c.model.type === 'code');
    return kernel && kernel.status === 'idle' && cells.length > 0 &&
        cells.every(c => c.model.executionCount !== null);
}"""

KERNEL_IDLE = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const s = w && w.sessionContext && w.sessionContext.session;
    return !!(s && s.kernel && s.kernel.status === 'idle');
}"""

# What an execution view draws, read from its DOM (the widget's and the panel's alike).
_DRAWN = """(view) => {
  const svg = view.querySelector('svg.jp-TaskflowDag');
  return {
    nodes: Object.fromEntries([...view.querySelectorAll('.jp-TaskflowDag-node')].map(
      g => [g.dataset.task, {status: g.dataset.status, at: g.getAttribute('transform'),
                             text: g.textContent}])),
    edges: [...view.querySelectorAll('.jp-TaskflowDag-edge')].map(
      p => [p.dataset.from, p.dataset.to, p.getAttribute('d')]),
    size: [svg.getAttribute('width'), svg.getAttribute('height')],
    meta: view.querySelector('.jp-TaskflowExecution-meta').textContent,
    status: view.querySelector('.jp-TaskflowExecution-title [data-status]').dataset.status,
    segments: [...view.querySelectorAll(':scope > .jp-TaskflowStatusBar > [data-segment]')].map(
      s => [s.dataset.segment, Number(s.dataset.count)]),
    bar: view.querySelector(':scope > .jp-TaskflowStatusBar').getAttribute('aria-label'),
    rows: [...view.querySelectorAll('.jp-TaskflowExecution-tasks tbody tr')].map(
      tr => [tr.dataset.task, ...[...tr.cells].map(td => td.textContent.trim())]),
  };
}"""


def _notebook(path: Path) -> None:
    cells = [
        {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}
        for src in CELLS
    ]
    nb = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


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
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """test_lab_panel's server on the fresh build; its kernels import this checkout."""
    require_chromium()
    tmp = tmp_path_factory.mktemp("lab-widget")
    root = tmp / "root"
    root.mkdir()
    _notebook(root / NOTEBOOK)
    _settings(tmp / "settings")
    lab = new_lab(tmp, root, "--LabApp.expose_app_in_browser=True", fresh_build=True)
    lab.env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PACKAGE_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    lab.env["JUPYTERLAB_SETTINGS_DIR"] = str(tmp / "settings")
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if lab.log.exists():
            shutil.copy(lab.log, SCREENSHOTS / "lab-widget-jupyter-lab.log")


def test_the_widget_draws_what_the_panel_draws(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_default_timeout(90_000)
    page.goto(f"{lab.url}lab/tree/{NOTEBOOK}?reset&token={lab.token}")
    page.wait_for_function(KERNEL_IDLE, polling=250)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    # Live: the widget shows the execution running before it ends.
    widgets = page.locator(".jp-OutputArea-output .jp-TaskflowWidget .jp-TaskflowExecution")
    widget = widgets.first
    widget.locator('.jp-TaskflowDag-node[data-task="extract"][data-status="running"]').wait_for()
    widget.scroll_into_view_if_needed()
    assert widget.locator(".jp-TaskflowExecution-title [data-status]").get_attribute(
        "data-status"
    ) in ("pending", "running")
    page.screenshot(path=str(SCREENSHOTS / "lab-widget-running.png"))
    page.wait_for_function(ALL_RAN, polling=500)
    widget.locator('.jp-TaskflowExecution-title [data-status="failed"]').wait_for()
    widget.locator('.jp-TaskflowDag-node[data-task="summary"][data-status="skipped"]').wait_for()
    assert widgets.count() == 2
    widget.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "lab-widget.png"))

    executions = lab.api("GET", "executions?workflow_id=widget_etl")
    assert isinstance(executions, list) and len(executions) == 1, executions
    exec_id = executions[0]["id"]
    detail = lab.api("GET", f"executions/{exec_id}")
    assert isinstance(detail, dict)
    statuses = {t["name"]: t["status"] for t in detail["tasks"]}
    assert statuses == {
        "extract": "completed",
        "transform": "failed",
        "validate": "completed",
        "route": "completed",
        "publish": "skipped",
        "quarantine": "skipped",
        "summary": "skipped",
    }
    counts = "3/7 completed · 3 skipped · 1 failed"

    mine = widget.evaluate(_DRAWN)
    assert {n: v["status"] for n, v in mine["nodes"].items()} == statuses
    assert mine["status"] == "failed"
    assert counts in mine["meta"] and exec_id in mine["meta"], mine["meta"]
    assert mine["bar"] == counts
    assert dict(mine["segments"]) == {"completed": 3, "skipped": 3, "failed": 1}
    assert len(mine["edges"]) == 10
    geometry = widget.evaluate(_GEOMETRY)
    assert len(geometry["nodes"]) == 7 and len(geometry["edges"]) == 10
    assert _edge_crossings(geometry) == []
    transform = next(r for r in mine["rows"] if r[0] == "transform")
    assert "ValueError: bad rows" in transform[-1], transform

    # The same execution in the panel: the same drawing, the same words.
    page.evaluate(
        "id => window.jupyterapp.commands.execute('taskflow:open-execution', {executionId: id})",
        exec_id,
    )
    view = page.locator(f"#taskflow-execution-{exec_id} .jp-TaskflowExecution")
    view.locator('.jp-TaskflowExecution-title [data-status="failed"]').wait_for()
    view.locator(".jp-TaskflowDag-edge").nth(9).wait_for(state="attached")
    theirs = view.evaluate(_DRAWN)
    page.screenshot(path=str(SCREENSHOTS / "lab-widget-panel.png"))
    for key in ("nodes", "edges", "size", "status", "segments", "bar", "rows"):
        assert mine[key] == theirs[key], (key, mine[key], theirs[key])
    # The meta line's elapsed part is the run's duration in both (it has ended).
    assert mine["meta"] == theirs["meta"]

    # The panel's list counts it the same way.
    page.locator('.jp-SideBar .lm-TabBar-tab[data-id="taskflow-panel"]').click()
    item = page.locator(
        f'#taskflow-panel .jp-TaskflowPanel-execution[data-execution-id="{exec_id}"]'
    )
    item.locator(".jp-TaskflowPanel-counts", has_text=counts).wait_for()
    listed = item.locator(".jp-TaskflowStatusBar-segment")
    assert {
        listed.nth(i).get_attribute("data-segment"): int(listed.nth(i).get_attribute("data-count"))
        for i in range(listed.count())
    } == {"completed": 3, "skipped": 3, "failed": 1}


def _panel_view(lab_page, exec_id: str, status: str):  # type: ignore[no-untyped-def]
    lab_page.evaluate(
        "id => window.jupyterapp.commands.execute('taskflow:open-execution', {executionId: id})",
        exec_id,
    )
    view = lab_page.locator(f"#taskflow-execution-{exec_id} .jp-TaskflowExecution")
    view.locator(f'.jp-TaskflowExecution-title [data-status="{status}"]').wait_for()
    return view


def test_a_random_50_task_dag_in_the_widget(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    """The seeded random DAG of test_lab_layout, drawn by the widget: no edge crosses a
    node box, and the panel draws the very same graph."""
    page.set_default_timeout(90_000)
    page.goto(f"{lab.url}lab/tree/{NOTEBOOK}?reset&token={lab.token}")
    page.wait_for_function(KERNEL_IDLE, polling=250)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RAN, polling=500)
    widget = page.locator(".jp-OutputArea-output .jp-TaskflowWidget .jp-TaskflowExecution").nth(1)
    widget.locator('.jp-TaskflowExecution-title [data-status="completed"]').wait_for()
    want = sum(len(deps) for _, deps in DENSE)
    widget.locator(".jp-TaskflowDag-edge").nth(want - 1).wait_for(state="attached")
    widget.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "lab-widget-random50.png"))
    geometry = widget.evaluate(_GEOMETRY)
    assert len(geometry["nodes"]) == 50 and len(geometry["edges"]) == want
    assert _edge_crossings(geometry) == []
    mine = widget.evaluate(_DRAWN)
    assert mine["meta"].startswith("50/50 completed")
    runs = lab.api("GET", "executions?workflow_id=random_50&limit=1")
    assert isinstance(runs, list) and runs, runs
    theirs = _panel_view(page, runs[0]["id"], "completed").evaluate(_DRAWN)
    for key in ("nodes", "edges", "size", "segments", "bar"):
        assert mine[key] == theirs[key], key
