"""Mapped tasks (SPEC 11) over REST, and a SIGKILL of the server in the middle of a map.

The REST half runs on the in-process server of pytest-jupyter: a mapped task's counts in
``GET /executions/{id}``, the paged instances route (order, filter, cursor, bad queries,
``not_mapped``), logs per instance (``?map_index=``), ``map_over`` echoed by
``GET /workflows``, a definition whose ``map_over`` is not a dependency refused with its
path.

The other half starts ``jupyter taskflow`` as a user would (``helpers.LiveServer``,
thread executor), posts a 2,000-item map whose instances append ``<index> <attempt>
start|end`` to a marker file, SIGKILLs the server once about half of them completed,
snapshots the instance rows committed at the kill (SQLite, read-only), starts the server
again on the same database and lets the execution finish: no instance that the snapshot
showed completed may be lost (still completed, same end time and attempt) or started
again after the kill; every instance ends completed once, the results in order.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from .helpers import LiveServer, task, wf


def mapped(n: int, code: str = "result = item * 2") -> dict:
    return wf(
        "mapped",
        task("list", code=f"result = list(range({n}))"),
        task("work", "list", map_over="list", code=code),
    )


async def test_a_mapped_execution_over_rest(api):
    code = "print('item', item)\nif item % 7 == 3: raise ValueError(item)\nresult = item"
    execution = await api.submit(mapped(30, code))
    done = await api.wait(execution["id"])
    work = done["tasks"][1]
    assert work["status"] == "failed"
    assert work["mapped"] == {
        "total": 30, "pending": 0, "running": 0, "completed": 26, "failed": 4, "cancelled": 0,
    }  # fmt: skip
    assert "mapped" not in done["tasks"][0]
    base = f"executions/{execution['id']}/tasks/work"
    status, page, _ = await api("GET", f"{base}/instances", params={"status": "failed", "limit": 3})
    assert status == 200
    assert [i["mapIndex"] for i in page["instances"]] == [3, 10, 17]
    assert page["instances"][0]["error"] == "ValueError: 3"
    assert page["nextCursor"] == 18
    status, rest, _ = await api(
        "GET", f"{base}/instances", params={"status": "failed", "cursor": 18}
    )
    assert [i["mapIndex"] for i in rest["instances"]] == [24]
    assert rest["nextCursor"] is None
    status, logs, _ = await api("GET", f"{base}/logs", params={"map_index": 10})
    assert status == 200
    assert logs["mapIndex"] == 10
    assert logs["attempts"] == [{"attempt": 1, "stdout": "item 10\n", "stderr": ""}]
    status, listed, _ = await api("GET", "workflows")
    assert listed[0]["tasks"][1]["map_over"] == "list"
    assert listed[0]["tasks"][0]["map_over"] is None


@pytest.mark.parametrize(
    ("query", "code", "path"),
    [
        ({"status": "done"}, "invalid_query", "status"),
        ({"limit": 0}, "out_of_range", "limit"),
        ({"limit": 1001}, "out_of_range", "limit"),
        ({"cursor": -1}, "invalid_query", "cursor"),
        ({"cursor": "x"}, "invalid_query", "cursor"),
        ({"page": 2}, "invalid_query", "page"),
    ],
)
async def test_bad_instance_queries_are_400_naming_the_parameter(api, query, code, path):
    execution = await api.submit(mapped(2))
    status, body, _ = await api(
        "GET", f"executions/{execution['id']}/tasks/work/instances", params=query
    )
    assert status == 400, body
    assert body["errors"][0]["path"] == path
    assert body["errors"][0]["code"] == code


async def test_instances_of_a_task_that_is_not_mapped_or_unknown(api):
    execution = await api.submit(mapped(2))
    base = f"executions/{execution['id']}/tasks"
    status, body, _ = await api("GET", f"{base}/list/instances")
    assert (status, body["code"]) == (400, "not_mapped")
    assert "'list' is not mapped" in body["message"]
    status, body, _ = await api("GET", f"{base}/list/logs", params={"map_index": 0})
    assert (status, body["code"]) == (400, "not_mapped")
    status, body, _ = await api("GET", f"{base}/nope/instances")
    assert status == 404
    status, body, _ = await api("GET", "executions/exec_00/tasks/work/instances")
    assert status == 404


async def test_map_over_that_is_not_a_dependency_is_400_with_its_path(api):
    definition = wf("bad", task("list"), task("work", map_over="list"))
    status, body, _ = await api("POST", "workflows", body=definition)
    assert status == 400
    [problem] = body["errors"]
    assert problem["path"] == "tasks[1].map_over"
    assert problem["code"] == "invalid_map_over"
    assert (await api("GET", "workflows"))[1] == []  # nothing half-written


# -- SIGKILL in the middle of a 2,000-item map ------------------------------------------------
ITEMS = 2000
INSTANCE_CODE = """\
import os, time
def mark(what):
    fd = os.open(MARKER, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{map_index} {context['attempt']} {what}\\n".encode())
    os.close(fd)
mark("start")
time.sleep(0.004)
result = item * 3
mark("end")
"""


def _instances(db: Path) -> dict[int, tuple[str, int, str | None]]:
    """``map_index -> (status, attempts, end_time)`` of the committed instance rows."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT map_index, status, attempts, end_time FROM task_instances"
        ).fetchall()
    finally:
        conn.close()
    return {i: (s, a, e) for i, s, a, e in rows}


