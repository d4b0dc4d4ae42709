"""The example notebooks' workflows, as the labextension's geometry test lays them out.

``labextension/src/__tests__/dag.test.ts`` checks that no edge of the DAG the panel and
the widget draw crosses a node box, on the workflows of ``notebooks/*.ipynb`` among
others. Node cannot run notebooks, so the graphs are a fixture,
``labextension/src/__tests__/fixtures/notebook-workflows.json``: every workflow a
notebook registers (its latest revision: task names and dependencies, in definition
order), by notebook. This test runs each notebook in a real kernel (nbclient, a copy of
``notebooks/`` and a database of its own) and fails when the fixture is not what the
notebooks define now. ``PYTASKFLOW_UPDATE_FIXTURES=1`` rewrites it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from pytaskflow_jupyter.store import Store

from .conftest import REPO
from .test_notebooks import NOTEBOOKS, execute

pytestmark = pytest.mark.notebook

FIXTURE = REPO / "labextension" / "src" / "__tests__" / "fixtures" / "notebook-workflows.json"


def _workflows(db: Path) -> dict[str, list[dict[str, object]]]:
    store = Store(db)
    try:
        return {
            record.definition["id"]: [
                {"name": t["name"], "dependencies": list(t.get("dependencies", []))}
                for t in record.definition["tasks"]
            ]
            for record in sorted(store.workflows(), key=lambda r: r.definition["id"])
        }
    finally:
        store.close()


def test_the_geometry_fixture_is_what_the_notebooks_define(tmp_path, monkeypatch, kernel_env):
    found: dict[str, dict[str, list[dict[str, object]]]] = {}
    for path in NOTEBOOKS:
        folder = tmp_path / path.stem
        shutil.copytree(REPO / "notebooks", folder)
        db = tmp_path / f"{path.stem}.db"
        monkeypatch.setenv("PYTASKFLOW_DB", str(db))  # the kernel's, one per notebook
        execute(nbformat.read(folder / path.name, as_version=4), folder)
        found[path.name] = _workflows(db)
    assert all(found.values()), found
    text = json.dumps(found, indent=2) + "\n"
    if os.environ.get("PYTASKFLOW_UPDATE_FIXTURES"):
        FIXTURE.write_text(text)
    assert FIXTURE.exists() and json.loads(FIXTURE.read_text()) == found, (
        f"{FIXTURE.relative_to(REPO)} is stale: rerun with PYTASKFLOW_UPDATE_FIXTURES=1"
    )
