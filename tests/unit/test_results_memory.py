"""Results in memory: kept only while a task downstream may still start, large ones
spilled under ``runs_dir`` and loaded by the consumer's worker, nothing kept after the
execution (``results.py``, ``transitions.RunState.results``). Real executors, a real
store; no timing assertions."""

from __future__ import annotations

import gc
import hashlib
import threading
import weakref
from pathlib import Path

import pytest

from pytaskflow_jupyter.engine import ExecutionRun, stored_result
from pytaskflow_jupyter.events import EventBus
from pytaskflow_jupyter.executors import ProcessExecutor, ThreadExecutor
from pytaskflow_jupyter.model import TaskRun
from pytaskflow_jupyter.results import Spill, spill, spill_path
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.validation import parse_workflow

from .helpers import task, wait_until, wf

M = "tests.unit.test_results_memory"
BIG = bytes(range(256)) * 8192  # 2 MiB: over the spill threshold (1 MiB pickled)
DIGEST = hashlib.sha256(BIG).hexdigest()
CONSUME = (
    "import glob, hashlib\n"
    "result = [hashlib.sha256(upstream['a']).hexdigest(),\n"
    "          len(glob.glob(params['runs'] + '/*/results/*.pickle'))]\n"
)
RECEIVED = (
    "import hashlib\n"
    "v = upstream['a']\n"
    "result = v if isinstance(v, dict) else hashlib.sha256(v).hexdigest()\n"
)

# -- task callables of the thread executor's tests (same process as the test) ---------
REFS: dict[str, weakref.ref[Box]] = {}
GATE = threading.Event()


class Box:
    """A result that is not JSON (the store keeps a summary), small enough to stay in
    memory (not spilled), and weakly referable."""

    def __init__(self, name: str) -> None:
        self.name = name


def make_box(context, upstream):
    box = Box(context["task"])
    REFS[context["task"]] = weakref.ref(box)
    return box


def gated_box(context, upstream):
    GATE.wait(30)
    return make_box(context, upstream)


def _dead(name: str) -> bool:
    gc.collect()
    return REFS[name]() is None


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def _runner(store, executor, runs: Path):
    return Runner(store, executor, EventBus(), heartbeat_interval=0.2, runs_dir=str(runs))


@pytest.fixture
def thread_runner(store, runs):
    executor = ThreadExecutor(2)
    r = _runner(store, executor, runs)
    yield r
    r.close()
    executor.shutdown(wait=False)


@pytest.fixture(scope="module")
def process_executor():
    executor = ProcessExecutor(2)
    yield executor
    executor.shutdown(wait=False)


@pytest.fixture
def process_runner(store, process_executor, runs):
    r = _runner(store, process_executor, runs)
    yield r
    r.close()


def _results(execution):
    return {t["name"]: t["result"] for t in execution["tasks"]}


# -- release ----------------------------------------------------------------------------
def test_a_result_is_released_once_its_only_consumer_ran_and_nothing_is_kept_after(
    thread_runner,
):
    GATE.clear()
    REFS.clear()
    ex = thread_runner.submit(
        wf(
            task("a", callable=f"{M}:make_box"),
            task("b", "a", callable=f"{M}:make_box"),
            task("c", "b", callable=f"{M}:gated_box"),
        )
    )
    wait_until(lambda: thread_runner.get(ex["id"])["tasks"][2]["status"] == "running")
    try:
        assert _dead("a")  # b, its only consumer, completed
        assert not _dead("b")  # c runs with it
    finally:
        GATE.set()
    done = thread_runner.wait(ex["id"], 30)
    assert done["status"] == "completed"
    # REST shows what the store keeps, as before: a summary of a non-JSON result
    assert [t["result"]["type"] for t in done["tasks"]] == ["Box", "Box", "Box"]
    wait_until(lambda: not thread_runner.active())
    # idle pool threads keep their last attempt: it holds neither inputs nor the run
    assert _dead("a") and _dead("b") and _dead("c")
    gc.collect()
    # (this execution's run: other tests' runs may still be winding down in the suite)
    assert not [
        o for o in gc.get_objects() if isinstance(o, ExecutionRun) and o.execution_id == ex["id"]
    ]


def test_a_consumer_with_a_retry_left_keeps_the_result_until_it_ends(thread_runner, runs):
    ex = thread_runner.submit(
        wf(
            task("a", code="result = {'n': 41}"),
            task(
                "b",
                "a",
                retries=1,
                retry_delay=0,
                code="if context['attempt'] == 1:\n    raise RuntimeError('once')\n"
                "result = upstream['a']['n'] + 1",
            ),
        )
    )
    done = thread_runner.wait(ex["id"], 30)
    assert done["status"] == "completed"
    assert _results(done) == {"a": {"n": 41}, "b": 42}


