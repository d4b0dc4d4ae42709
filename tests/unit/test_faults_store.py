"""Faults of issue 15 in the store and the run state (items 7, 8 and 13), on real SQLite
files and real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from pytaskflow_jupyter.store import Store

from .helpers import task, wf

# One "server" process: it submits the execution (first run) or resumes what the dead
# ones left (recover), with the inline executor, so a task that exits the process kills
# the server running it. It prints the execution when it ends.
SERVER = textwrap.dedent(
    """
    import json, sys
    from pytaskflow_jupyter.executors import InlineExecutor
    from pytaskflow_jupyter.runner import Runner
    from pytaskflow_jupyter.store import Store

    store = Store(sys.argv[1])
    runner = Runner(store, InlineExecutor(), role="server", max_interruptions=2)
    if sys.argv[2] == "submit":
        execution_id = runner.submit(json.loads(sys.argv[3]))["id"]
    else:
        (execution_id,) = runner.recover()
    done = runner.wait(execution_id, 60)
    print(json.dumps({t["name"]: [t["status"], t["attempts"], t["reason"]]
                      for t in done["tasks"]}))
    runner.close()
    """
)


def serve(db, *args):
    return subprocess.run(
        [sys.executable, "-c", SERVER, str(db), *args], capture_output=True, text=True, timeout=120
    )


def test_a_task_that_keeps_killing_the_server_is_rerun_then_fails_interrupted(tmp_path):
    """Item 13: an interruption is not a failure. 'killer' (retries 0) kills the server
    running it at every attempt: each next server reruns it without using up a retry,
    until it was interrupted more than max_interruptions (2) times; then it fails with
    reason ``interrupted``. The count is durable across the processes."""
    db = tmp_path / "taskflow.db"
    definition = wf(
        task("ok", code="result = 1"),
        task("killer", "ok", code="import os; os._exit(3)", retries=0),
        name="killing",
    )
    first = serve(db, "submit", json.dumps(definition))
    assert first.returncode == 3, first.stderr
    for _ in range(2):  # two reruns: each kills its server too
        again = serve(db, "recover")
        assert again.returncode == 3, again.stdout + again.stderr
    last = serve(db, "recover")
    assert last.returncode == 0, last.stderr
    assert json.loads(last.stdout) == {
        "ok": ["completed", 1, None],
        "killer": ["failed", 3, "interrupted"],
    }
    store = Store(db)
    (runs,) = [store.task_runs(row["id"]) for row in store.list_executions()[0]]
    assert runs["killer"].interruptions == 3
    store.close()
