"""A server resumes, at start, the executions that a dead previous owner left running."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from .helpers import REPO

DIE_MID_RUN = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {repo!r})
    from pytaskflow_jupyter import EventBus, Runner, Store, make_executor
    store = Store({db!r})
    runner = Runner(store, make_executor("thread"), EventBus())
    execution = runner.submit({{"name": "interrupted", "tasks": [
        {{"name": "first", "params": {{"code": "result = 'kept'"}}}},
        {{"name": "slow", "dependencies": ["first"], "retries": 1, "params": {{"code":
            "import os, time\\nif os.environ.get('DIE'): time.sleep(60)\\nresult = 'rerun'"}}}}]}})
    while runner.get(execution["id"])["tasks"][1]["status"] != "running":
        time.sleep(0.01)
    print(execution["id"], flush=True)
    os._exit(1)  # the owner dies with "slow" running
""")


@pytest.fixture
def db_path(tmp_path):
    """A database whose execution's owner died mid-run, before the server starts."""
    path = tmp_path / "db" / "taskflow.db"
    path.parent.mkdir()
    code = DIE_MID_RUN.format(repo=str(REPO), db=str(path))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"DIE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout.strip(), proc.stderr
    path.with_suffix(".id").write_text(proc.stdout.split()[0])
    return path


async def test_server_resumes_executions_of_a_dead_owner(api, db_path, taskflow_app):
    execution_id = db_path.with_suffix(".id").read_text()
    done = await api.wait(execution_id, timeout=60)
    assert done["status"] == "completed"
    first, slow = done["tasks"]
    assert first["result"] == "kept" and first["attempts"] == 1  # never rerun
    assert slow["result"] == "rerun" and slow["attempts"] == 2  # at least once
    row = await taskflow_app.run(taskflow_app.store.execution_row, execution_id)
    assert row["owner"] == taskflow_app.runner.owner
