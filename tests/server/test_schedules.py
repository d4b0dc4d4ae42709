"""Schedules on real servers (SPEC 12): two ``jupyter taskflow`` processes share one
database and a driven clock (``fake_clock``); every slot fires exactly once, catch-up
policies after a downtime, and the REST side (PUT, pause/resume, ``?trigger=``)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pytaskflow_jupyter.model import iso

from .fake_clock import set_time
from .helpers import LiveServer, task, wf

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def scheduled(workflow_id: str, schedule: dict[str, Any]) -> dict[str, Any]:
    return {
        **wf(workflow_id, task("a", code="result = 1")),
        "id": workflow_id,
        "schedule": schedule,
    }


def slots(server: LiveServer, workflow_id: str) -> list[str]:
    rows = server.get(f"/executions?workflow_id={workflow_id}&trigger=schedule&limit=1000")
    return [r["scheduledFor"] for r in rows]


def until(check, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def clock_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "clock"
    set_time(path, T0)
    monkeypatch.setenv("PYTASKFLOW_TEST_CLOCK", str(path))
    return path


def start(tmp_path: Path, name: str, db: Path, *extra: str) -> LiveServer:
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    return LiveServer(
        home,
        extra=[
            f"--TaskFlowApp.db_path={db}",
            "--TaskFlowApp.clock=tests.server.fake_clock:now",
            "--TaskFlowApp.scheduler_interval=0.05",
            *extra,
        ],
    )


def test_two_servers_fire_each_slot_exactly_once(tmp_path, clock_file):
    db = tmp_path / "shared.db"
    servers = [start(tmp_path, "a", db), start(tmp_path, "b", db)]
    try:
        status, body = servers[0].request(
            "PUT", "/workflows/minutely", scheduled("minutely", {"every": 60})
        )
        assert status == 200, body
        status, body = servers[1].request(
            "PUT",
            "/workflows/cron",
            scheduled("cron", {"cron": "* * * * *", "timezone": "Europe/Paris"}),
        )
        assert status == 200, body
        for minute in range(1, 7):
            set_time(clock_file, T0 + 60 * minute + 0.2)
            want = iso(T0 + 60 * minute)
            for workflow_id in ("minutely", "cron"):
                until(
                    lambda w=workflow_id, s=want: s in slots(servers[0], w),
                    what=f"{workflow_id} {want}",
                )
            # both servers check 20 times a second: give each of them ten more checks at
            # this time, in which a double fire would show
            time.sleep(0.5)
        for workflow_id in ("minutely", "cron"):
            assert Counter(slots(servers[1], workflow_id)) == {
                iso(T0 + 60 * m): 1 for m in range(1, 7)
            }, workflow_id
        done = until(
            lambda: all(
                r["status"] == "completed"
                for r in servers[0].get("/executions?trigger=schedule&limit=100")
            ),
            what="the scheduled executions to complete",
        )
        assert done
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize(("catchup", "count"), [("none", 0), ("latest", 1), ("all", 10)])
def test_catchup_after_a_downtime(tmp_path, clock_file, catchup, count):
    db = tmp_path / "shared.db"
    grace = "--TaskFlowApp.schedule_grace=30"
    server = start(tmp_path, "a", db, grace)
    status, body = server.request(
        "PUT", "/workflows/w", scheduled("w", {"every": 60, "catchup": catchup})
    )
    assert status == 200, body
    server.stop()
    set_time(clock_file, T0 + 650)  # slots 1..10 fell while no server ran
    server = start(tmp_path, "b", db, grace)
    try:
        wf_json = until(lambda: server.get("/workflows/w")["missedSlots"], what="the catch-up")
        assert (
            wf_json["count"] == 10 and wf_json["fired"] == count and wf_json["catchup"] == catchup
        )
        fired = slots(server, "w")
        assert sorted(fired) == [iso(T0 + 60 * m) for m in range(11 - count, 11)]
        assert server.get("/workflows/w")["nextRunTime"] == iso(T0 + 660)
    finally:
        server.stop()


async def test_rest_register_pause_resume(api):
    status, body, _ = await api(
        "PUT", "workflows", "nightly", body=scheduled("nightly", {"every": 3600})
    )
    assert status == 200, body
    assert body["revision"] == 1 and body["paused"] is False and body["nextRunTime"]
    assert body["schedule"] == {"cron": None, "every": 3600, "catchup": "none", "params": {}}
    assert body["scheduleText"] == "Every hour" and body["lastScheduledRun"] is None
    status, listed, _ = await api("GET", "executions", params={"workflow_id": "nightly"})
    assert status == 200 and listed == []  # PUT runs nothing
    status, body, _ = await api("POST", "workflows", "nightly", "schedule", "pause", body={})
    assert status == 200 and body["paused"] is True and body["nextRunTime"] is None
    status, body, _ = await api("GET", "workflows")
    assert [w["paused"] for w in body if w["id"] == "nightly"] == [True]
    status, body, _ = await api("POST", "workflows", "nightly", "schedule", "resume")
    assert status == 200 and body["paused"] is False and body["nextRunTime"]


async def test_rest_schedule_errors(api):
    status, body, _ = await api("PUT", "workflows", "plain", body=wf("plain", task("a")))
    assert status == 200 and body["schedule"] is None and body["paused"] is False
    status, body, _ = await api("POST", "workflows", "plain", "schedule", "pause")
    assert status == 409 and body["code"] == "no_schedule"
    status, body, _ = await api("POST", "workflows", "ghost", "schedule", "resume")
    assert status == 404
    status, body, _ = await api("PUT", "workflows", "a", body={**wf("a", task("a")), "id": "b"})
    assert status == 400 and body["errors"][0]["path"] == "id"
    bad = {**wf("x", task("a")), "schedule": {"cron": "0 25 * * *", "timezone": "Nowhere/City"}}
    status, body, _ = await api("PUT", "workflows", "x", body=bad)
    assert status == 400
    assert {e["path"] for e in body["errors"]} == {"schedule.cron", "schedule.timezone"}
    status, body, _ = await api("GET", "executions", params={"trigger": "cron"})
    assert status == 400 and body["errors"][0]["path"] == "trigger"


async def test_triggers_of_executions(api):
    first = await api.submit(wf("t", task("a")))
    assert first["trigger"] == "api" and first["scheduledFor"] is None
    await api.wait(first["id"])
    status, retried, _ = await api("POST", "executions", first["id"], "retry")
    assert status == 200 and retried["trigger"] == "retry"
    status, page, _ = await api("GET", "executions", params={"trigger": "retry"})
    assert [e["id"] for e in page] == [retried["id"]]
    status, page, _ = await api("GET", "executions", params={"trigger": "api"})
    assert [e["id"] for e in page] == [first["id"]]
