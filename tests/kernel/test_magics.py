"""``%taskflow`` / ``%%taskflow`` in a real IPython shell, on a real engine and store."""

from __future__ import annotations

import json
import os

import pytest

from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.kernel.api import Run
from pytaskflow_jupyter.runner import SUBMITTED, Runner
from pytaskflow_jupyter.store import Store

YAML = """\
name: Magic Demo
id: magic_demo
tasks:
  - name: numbers
    params: {callable: make_numbers, kwargs: {n: 4}}
  - name: total
    dependencies: [numbers]
    params: {callable: add_up}
  - name: label
    dependencies: [total]
    params:
      code: "result = f\\"total={upstream['total']}\\""
"""

FUNCTIONS = """\
def make_numbers(n):
    return list(range(n))

def add_up(numbers, scale=1):
    print("adding", numbers)
    return sum(numbers) * scale
"""


@pytest.fixture
def tf(shell, session, magic):
    """Run a ``%taskflow`` line and return (value, stdout, stderr)."""
    shell.run_cell(FUNCTIONS)
    return magic


def test_help_lists_every_command(tf):
    _, out, err = tf("help")
    assert err == ""
    for command in (
        "list",
        "run ID",
        "status",
        "executions",
        "cancel",
        "retry",
        "logs",
        "submit",
        "help",
        "%%taskflow",
    ):
        assert command in out
    assert tf("")[1] == out  # no command: the help


def test_cell_registers_a_definition_in_the_shared_database(tf, db_path):
    value, out, err = tf("", YAML)
    assert value is None and err == ""
    assert out.strip() == "registered workflow 'magic_demo' (revision 1, 3 tasks)"
    other = Store(db_path)
    try:
        stored = other.workflow("magic_demo").definition
    finally:
        other.close()
    assert stored["tasks"][0]["params"] == {"callable": "make_numbers", "kwargs": {"n": 4}}
    table, _, _ = tf("list")
    assert "magic_demo" in repr(table) and "Magic Demo" in table._repr_html_()
    as_json = json.dumps({"name": "Magic Demo", "id": "magic_demo", "tasks": [{"name": "only"}]})
    assert "revision 2, 1 tasks" in tf("", as_json)[1]


def test_cell_run_wait_passes_notebook_results_downstream(tf):
    run, _, err = tf("--run --wait --param scale=10", YAML)
    assert isinstance(run, Run) and err == ""
    assert run.status == "completed"
    assert run.results == {"numbers": [0, 1, 2, 3], "total": 60, "label": "total=60"}
    assert run.logs("total")[0]["stdout"] == "adding [0, 1, 2, 3]\n"


def test_run_status_executions_logs_and_retry(tf, shell):
    tf("", YAML)
    run, _, err = tf("run magic_demo --wait --param scale=2")
    assert err == "" and run.status == "completed" and run.results["total"] == 12
    assert tf("status")[0].id == run.id
    assert tf(f"status {run.id}")[0].text() == run.text()
    table, _, _ = tf("executions magic_demo")
    assert table.rows[0][:4] == [run.id, "magic_demo", "completed", "3/3 completed"]
    _, out, _ = tf(f"logs {run.id} total")
    assert out == "--- total, attempt 1 ---\nadding [0, 1, 2, 3]\n"

    shell.run_cell("def add_up(numbers):\n    raise ArithmeticError('overflow')")
    failed, _, _ = tf("run magic_demo --wait")
    assert failed.status == "failed"
    assert failed.errors == {"total": "ArithmeticError: overflow"}
    shell.run_cell("def add_up(numbers):\n    return -1")  # fix the function, retry
    retried, _, err = tf(f"retry {failed.id} --wait")
    assert err == ""
    assert retried.status == "completed"
    assert retried.results == {"numbers": [0, 1, 2, 3], "total": -1, "label": "total=-1"}
    rerun, _, _ = tf(f"retry {retried.id} --rerun numbers --wait")
    assert rerun.status == "completed" and rerun.execution["parentId"] == retried.id


