"""Storage faults of issue 15 on a real server (items 7 and 8): a database deleted under
the server, a database that cannot take a write; both answer 503 ``storage_unavailable``
naming the path and the cause."""

from __future__ import annotations

import pytest

from .helpers import task, wf


async def test_a_deleted_database_answers_503_and_is_not_recreated(api, db_path):
    """Item 7: once the file is deleted, REST no longer answers from the old file and no
    empty database is created at its path (an execution accepted then would never run)."""
    done = await api.wait((await api.submit(wf("before", task("a", code="result = 1"))))["id"])
    assert done["status"] == "completed"
    status, body, _ = await api("GET", "workflows")
    assert status == 200 and [w["id"] for w in body] == ["before"], body
    db_path.unlink()
    status, body, _ = await api("GET", "workflows")
    assert status == 503, body
    assert body["code"] == "storage_unavailable" and str(db_path) in body["message"], body
    assert "deleted" in body["message"]
    status, body, _ = await api("POST", "workflows", body=wf("after", task("b")))
    assert (status, body["code"]) == (503, "storage_unavailable"), body
    assert not db_path.exists()


@pytest.fixture
def taskflow_config():
    return {"db_threads": 1}  # one database thread: the one whose connection is capped


async def test_a_full_database_answers_503_naming_the_cause(api, taskflow_app):
    """Item 8: a write the database cannot take (SQLite's own page limit on the
    connection of the server's one database thread: "database or disk is full") is a
    503 naming that cause, not a 500; nothing of it is written."""

    def cap():
        conn = taskflow_app.store._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")

    await taskflow_app.run(cap)
    big = wf("big", task("a", code="result = 1"), description="x" * 200_000)
    status, body, _ = await api("POST", "workflows", body=big)
    assert status == 503, body
    assert body["code"] == "storage_unavailable", body
    assert "database or disk is full" in body["message"], body
    assert str(taskflow_app.store.path) in body["message"], body
    status, body, _ = await api("GET", "workflows")
    assert (status, body) == (200, []), body
    status, body, _ = await api("GET", "executions")
    assert (status, body) == (200, []), body