def _completed(server: LiveServer, execution_id: str) -> int:
    execution = server.get(f"/executions/{execution_id}")
    return ((execution["tasks"][1].get("mapped")) or {}).get("completed", 0)


@pytest.mark.slow
def test_sigkill_mid_map_loses_and_reruns_no_completed_instance(tmp_path):
    marker = tmp_path / "marker.log"
    code = f"MARKER = {str(marker)!r}\n" + INSTANCE_CODE
    definition = wf(
        "kill-mid-map",
        task("list", code=f"result = list(range({ITEMS}))"),
        task("work", "list", map_over="list", code=code),
    )
    server = LiveServer(tmp_path)
    try:
        status, execution = server.request("POST", "/workflows", definition)
        assert status == 200, execution
        deadline = time.monotonic() + 120
        while _completed(server, execution["id"]) < ITEMS // 2:
            assert time.monotonic() < deadline, "the map did not get halfway"
            time.sleep(0.05)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(30)
        server.log.close()
    except BaseException:
        server.stop()
        raise
    at_kill = _instances(tmp_path / "live.db")
    ran_before = marker.stat().st_size
    done_at_kill = {i for i, (s, _, _) in at_kill.items() if s == "completed"}
    assert ITEMS // 2 <= len(done_at_kill) < ITEMS, len(done_at_kill)

    server = LiveServer(tmp_path)  # the same database: it resumes the execution
    try:
        deadline = time.monotonic() + 180
        while (done := server.get(f"/executions/{execution['id']}"))["status"] != "completed":
            assert done["status"] == "running", done["status"]
            assert time.monotonic() < deadline, "the resumed map did not finish"
            time.sleep(0.1)
    finally:
        server.stop()
    work = done["tasks"][1]
    assert work["result"] == [i * 3 for i in range(ITEMS)]
    assert work["mapped"]["completed"] == ITEMS
    after = _instances(tmp_path / "live.db")
    lost = [i for i in done_at_kill if after[i] != at_kill[i]]
    assert lost == [], f"completed instances changed after the restart: {lost[:10]}"
    with marker.open("rb") as f:
        f.seek(ran_before)
        started_after = {int(line.split()[0]) for line in f if line.endswith(b"start\n")}
    rerun = sorted(started_after & done_at_kill)
    assert rerun == [], f"completed instances ran again after the kill: {rerun[:10]}"
    assert set(after) == set(range(ITEMS))
    assert all(status == "completed" for status, _, _ in after.values())