def test_run_returns_at_once_and_cancel(tf, shell, gate):
    shell.user_ns["hold"] = gate
    tf("", "name: held\ntasks:\n  - name: hold\n    params: {callable: hold}\n")
    run, _, _ = tf("run held")
    assert gate.entered.wait(30)
    assert run.status == "running"
    _, out, err = tf(f"cancel {run.id}")
    assert err == ""
    assert out.strip() == f"cancel requested for {run.id} (held): cancelled"


def test_submit_hands_the_execution_to_the_server(tf, db_path):
    tf("", YAML)
    tf("", "name: server side\ntasks:\n  - name: a\n    params: {code: 'result = 6 * 7'}\n")
    run, out, err = tf("submit server_side --param x=1")
    assert err == ""
    assert out.startswith(f"submitted {run.id} (server_side) to the Jupyter server")
    store = Store(db_path)
    try:
        row = store.execution_row(run.id)
        assert (row["status"], row["owner"], row["params"]) == ("pending", SUBMITTED, {"x": 1})
        server = Runner(store, ThreadExecutor(2))  # the server's runner, on its own store
        try:
            assert server.adopt_submitted() == [run.id]
            assert server.wait(run.id, timeout=30)["status"] == "completed"
        finally:
            server.close()
    finally:
        store.close()
    assert run.wait(30).results == {"a": 42}
    # notebook functions defined in this kernel: snapshotted into a new revision first
    run, out, err = tf("submit magic_demo")
    assert err == ""
    assert "snapshotted the notebook function(s) of numbers, total from this kernel " in out
    assert run.execution["revision"] == 2


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("run no_such_workflow", None, "unknown workflow 'no_such_workflow'"),
        ("status exec_doesnotexist", None, "unknown execution 'exec_doesnotexist'"),
        ("frobnicate", None, "invalid choice: 'frobnicate'"),
        ("run magic_demo --param novalue", None, "--param 'novalue' must look like key=value"),
        ("run magic_demo --executor warp", None, "unknown executor 'warp'"),
        ("run", None, "the following arguments are required: workflow"),
        ("run 'unclosed", None, "No closing quotation"),
        ("executions nope", None, "unknown workflow 'nope'"),
        ("", "name: x\ntasks: [", "the cell is not valid YAML or JSON (line 3, column 1)"),
        ("", "name: x\ntasks:\n  - {name: a, dependancies: [b]}\n", "unknown key 'dependancies'"),
        (
            "",
            "name: c\ntasks:\n  - {name: a, dependencies: [b]}\n  - {name: b, dependencies: [a]}\n",
            "dependency cycle",
        ),
        ("--frob", "name: x\ntasks: [{name: a}]", "unrecognized arguments: --frob"),
    ],
)
def test_bad_input_prints_one_clear_line(shell, tf, capsys, line, cell, message):
    tf("", YAML)
    source = f"%%taskflow {line}\n{cell}" if cell is not None else f"%taskflow {line}"
    result = shell.run_cell(source)
    out = capsys.readouterr()
    assert result.success  # the cell goes on: no exception, no traceback
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("taskflow: error: ")
    assert message in lines[0]
    assert "Traceback" not in out.out + out.err


def test_cancel_of_a_finished_execution_is_one_line(tf):
    run, _, _ = tf("--run --wait", YAML)
    _, out, err = tf(f"cancel {run.id}")
    assert out == ""
    assert err.strip() == f"taskflow: error: execution {run.id!r} is already completed"


def test_status_without_any_execution(tf):
    _, _, err = tf("status")
    assert err.strip() == "taskflow: error: no execution yet"
    table, _, _ = tf("executions")
    assert repr(table) == "no executions yet"


def test_notebook_functions_run_in_worker_processes(tf, shell):
    """``--executor process``: the notebook functions travel by cloudpickle."""
    shell.run_cell(
        "import os\ndef where(numbers):\n    return {'pid': os.getpid(), 'total': sum(numbers)}"
    )
    definition = YAML.replace("params: {callable: add_up}", "params: {callable: where}")
    run, _, err = tf("--run --wait --executor process", definition)
    assert err == ""
    assert run.status == "completed", run.errors
    result = run.results["total"]
    assert result["total"] == 6
    assert result["pid"] != os.getpid()
    assert run.results["label"] == f"total={result}"
    assert run.execution["executor"] == "process"
