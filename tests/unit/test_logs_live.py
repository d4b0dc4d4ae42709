"""What a task prints, while it runs and after it was stopped, and where its traceback starts.

Through a ``Runner`` on a real SQLite file and the real thread and process executors: the
logs route shows what a running python task printed so far (reported every
``tasks.LIVE_LOGS_INTERVAL``); an attempt that times out or is cancelled keeps what it
printed; a failing task's traceback starts at its own code, not at the frames of the
package that called it.
"""

from __future__ import annotations

import pytest

from pytaskflow_jupyter.events import EventBus
from pytaskflow_jupyter.executors import make_executor
from pytaskflow_jupyter.runner import Runner

from .helpers import task, wait_until, wf

PRINTS = "import time\nfor i in range(200):\n    print('line', i, flush=True)\n    time.sleep(0.05)"


@pytest.fixture(params=["thread", "process"])
def runner(request, store):
    executor = make_executor(request.param, workers=2)
    r = Runner(store, executor, EventBus())
    yield r
    r.close()
    executor.shutdown()


def _stdout(runner, execution_id, name="a"):
    attempts = runner.get_logs(execution_id, name)
    return attempts[0]["stdout"] if attempts else ""


def test_the_logs_of_a_running_task_grow_while_it_runs(runner):
    execution = runner.submit(wf(task("a", code=PRINTS)))
    first = wait_until(lambda: _stdout(runner, execution["id"]), timeout=30)
    assert first.startswith("line 0\n")
    assert runner.get(execution["id"])["tasks"][0]["status"] == "running"
    wait_until(lambda: len(_stdout(runner, execution["id"])) > len(first) + 20, timeout=30)
    runner.cancel(execution["id"])


def test_a_timed_out_attempt_keeps_what_it_printed(runner):
    # long enough for reports to come in on a loaded machine (its clock starts when the
    # attempt does, not at the hand-off: a slow worker start does not eat it)
    execution = runner.submit(wf(task("a", code=PRINTS, timeout=5)))
    done = runner.wait(execution["id"], 60)
    assert done["tasks"][0]["reason"] == "timeout"
    kept = wait_until(lambda: _stdout(runner, execution["id"]), timeout=10)
    assert kept.startswith("line 0\nline 1\n")


def test_a_cancelled_attempt_keeps_what_it_printed(runner):
    execution = runner.submit(wf(task("a", code=PRINTS)))
    wait_until(lambda: "line 3\n" in _stdout(runner, execution["id"]), timeout=30)
    assert runner.cancel(execution["id"])["tasks"][0]["status"] == "cancelled"
    assert "line 3\n" in _stdout(runner, execution["id"])


def test_a_traceback_starts_at_the_tasks_code(runner):
    code = "def inner():\n    raise ValueError('bad row')\ninner()"
    definition = wf(task("a", code=code), task("b", callable="no_such_module:f"))
    done = runner.wait(runner.submit(definition)["id"], 60)
    a, b = done["tasks"]
    assert a["traceback"].splitlines() == [
        "Traceback (most recent call last):",
        '  File "<task a>", line 3, in <module>',
        '  File "<task a>", line 2, in inner',
        "ValueError: bad row",
    ]
    assert "pytaskflow_jupyter" not in a["traceback"]
    assert b["traceback"].strip() == (
        "pytaskflow_jupyter.errors.TaskCodeError: cannot import callable "
        "'no_such_module:f': No module named 'no_such_module'"
    )