# -- spill --------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_large_result_is_spilled_and_its_consumer_gets_the_same_value(executor, request, runs):
    runner = request.getfixturevalue(f"{executor}_runner")
    ex = runner.submit(
        wf(
            task("a", code=f"result = bytes(range(256)) * {len(BIG) // 256}"),
            task("b", "a", code=CONSUME, kwargs={"runs": str(runs)}, retries=1, retry_delay=0),
        )
    )
    done = runner.wait(ex["id"], 60)
    assert done["status"] == "completed", done
    results = _results(done)
    assert results["b"] == [DIGEST, 1]  # the same bytes, read from the one spilled file
    assert results["a"] == stored_result(BIG)  # what REST showed before spilling
    # the files go when the execution ends (they serve a resumed execution until then)
    wait_until(lambda: not runner.active())
    assert not list(runs.glob("*/results/*"))


def test_a_retried_consumer_reads_the_spilled_result_again(thread_runner, runs):
    ex = thread_runner.submit(
        wf(
            task("a", code=f"result = bytes(range(256)) * {len(BIG) // 256}"),
            task(
                "b",
                "a",
                retries=1,
                retry_delay=0,
                kwargs={"runs": str(runs)},
                code="if context['attempt'] == 1:\n    raise RuntimeError('once')\n" + CONSUME,
            ),
        )
    )
    done = thread_runner.wait(ex["id"], 30)
    assert done["status"] == "completed", done
    assert _results(done)["b"] == [DIGEST, 1]
    assert done["tasks"][1]["attempts"] == 2


def test_a_small_or_unpicklable_result_is_not_spilled(tmp_path):
    gone = Spill(str(tmp_path / "gone"), 1 << 20, stored_result)  # the execution ended
    assert spill(BIG, gone, "x", 1) is None
    to = Spill(str(tmp_path), 1 << 20, stored_result)
    assert spill([1, 2, 3], to, "x", 1) is None
    assert spill(threading.Lock(), to, "x", 1) is None
    assert not list(tmp_path.iterdir())
    ref = spill(BIG, to, "x", 1)
    assert ref is not None and ref.load() == BIG and ref.stored == stored_result(BIG)
    assert [p.suffix for p in tmp_path.iterdir()] == [".pickle"]  # no .part left


def test_a_numpy_array_is_spilled_whole(tmp_path):
    import numpy as np

    array = np.arange(1 << 18, dtype="float64")  # 2 MiB, pickled as one large buffer
    ref = spill(array, Spill(str(tmp_path), 1 << 20, stored_result), "a", 1)
    assert ref is not None and (ref.load() == array).all()


def test_a_result_nothing_downstream_reads_comes_back_as_its_stored_form():
    ref = spill(BIG, Spill(None, 1 << 20, stored_result), "a", 1)
    assert ref is not None and ref.path is None and ref.stored == stored_result(BIG)
    with pytest.raises(ValueError):
        ref.load()


# -- resume after a restart ---------------------------------------------------------------
def _resume(store, runs: Path, write_file: bool) -> dict:
    """An execution as a restarted server finds it: ``a`` completed (its result
    spilled by the dead server, if ``write_file``), ``b`` not run yet; resume it as
    ``Runner.recover`` does (its stored task runs as ``prior``)."""
    definition = wf(
        task("a", code="result = 1"),
        task("b", "a", code=RECEIVED),
        name="resumed",
    )
    workflow = parse_workflow(definition)
    execution_id = "exec_resumed0000000"
    if write_file:
        path = spill_path(str(runs), execution_id, "a", 1)
        Path(path).parent.mkdir(parents=True)
        ref = spill(BIG, Spill(str(Path(path).parent), 1 << 20, stored_result), "a", 1)
        assert ref is not None and ref.path == path
    a = TaskRun("a", "completed", 1, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", 1.0)
    a.result = stored_result(BIG)
    # b was running when the server stopped: the resumed engine reruns it (interrupted)
    b = TaskRun("b", "running", 1, "2026-01-01T00:00:01Z")
    store.create_execution(execution_id, workflow.id, save=workflow, tasks=[a, b])
    executor = ThreadExecutor(1)
    try:
        run = ExecutionRun(
            store,
            executor,
            EventBus(),
            workflow,
            execution_id,
            prior=store.task_runs(execution_id),
            runs_dir=str(runs),
        )
        assert run.run() == "completed"
    finally:
        executor.shutdown(wait=False)
    return {r.name: r for r in store.task_runs(execution_id).values()}


def test_after_a_restart_the_consumer_reads_the_spilled_file(store, runs):
    rows = _resume(store, runs, write_file=True)
    assert rows["b"].status == "completed" and rows["b"].interruptions == 1
    assert rows["b"].result == DIGEST  # the bytes themselves, from the file
    assert rows["a"].result == stored_result(BIG)  # the stored row is untouched
    assert not list(runs.glob("*/results/*"))  # removed at the end


def test_after_a_restart_without_the_file_the_consumer_gets_what_the_store_kept(store, runs):
    rows = _resume(store, runs, write_file=False)
    # as before spilling: the summary of a non-JSON result (the bytes are gone)
    assert rows["b"].status == "completed"
    assert rows["b"].result == stored_result(BIG)
