"""The store's event rows: what is read back is what was published, for every kind of
event, and a database of schema 1 (events as JSON documents) still reads after migration."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytaskflow_jupyter.events import make_event
from pytaskflow_jupyter.executors import ThreadExecutor
from pytaskflow_jupyter.model import TaskRun, Workflow
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.store import MIGRATIONS, Store
from pytaskflow_jupyter.transitions import Changes
from pytaskflow_jupyter.validation import parse_workflow

from .helpers import task, wf

S = "tests.unit.sample_tasks"


def js(events):
    """Events as /ws sends them."""
    return [e.to_json() for e in events]


def test_stored_events_read_back_exactly_as_published(runner, bus, store, tmp_path):
    published = []
    bus.subscribe(lambda batch: published.extend(e.to_json() for e in batch))
    definition = wf(
        task("br", type="branch", next=["a"]),
        task("a", "br", code="result = {'x': 1}"),
        task("b", "br"),
        task(
            "flaky",
            "a",
            callable=f"{S}:fail_until",
            kwargs={"marker": str(tmp_path / "m"), "times": 1},
            retries=1,
            retry_delay=0.01,
        ),
        task("bad", "a", code="raise ValueError('no \"quotes\" \\u00e9')"),
        task("after", "bad"),
    )
    ex = runner.submit(definition)
    runner.wait(ex["id"], 20)
    kinds = {e["event"] for e in published}
    assert kinds == {
        "execution_started",
        "task_started",
        "task_completed",
        "task_retrying",
        "task_failed",
        "task_skipped",
        "execution_failed",
    }
    assert any("selected" in e for e in published)  # an extra key (the branch's selection)
    assert js(store.events(0, limit=10_000)) == published
    # as /ws sends them: the JSON text of each decodes to the event published
    assert [json.loads(json.dumps(e)) for e in js(store.events(0, limit=10_000))] == published
    assert js(store.events(0, execution=ex["id"])) == published
    assert js(store.events(0, workflow="wf")) == published
    assert store.events(0, workflow="other") == []
    assert js(store.events(published[3]["seq"])) == published[4:]


def test_an_attempt_or_duration_that_is_null_survives(store):
    store.save_workflow(parse_workflow(wf(task("a"))))
    store.create_execution("exec_n", "wf", 1)
    events = [
        make_event(
            "task_failed", "exec_n", "wf", "failed", "a", attempt=None, duration=None, error="x"
        ),
        make_event("execution_failed", "exec_n", "wf", "failed"),
    ]
    store.commit("exec_n", Changes(events=events))
    assert store.events(0) == events
    # a task_failed event always shows its duration (null here); others only when set
    assert "duration" in js(store.events(0))[0] and "duration" not in js(store.events(0))[1]


def test_a_schema_1_database_is_migrated_and_its_events_still_read(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    MIGRATIONS[0](conn)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old = {
        "event": "execution_started",
        "workflow_id": "exec_old",
        "task": None,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "seq": 1,
        "execution_id": "exec_old",
        "workflow": "wf",
        "status": "running",
    }
    conn.execute(
        "INSERT INTO executions (id, workflow_id, revision, status) VALUES "
        "('exec_old', 'wf', 1, 'running')"
    )
    conn.execute(
        "INSERT INTO events VALUES (1, 'exec_old', 'wf', 'execution_started', ?)",
        (json.dumps(old),),
    )
    conn.close()

    store = Store(path)
    assert store._conn().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[
        0
    ] == str(len(MIGRATIONS))
    new = make_event("execution_failed", "exec_old", "wf", "failed", reason="x")
    store.commit("exec_old", Changes(events=[new], execution={"status": "failed"}))
    assert new.seq == 2
    assert js(store.events(0)) == [old, new.to_json()]
    assert js(store.events(0, workflow="wf")) == [old, new.to_json()]
    assert [json.loads(json.dumps(e)) for e in js(store.events(0, execution="exec_old"))] == [
        old,
        new.to_json(),
    ]
    indexes = {
        r[0]
        for r in store._conn().execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='events'"
        )
    }
    assert indexes == set()  # replay scans seq from the execution's first_seq instead
    assert store.execution_row("exec_old")["first_seq"] == 0


def test_task_rows_of_every_shape_read_back_as_written(store):
    store.save_workflow(parse_workflow(wf(*[task(n) for n in "abcdef"])))
    store.create_execution("exec_s", "wf", 1)
    t0, t1 = "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01.000Z"
    rows = [
        TaskRun("a", "running", 1, t0),  # a started row
        TaskRun("b", "completed", 1, t0, t1, 1.0, result=2),  # a plain completion
        TaskRun(
            "c",
            "completed",
            2,
            t0,
            t1,
            1.0,
            result=None,
            history=[
                {
                    "attempt": 1,
                    "status": "failed",
                    "startTime": t0,
                    "endTime": t0,
                    "duration": 0.0,
                    "error": "x",
                }
            ],
        ),
        TaskRun("d", "failed", 1, t0, t1, None, error="E: x", traceback="tb"),
        TaskRun("e", "skipped", 0, reason="upstream_failed"),
        TaskRun("f", "running", 2, t0, error="E: earlier attempt"),
    ]
    store.commit("exec_s", Changes(tasks=rows))
    back = store.task_runs("exec_s")
    for row in rows:
        got = back[row.name]
        assert (
            got.status,
            got.attempts,
            got.start_time,
            got.end_time,
            got.duration,
            got.error,
            got.traceback,
            got.reason,
        ) == (
            row.status,
            row.attempts,
            row.start_time,
            row.end_time,
            row.duration,
            row.error,
            row.traceback,
            row.reason,
        ), row.name
    assert back["b"].result == 2 and back["b"].history == []
    assert back["b"].attempt_history() == [
        {"attempt": 1, "status": "completed", "startTime": t0, "endTime": t1, "duration": 1.0}
    ]
    assert [h["status"] for h in back["c"].history] == ["failed"]


def test_events_of_interleaved_executions_are_told_apart(store):
    store.save_workflow(parse_workflow(wf(task("a"))))
    store.save_workflow(parse_workflow(wf(task("a"), name="other")))
    store.create_execution("exec_1", "wf", 1)
    store.commit(
        "exec_1", Changes(events=[make_event("execution_started", "exec_1", "wf", "running")])
    )
    store.create_execution("exec_2", "other", 1)
    store.create_execution("exec_3", "wf", 1)
    for i in range(3):
        for ex, w in (("exec_1", "wf"), ("exec_2", "other"), ("exec_3", "wf")):
            store.commit(
                ex,
                Changes(events=[make_event("task_started", ex, w, "running", "a", attempt=i + 1)]),
            )
    assert store.execution_row("exec_2")["first_seq"] == 1  # after exec_1's first event
    assert [e.seq for e in store.events(0, execution="exec_1")] == [1, 2, 5, 8]
    assert [e.seq for e in store.events(0, execution="exec_2")] == [3, 6, 9]
    assert [e.seq for e in store.events(0, workflow="wf")] == [1, 2, 4, 5, 7, 8, 10]
    assert [e.seq for e in store.events(5, workflow="wf", execution="exec_3")] == [7, 10]
    assert store.events(0, execution="exec_unknown") == []


def test_an_unchanged_definition_keeps_its_revision_whatever_its_key_order(store):
    first = {
        "id": "w",
        "name": "W",
        "tasks": [{"name": "a", "params": {"kwargs": {"x": "é", "y": 1}}}],
    }
    same = {
        "tasks": [{"params": {"kwargs": {"y": 1, "x": "é"}}, "name": "a"}],
        "name": "W",
        "id": "w",
    }
    changed = {
        "id": "w",
        "name": "W",
        "tasks": [{"name": "a", "params": {"kwargs": {"x": "e", "y": 1}}}],
    }
    assert store.save_workflow(parse_workflow(first)) == 1
    assert store.save_workflow(parse_workflow(same)) == 1
    assert store.save_workflow(parse_workflow(changed)) == 2
    # a definition built in Python (not plain JSON text) is fingerprinted the same way
    assert (
        parse_workflow(same).fingerprint()
        == Workflow("w", "W", (), {"id": "w", "name": "W", "tasks": same["tasks"]}).fingerprint()
    )


def test_a_snapshot_reads_the_execution_as_it_was_at_its_seq(tmp_path):
    """A commit landing between the snapshot's reads is not half seen (the widget once
    showed a task running in an execution still pending)."""
    path = tmp_path / "s.db"
    writer = Store(path)
    writer.save_workflow(parse_workflow(wf(task("a"))))
    writer.create_execution("exec_s", "wf", 1)

    class Interleaved(Store):
        def last_seq(self):
            seq = super().last_seq()
            writer.commit(
                "exec_s",
                Changes(
                    execution={"status": "running"},
                    tasks=[TaskRun("a", "running", 1, "2026-01-01T00:00:00.000Z")],
                    events=[make_event("execution_started", "exec_s", "wf", "running")],
                ),
            )
            return seq

    seq, row, runs = Interleaved(path).snapshot("exec_s")
    assert seq == 0
    assert row["status"] == "pending" and runs == {}  # task "a" has no row yet: pending
    _, row, runs = Store(path).snapshot("exec_s")
    assert row["status"] == "running" and runs["a"].status == "running"


_ABSENT = object()
_OPTIONAL = {
    "attempt": st.sampled_from([_ABSENT, None, 1, 3]),
    "duration": st.sampled_from([_ABSENT, None, 0.0, 1.25]),
    "reason": st.sampled_from([_ABSENT, _ABSENT, None, "upstream_failed", "é"]),
    "error": st.sampled_from([_ABSENT, _ABSENT, _ABSENT, 'E: "x"']),
    "selected": st.sampled_from([_ABSENT, _ABSENT, _ABSENT, [], ["a"]]),
}


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["task_started", "task_skipped", "execution_failed"]),
            st.sampled_from([None, "a"]),
            st.fixed_dictionaries(_OPTIONAL),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_event_reads_back_as_published(store, specs):
    """Whatever keys an event has, the row shape chosen for it gives it back unchanged."""
    if not store.workflows():
        store.save_workflow(parse_workflow(wf(task("a"))))
    ex = f"exec_{len(store.list_executions(limit=1000)[0])}"
    store.create_execution(ex, "wf", 1)
    events = [
        make_event(
            name, ex, "wf", "x", task_name, **{k: v for k, v in extra.items() if v is not _ABSENT}
        )
        for name, task_name, extra in specs
    ]
    store.commit(ex, Changes(events=events))
    assert store.events(0, execution=ex) == events


def test_the_encoded_workflow_list_is_the_list_and_follows_schedule_state(runner):
    """``GET /workflows`` sends ``Runner.list_workflows_json``: each revision's fixed
    part encoded once and cached, its schedule's state read every time."""
    runner.register({**wf(task("a"), task("b", "a")), "id": "one"})
    runner.register({**wf(task("c")), "id": "two", "schedule": {"every": 3600}})
    assert json.loads(b"".join(runner.list_workflows_json())) == runner.list_workflows()
    runner.pause("two")
    listed = {w["id"]: w for w in json.loads(b"".join(runner.list_workflows_json()))}
    assert listed["two"]["paused"] is True
    assert json.loads(b"".join(runner.list_workflows_json())) == runner.list_workflows()
    runner.register({**wf(task("c"), task("d", "c")), "id": "two", "schedule": {"every": 60}})
    listed = {w["id"]: w for w in json.loads(b"".join(runner.list_workflows_json()))}
    assert [t["name"] for t in listed["two"]["tasks"]] == ["c", "d"]
    assert listed["two"]["revision"] == 2
    assert json.loads(b"".join(runner.list_workflows_json())) == runner.list_workflows()
    runner.delete_workflow("one")
    assert [w["id"] for w in json.loads(b"".join(runner.list_workflows_json()))] == ["two"]


def test_a_server_lists_a_new_revision_without_reading_it_back(store, bus, monkeypatch):
    """With ``keep_listing`` (a server's) the revision a request stores is encoded from
    the definition in memory before the request answers: no listing waits to read it
    back from the store, parse and encode it (a 100,000-task one: a second), and what
    it lists is what the store would give."""
    executor = ThreadExecutor(2)
    runner = Runner(store, executor, bus, keep_listing=True)
    try:
        runner.register({**wf(task("a"), task("b", "a")), "id": "one"})
        run = runner.submit({**wf(task("c")), "id": "two", "schedule": {"every": 3600}})
        wanted = runner.list_workflows()
        read_back = store.workflow
        monkeypatch.setattr(store, "workflow", lambda *a: pytest.fail(f"read back {a}"))
        assert json.loads(b"".join(runner.list_workflows_json())) == wanted
        monkeypatch.setattr(store, "workflow", read_back)
        runner._listed.clear()  # a revision stored before the server started
        assert json.loads(b"".join(runner.list_workflows_json())) == wanted
        runner.wait(run["id"], timeout=30)
    finally:
        runner.close()
        executor.shutdown(wait=False)
