"""Notebook tasks and workflow parameters in a real JupyterLab, through Debian's Chromium.

A user right-clicks a notebook in the file browser, picks *Run as TaskFlow task…*, fills
the form built from its ``parameters`` cell (an int field refuses "abc"), runs it, watches
the cell progress move in the execution view, and opens the executed copy from the
*output notebook* link. Then a workflow that declares parameters is run from the panel's
*Run with parameters…* with edited values.

The server is test_lab_panel's, with two differences. It runs with
``--ContentsManager.allow_hidden=True``: the executed copies live under the default
``TaskFlowApp.runs_dir`` (``.taskflow/runs``), a hidden folder that Jupyter's contents
service refuses to serve otherwise (the view then says so instead of opening it). And it
serves the labextension as this checkout last built it (``jlpm build`` writes
``pytaskflow_jupyter/labextension/``) through ``JUPYTER_PATH``, which comes first: an
editable install's ``share/jupyter/labextensions/`` holds a copy made when it was installed.
Screenshots: ci-artifacts/screenshots/notebook-*.png.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.browser.test_lab_panel import (
    SCREENSHOTS,
    Lab,
    _open_lab,
    new_lab,
    page,  # noqa: F401  (the fixture, with this module's lab)
)
from tests.chromium import require_chromium

pytestmark = pytest.mark.browser

NOTEBOOK = "slow_report.ipynb"
WORKFLOW_ID = "notebook_slow_report_ipynb"  # derive_id("notebook slow_report.ipynb")
SLOW_CELLS = 6


def _write_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('n: int = 3  # rows\nlabel = "x"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("A slow report for the browser test."),
        params,
        nbformat.v4.new_code_cell("import time"),
        *[
            nbformat.v4.new_code_cell(f"time.sleep(0.7)\nprint('cell {i}', n, label)")
            for i in range(SLOW_CELLS)
        ],
        nbformat.v4.new_code_cell("result = {'n': n, 'label': label}"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """test_lab_panel's server (same flags), allowed to serve the hidden runs folder."""
    require_chromium()
    tmp = tmp_path_factory.mktemp("lab-notebooks")
    root = tmp / "root"
    root.mkdir()
    _write_notebook(root / NOTEBOOK)
    lab = new_lab(tmp, root, "--ContentsManager.allow_hidden=True", fresh_build=True)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if lab.log.exists():
            (SCREENSHOTS / "notebook-jupyter-lab.log").write_bytes(lab.log.read_bytes())


def _show_file_browser(lab_page) -> None:  # type: ignore[no-untyped-def]
    tab = lab_page.locator('.jp-SideBar .lm-TabBar-tab[data-id="filebrowser"]')
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    lab_page.locator("#filebrowser").wait_for(state="visible")


