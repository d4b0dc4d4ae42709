"""Snapshots of notebook functions (``snapshots.py``): taken by value, refused with the
object that cannot be pickled, run by a server's runner (thread and process executors)
from the store, with the calling convention of the kernel."""

from __future__ import annotations

import threading

import pytest

from pytaskflow_jupyter.errors import InvalidInput
from pytaskflow_jupyter.executors import make_executor
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.snapshots import SnapshotResolver, take
from pytaskflow_jupyter.store import Store

FACTOR = 7  # a "notebook global" the snapshot carries by value


def helper(x):
    return x * FACTOR


def make_functions():
    # defined in a function: cloudpickle pickles them by value, like __main__'s
    def load():
        return [1, 2, 3]

    def total(load, scale=1):
        return sum(helper(v) for v in load) * scale

    return load, total


@pytest.fixture(params=["thread", "process"])
def server_runner(request, tmp_path):
    store = Store(tmp_path / "s.db")
    runner = Runner(
        store,
        make_executor(request.param, workers=2),
        resolve=SnapshotResolver(store.function_snapshot),
    )
    yield runner
    runner.close()
    runner.executor.shutdown()


def definition(snaps, **params) -> dict:
    return {
        "id": "nb",
        "name": "nb",
        "tasks": [
            {"name": "load", "params": {"callable": "nb.load", "snapshot": snaps[0].digest}},
            {
                "name": "total",
                "dependencies": ["load"],
                "params": {"callable": "nb.total", "snapshot": snaps[1].digest, **params},
            },
        ],
    }


def test_a_server_runs_the_snapshots(server_runner):
    snaps = [take(fn, name) for fn, name in zip(make_functions(), ("load", "total"), strict=True)]
    assert all(s.digest.startswith("sha256:") and len(s.digest) == 71 for s in snaps)
    assert "return sum(helper(v)" in snaps[1].source
    server_runner.store.save_snapshots([s.row() for s in snaps])
    wf = server_runner.register(definition(snaps, kwargs={"scale": 2}))
    assert wf["snapshots"][snaps[1].digest]["function"].endswith("total")
    assert "helper" in wf["snapshots"][snaps[1].digest]["source"]
    execution = server_runner.trigger("nb")
    done = server_runner.wait(execution["id"], timeout=60)
    assert done["status"] == "completed", done
    assert [t["result"] for t in done["tasks"]] == [[1, 2, 3], 84]


def test_the_same_function_is_the_same_snapshot_and_revision(server_runner):
    snaps = [take(fn, n) for fn, n in zip(make_functions(), ("load", "total"), strict=True)]
    again = [take(fn, n) for fn, n in zip(make_functions(), ("load", "total"), strict=True)]
    assert [s.digest for s in snaps] == [s.digest for s in again]
    server_runner.store.save_snapshots([s.row() for s in snaps + again])
    assert server_runner.register(definition(snaps))["revision"] == 1
    assert server_runner.register(definition(again))["revision"] == 1


def test_an_unknown_snapshot_is_refused(server_runner):
    snaps = [take(fn, n) for fn, n in zip(make_functions(), ("load", "total"), strict=True)]
    server_runner.store.save_snapshots([snaps[0].row()])
    with pytest.raises(InvalidInput) as info:
        server_runner.register(definition(snaps))
    assert info.value.code == "unknown_snapshot"
    assert [p.path for p in info.value.problems] == ["tasks[1].params.snapshot"]


def test_a_task_without_snapshot_fails_saying_how_to_fix_it(server_runner):
    execution = server_runner.submit(
        {"id": "x", "name": "x", "tasks": [{"name": "a", "params": {"callable": "nb.a"}}]}
    )
    done = server_runner.wait(execution["id"], timeout=60)
    assert done["status"] == "failed"
    assert "has no snapshot" in done["tasks"][0]["error"]
    assert "wf.register()" in done["tasks"][0]["error"]


def test_a_snapshot_of_another_python_fails_the_attempt(server_runner):
    load, _ = make_functions()
    snap = take(load, "load")._replace(python="2.7")
    server_runner.store.save_snapshots([snap.row()])
    execution = server_runner.submit(
        {
            "id": "old",
            "name": "old",
            "tasks": [{"name": "a", "params": {"callable": "old.a", "snapshot": snap.digest}}],
        }
    )
    done = server_runner.wait(execution["id"], timeout=60)
    assert done["status"] == "failed" and "taken with Python 2.7" in done["tasks"][0]["error"]


def test_what_cannot_be_pickled_is_refused_by_name(tmp_path):
    handle = open(tmp_path / "data.txt", "w")  # noqa: SIM115
    lock = threading.Lock()

    def writes():
        handle.write("x")

    def locked():
        with lock:
            return 1

    try:
        with pytest.raises(InvalidInput) as info:
            take(writes, "writes", "tasks[0]")
        assert info.value.code == "not_snapshottable"
        assert "'handle'" in str(info.value) and "an open file" in str(info.value)
        assert info.value.problems[0].path == "tasks[0].params.callable"
        with pytest.raises(InvalidInput) as info:
            take(locked, "locked")
        assert "'lock'" in str(info.value) and "a lock" in str(info.value)
    finally:
        handle.close()
