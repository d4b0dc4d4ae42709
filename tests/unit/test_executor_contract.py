"""One contract every executor passes (dask's GetFunctionTestMixin idea).

Each test runs real task code through a real executor, either directly
(``submit`` + ``report``) or end to end through a Runner.
"""

from __future__ import annotations

import queue

import pytest

from pytaskflow_jupyter.executors import EXECUTORS, make_executor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.tasks import Job, Outcome, Started

from .helpers import statuses, task, wf

S = "tests.unit.sample_tasks"
KINDS = [k for k in ("inline", "thread", "process", "dask") if k in EXECUTORS]


@pytest.fixture(params=KINDS, scope="module")
def executor(request):
    ex = make_executor(request.param, workers=2)
    yield ex
    ex.shutdown(wait=False)


def run_one(executor, job, timeout=60):
    q: queue.SimpleQueue = queue.SimpleQueue()
    executor.submit(job, q.put)
    return q.get(timeout=timeout)


def job(name="t", type="python", params=None, upstream=None, **kw):
    return Job("exec_test", "wf", name, 1, type, params or {}, upstream or {}, **kw)


def test_noop_completes_with_none(executor):
    out = run_one(executor, job())
    assert out.ok and out.result is None and out.task == "t" and out.attempt == 1


def test_callable_gets_kwargs(executor):
    out = run_one(executor, job(params={"callable": f"{S}:add", "kwargs": {"a": 2, "b": 3}}))
    assert out.ok and out.result == 5


def test_callable_gets_upstream_and_execution_params(executor):
    out = run_one(
        executor,
        job(
            params={"callable": f"{S}:with_upstream"},
            upstream={"a": 2, "b": 5},
            exec_params={"scale": 10},
        ),
    )
    assert out.result == 70


def test_callable_gets_context(executor):
    out = run_one(executor, job(name="ctx", params={"callable": f"{S}:with_context"}))
    assert out.result == {"task": "ctx", "attempt": 1}


def test_code_sees_params_and_upstream(executor):
    code = "result = params['k'] + upstream['a']"
    out = run_one(executor, job(params={"code": code, "kwargs": {"k": 1}}, upstream={"a": 41}))
    assert out.ok and out.result == 42


def test_exception_becomes_failed_outcome(executor):
    out = run_one(executor, job(params={"callable": f"{S}:boom"}))
    assert not out.ok
    assert out.error == "RuntimeError: boom"
    assert "RuntimeError" in out.traceback


def test_stdout_and_stderr_are_captured(executor):
    out = run_one(executor, job(params={"callable": f"{S}:noisy"}))
    assert out.stdout == "to stdout\n" and out.stderr == "to stderr\n"


def test_captured_output_is_capped(executor):
    code = "print('x' * 10000)"
    out = run_one(executor, job(params={"code": code}, log_limit=100))
    assert out.ok and len(out.stdout) == 100


def test_unimportable_callable_fails_clearly(executor):
    out = run_one(executor, job(params={"callable": "no_such_module_xyz:f"}))
    assert not out.ok and "cannot import callable 'no_such_module_xyz:f'" in out.error


def test_notebook_name_without_kernel_fails_clearly(executor):
    out = run_one(executor, job(params={"callable": "my_notebook_function"}))
    assert not out.ok and "notebook function" in out.error


def test_branch_result_is_a_list(executor):
    out = run_one(executor, job(type="branch", params={"code": "result = 'b'"}))
    assert out.ok and out.result == ["b"]


def test_end_to_end_through_a_runner(executor, store):
    runner = Runner(store, executor)
    try:
        ex = runner.submit(
            wf(
                task("a", callable=f"{S}:add", kwargs={"a": 1, "b": 2}),
                task("b", "a", code="result = upstream['a'] * 2"),
                task("c", "a", callable=f"{S}:boom"),
                task("d", "b", "c"),
            )
        )
        done = runner.wait(ex["id"], 120)
    finally:
        runner.close()
    assert done["status"] == "failed"
    assert statuses(done) == {"a": "completed", "b": "completed", "c": "failed", "d": "skipped"}
    assert [t["result"] for t in done["tasks"]][:2] == [3, 6]


def test_an_attempt_with_a_timeout_reports_its_start_first(executor):
    q: queue.SimpleQueue = queue.SimpleQueue()
    executor.submit(job(params={"code": "result = 1"}, timeout=30), q.put)
    first = q.get(timeout=60)
    if executor.reports_start:
        assert isinstance(first, Started) and (first.task, first.attempt) == ("t", 1)
        first = q.get(timeout=60)
    assert isinstance(first, Outcome) and first.ok and first.result == 1
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)  # nothing more: one report per attempt


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "inline"])
def test_stopping_a_queued_attempt_reports_it_once_and_it_never_runs(kind, tmp_path):
    ex = make_executor(kind, workers=1)
    try:
        marker = tmp_path / "ran"
        q: queue.SimpleQueue = queue.SimpleQueue()
        ex.submit(job("busy", params={"callable": f"{S}:sleep", "kwargs": {"seconds": 1}}), q.put)
        queued = ex.submit(job("queued", params={"code": f"open({str(marker)!r}, 'w')"}), q.put)
        ex.stop(queued)
        outcomes = [q.get(timeout=60), q.get(timeout=60)]
        with pytest.raises(queue.Empty):
            q.get(timeout=1.5)
    finally:
        ex.shutdown(wait=False)
    by_task = {o.task: o for o in outcomes}
    assert set(by_task) == {"busy", "queued"}
    assert not by_task["queued"].ok and by_task["queued"].error.startswith("Stopped")
    assert by_task["busy"].ok
    assert not marker.exists()