def test_run_notebook_from_the_file_browser(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    _open_lab(page, lab)
    _show_file_browser(page)
    item = page.locator('.jp-DirListing-item[data-file-type="notebook"]', has_text=NOTEBOOK)
    item.click(button="right")
    page.locator(".lm-Menu-item", has_text="Run as TaskFlow task…").click()

    # The form from the parameters cell: typed fields, prefilled with the defaults.
    dialog = page.locator(".jp-Dialog")
    form = dialog.locator(".jp-TaskflowForm")
    n = form.locator('[data-param="n"][data-kind="int"] input')
    label = form.locator('[data-param="label"][data-kind="str"] input')
    assert n.input_value() == "3"
    assert label.input_value() == "x"
    assert "rows" in form.locator('[data-param="n"]').inner_text()
    run = dialog.locator(".jp-Dialog-button.jp-mod-accept")
    assert run.is_enabled()

    n.fill("abc")
    form.locator('[data-param="n"] .jp-TaskflowForm-message').get_by_text(
        '"abc" is not an integer'
    ).wait_for()
    assert run.is_disabled()
    page.screenshot(path=str(SCREENSHOTS / "notebook-form-error.png"))
    # Enter accepts a JupyterLab dialog even so: the form comes back with what was typed.
    n.press("Enter")
    page.wait_for_timeout(300)
    assert n.input_value() == "abc"
    assert run.is_disabled()
    assert lab.api("GET", "executions") == []
    n.fill("5")
    label.fill("from the form")
    assert run.is_enabled()
    run.click()
    dialog.wait_for(state="detached")

    # The execution view opens; the cell progress moves while the notebook runs.
    view = page.locator('[id^="taskflow-execution-"] .jp-TaskflowExecution')
    view.wait_for(state="visible")
    execution_id = view.locator("xpath=..").get_attribute("id").removeprefix("taskflow-execution-")
    status = view.locator(".jp-TaskflowExecution-title [data-status]")
    seen: list[str] = []
    shot = 0
    deadline = time.monotonic() + 60
    while status.get_attribute("data-status") not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"still {status.get_attribute('data-status')}"
        for text in view.locator(".jp-TaskflowProgress-text").all_inner_texts():
            if re.fullmatch(r"cell \d+/\d+", text) and text not in seen:
                seen.append(text)
                done, total = map(int, re.findall(r"\d+", text))
                # One screenshot mid-run, taken again once past half way.
                if 0 < done < total and (not shot or shot * 2 < total <= done * 2):
                    page.screenshot(path=str(SCREENSHOTS / "notebook-progress.png"))
                    shot = done
        page.wait_for_timeout(100)
    assert status.get_attribute("data-status") == "completed", view.inner_text()
    assert len(seen) >= 2, f"the progress never moved: {seen}"
    assert shot, seen

    detail = lab.api("GET", f"executions/{execution_id}")
    assert isinstance(detail, dict) and detail["workflowId"] == WORKFLOW_ID, detail
    (task,) = detail["tasks"]
    assert task["result"] == {"n": 5, "label": "from the form"}, task
    assert re.fullmatch(rf"\.taskflow/runs/{execution_id}/slow_report\.ipynb", task["output"])
    definition = lab.api("GET", f"workflows/{WORKFLOW_ID}")
    assert isinstance(definition, dict)
    assert definition["tasks"][0]["params"] == {
        "path": NOTEBOOK,
        "parameters": {"n": 5, "label": "from the form"},
    }

    # The executed copy opens in a notebook tab, injected parameters and outputs included.
    link = view.locator(".jp-TaskflowExecution-output", has_text="output notebook")
    link.click()
    panel = page.locator(".jp-NotebookPanel:visible")
    panel.locator(".jp-Cell", has_text="from the form").first.wait_for()
    # The current tab is the copy's (its tooltip names the path), not the source notebook.
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    tab.and_(page.locator(f'[title*="Path: {task["output"]}"]')).wait_for()
    assert tab.inner_text().strip() == NOTEBOOK
    panel.locator(".jp-OutputArea-output", has_text="cell 5 5 from the form").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "notebook-output.png"))

    # The notebook's toolbar has the same command, for the notebook it belongs to.
    panel.locator(".jp-Toolbar .jp-TaskflowRunNotebook").click()
    dialog.locator(
        ".jp-Dialog-header", has_text=f"Run {task['output']} as a TaskFlow task"
    ).wait_for()
    dialog.locator('[data-param="n"] input').wait_for()
    dialog.locator(".jp-Dialog-button.jp-mod-reject").click()
    dialog.wait_for(state="detached")


def test_run_with_parameters_from_the_panel(lab: Lab, page) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    echo = {"name": "echo", "params": {"code": "result = dict(params)"}}
    first = lab.api(
        "POST",
        "workflows",
        {
            "id": "params_demo",
            "name": "Params demo",
            "parameters": {"limit": 2, "region": "eu", "dry": False},
            "tasks": [echo],
        },
    )
    assert isinstance(first, dict)
    _open_lab(page, lab)
    panel = page.locator("#taskflow-panel")
    row = panel.locator('.jp-TaskflowPanel-workflow[data-workflow-id="params_demo"]')
    row.locator('button[data-action="run-with-parameters"]').click()

    dialog = page.locator(".jp-Dialog")
    form = dialog.locator(".jp-TaskflowForm")
    limit = form.locator('[data-param="limit"][data-kind="int"] input')
    region = form.locator('[data-param="region"][data-kind="str"] input')
    dry = form.locator('[data-param="dry"][data-kind="bool"] input[type="checkbox"]')
    assert (limit.input_value(), region.input_value(), dry.is_checked()) == ("2", "eu", False)
    run = dialog.locator(".jp-Dialog-button.jp-mod-accept")
    limit.fill("2.5")
    form.locator('[data-param="limit"]').get_by_text('"2.5" is not an integer').wait_for()
    assert run.is_disabled()
    limit.fill("9")
    region.fill("us")
    dry.check()
    page.screenshot(path=str(SCREENSHOTS / "notebook-workflow-form.png"))
    run.click()
    dialog.wait_for(state="detached")

    view = page.locator(
        '[id^="taskflow-execution-"] .jp-TaskflowExecution',
        has=page.locator("h2", has_text="Params demo"),
    )
    view.locator('.jp-TaskflowExecution-title [data-status="completed"]').wait_for(timeout=60_000)
    runs = lab.api("GET", "executions?workflow_id=params_demo")
    assert isinstance(runs, list) and len(runs) == 2, runs
    newest = next(r for r in runs if r["id"] != first["id"])
    detail = lab.api("GET", f"executions/{newest['id']}")
    assert isinstance(detail, dict)
    expected = {"limit": 9, "region": "us", "dry": True}
    assert detail["params"] == expected, detail
    assert detail["tasks"][0]["result"] == expected, detail
