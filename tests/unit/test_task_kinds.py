"""Every registered task kind runs end to end (issue 10: a kind that validates but cannot
run -- as ``notebook`` once did -- fails here).

Each kind of ``kinds.KINDS`` needs a sample below: a task definition using it and the
result the execution must show. A kind added to the registry without a sample fails
``test_every_kind_has_a_sample``; a kind whose ``run`` is broken fails the run test,
through the thread and the process executors, validation and the store included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from pytaskflow_jupyter.events import EventBus
from pytaskflow_jupyter.executors import make_executor
from pytaskflow_jupyter.kinds import KINDS
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.server.openapi import openapi

from .helpers import task, wf


def _python(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    return [task("p", code="result = params['n'] * 2", kwargs={"n": 21})], {"p": 42}


def _branch(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tasks = [
        task("choose", type="branch", code="result = 'yes'"),
        task("yes", "choose", code="result = 'ran'"),
        task("no", "choose", code="result = 'never'"),
    ]
    return tasks, {"choose": ["yes"], "yes": "ran", "no": None}


def _notebook(root: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    nb = new_notebook(
        cells=[
            new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
            new_code_cell("result = {'n': n, 'twice': n * 2}"),
        ]
    )
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (root / "nb").mkdir()
    nbformat.write(nb, root / "nb" / "double.ipynb")
    params = {"path": "nb/double.ipynb", "parameters": {"n": 5}}
    return [task("n", type="notebook", params=params, timeout=120)], {"n": {"n": 5, "twice": 10}}


SAMPLES: dict[str, Callable[[Path], tuple[list[dict[str, Any]], dict[str, Any]]]] = {
    "python": _python,
    "branch": _branch,
    "notebook": _notebook,
}


def test_every_kind_has_a_sample():
    assert sorted(SAMPLES) == sorted(KINDS)


def test_openapi_describes_every_kind():
    text = str(openapi("/"))
    for name, kind in KINDS.items():
        assert name in text
        for field in kind.FIELDS:
            assert field in text, (name, field)


@pytest.mark.parametrize("executor", ["thread", "process"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_runs_end_to_end(kind, executor, store, tmp_path):
    tasks, expected = SAMPLES[kind](tmp_path)
    ex = make_executor(executor, workers=2)
    runner = Runner(store, ex, EventBus(), root_dir=str(tmp_path), heartbeat_interval=0.2)
    try:
        done = runner.wait(runner.submit(wf(*tasks, name=f"kind_{kind}"))["id"], 180)
        detail = {t["name"]: t for t in runner.get(done["id"])["tasks"]}
        assert done["status"] == "completed", {n: t["error"] for n, t in detail.items()}
        assert {n: detail[n]["result"] for n in expected} == expected
    finally:
        runner.close()
        ex.shutdown(wait=False)
