"""Schedules (SPEC 12) below the server: slots, DST, catch-up, the claim, pause/resume.

The clock is driven: the store takes it as a function (``Store(clock=...)``, the one
place the scheduler reads the time) and ``Runner.fire_due`` is the scheduler's check,
so a test walks through days of slots in milliseconds. ``tests/server/test_schedules.py``
runs the same rules on real servers.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from pytaskflow_jupyter.errors import Conflict, NotFound
from pytaskflow_jupyter.executors import make_executor
from pytaskflow_jupyter.model import iso
from pytaskflow_jupyter.runner import Runner
from pytaskflow_jupyter.schedule import MAX_CATCHUP, Schedule, plan
from pytaskflow_jupyter.store import Store

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2027, 1, 4, 0, 0, tzinfo=timezone.utc).timestamp()  # a Monday


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def runner(tmp_path, clock):
    store = Store(tmp_path / "s.db", clock=clock)
    r = Runner(store, make_executor("thread", workers=2))
    yield r
    r.close()
    r.executor.shutdown()


def scheduled(definition_schedule: dict, **extra) -> dict:
    return {
        "id": "nightly",
        "name": "Nightly",
        "tasks": [{"name": "a", "params": {"code": "result = params"}}],
        "schedule": definition_schedule,
        **extra,
    }


def slots_of(runner: Runner, workflow_id: str = "nightly") -> list[str]:
    rows, _ = runner.store.list_executions(workflow_id=workflow_id, trigger="schedule", limit=1000)
    return sorted(r["scheduled_for"] for r in rows)


def walk(runner: Runner, clock: Clock, until: float, step: float) -> None:
    """Drive the clock to ``until`` in ``step``s, running the scheduler's check at each."""
    while clock.t < until:
        clock.t = min(until, clock.t + step)
        runner.fire_due()


# -- slots ---------------------------------------------------------------------------------
def test_every_slots_fall_on_the_anchor_grid():
    s = Schedule(every=60)
    assert list(zip(range(3), s.slots(T0 + 30, T0), strict=False)) == [
        (0, T0 + 60),
        (1, T0 + 120),
        (2, T0 + 180),
    ]
    assert s.next_slot(T0 + 60, T0) == T0 + 120  # strictly after


def test_cron_slots_in_a_time_zone():
    s = Schedule(cron="30 2 * * 1-5", timezone="Europe/Paris")
    first = s.next_slot(T0, T0)  # Monday 2027-01-04 02:30 in Paris = 01:30 UTC
    assert first == utc(2027, 1, 4, 1, 30)
    friday_to_monday = s.next_slot(utc(2027, 1, 8, 2, 0), T0)
    assert friday_to_monday == utc(2027, 1, 11, 1, 30)


def test_spring_forward_fires_once_at_the_first_valid_instant():
    """2026-03-29, Paris: 02:00 -> 03:00. 02:30 does not exist: one slot, at 03:00 CEST."""
    s = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    day = [t for t, _ in zip(s.slots(utc(2026, 3, 28, 12), 0), range(3), strict=False)]
    assert day[0] == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert datetime.fromtimestamp(day[0], PARIS).strftime("%H:%M %Z") == "03:00 CEST"
    assert day[1] == utc(2026, 3, 30, 0, 30)  # next day back at 02:30


def test_fall_back_fires_a_repeated_time_once_at_its_first_occurrence():
    """2026-10-25, Paris: 03:00 CEST -> 02:00 CET. 02:30 happens twice: one slot, the first."""
    s = Schedule(cron="30 2 * * *", timezone="Europe/Paris")
    day = [t for t, _ in zip(s.slots(utc(2026, 10, 24, 12), 0), range(2), strict=False)]
    assert day == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    every_half_hour = Schedule(cron="*/30 * * * *", timezone="Europe/Paris")
    slots = list(zip(every_half_hour.slots(utc(2026, 10, 24, 23, 50), 0), range(5), strict=False))
    local = [datetime.fromtimestamp(t, PARIS).strftime("%H:%M%z") for t, _ in slots]
    # 02:00 and 02:30 once each (CEST), then 03:00 CET: the repeated hour is not run twice
    assert local == ["02:00+0200", "02:30+0200", "03:00+0100", "03:30+0100", "04:00+0100"]


def test_words():
    assert Schedule(every=600).describe() == "Every 10 minutes"
    assert Schedule(every=1).describe() == "Every second"
    assert Schedule(every=90).describe() == "Every 90 seconds"
    assert (
        Schedule(cron="30 2 * * 1-5", timezone="Europe/Paris").describe()
        == "At 02:30, Monday through Friday (Europe/Paris)"
    )


@pytest.mark.parametrize(
    ("catchup", "fired"),
    [("none", []), ("latest", [600.0]), ("all", [60.0 * k for k in range(1, 11)])],
)
def test_plan_after_a_downtime(catchup, fired):
    """Slots 60..600 fell while no server ran (now = 650, grace 30): the policy decides."""
    fire = plan(Schedule(every=60, catchup=catchup), 0.0, 0.0, 650.0, 30.0)
    assert fire.slots == fired
    assert fire.last_slot == 600.0 and fire.next_slot == 660.0
    assert fire.missed is not None
    assert (fire.missed["count"], fire.missed["fired"]) == (10, len(fired))


def test_plan_late_but_within_grace_is_not_missed():
    fire = plan(Schedule(every=10), 0.0, 0.0, 35.0, 60.0)
    assert fire.slots == [10.0, 20.0, 30.0] and fire.missed is None


def test_catchup_all_fires_at_most_the_latest_hundred():
    fire = plan(Schedule(every=1, catchup="all"), 0.0, 0.0, 10_000.0, 0.5)
    # the 100 most recent missed slots, then the one on time
    assert fire.slots == [float(t) for t in range(10_000 - MAX_CATCHUP, 10_001)]
    assert fire.missed is not None and fire.missed["count"] == 9_999


# -- the scheduler through the store -------------------------------------------------------
def test_every_minute_fires_each_slot_once_with_its_params(runner, clock):
    wf = runner.register(
        scheduled({"every": 60, "params": {"day": "mon"}}, parameters={"day": None})
    )
    assert wf["nextRunTime"] == iso(T0 + 60) and wf["paused"] is False
    assert wf["scheduleText"] == "Every minute"
    walk(runner, clock, T0 + 5 * 60 + 1, 7)
    assert slots_of(runner) == [iso(T0 + 60 * k) for k in range(1, 6)]
    rows, _ = runner.store.list_executions(trigger="schedule")
    for row in rows:
        done = runner.wait(row["id"], timeout=30)
        assert done["status"] == "completed", done
        assert done["trigger"] == "schedule" and done["scheduledFor"] == row["scheduled_for"]
        assert done["tasks"][0]["result"] == {"day": "mon"}
    last = runner.get_workflow("nightly")["lastScheduledRun"]
    assert last["scheduledFor"] == iso(T0 + 300) and last["status"] == "completed"


def test_two_schedulers_on_one_database_fire_each_slot_once(tmp_path, clock):
    """Two stores (as two servers) check at the same instants from many threads."""
    runners = [
        Runner(Store(tmp_path / "s.db", clock=clock), make_executor("thread")) for _ in range(2)
    ]
    runners[0].register(scheduled({"cron": "* * * * *"}))
    try:
        for minute in range(1, 9):
            clock.t = T0 + 60 * minute + 0.5
            threads = [threading.Thread(target=r.fire_due) for r in runners for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        slots = slots_of(runners[0])
        assert Counter(slots) == {iso(T0 + 60 * m): 1 for m in range(1, 9)}
    finally:
        for r in runners:
            r.close()
            r.executor.shutdown()


def test_the_claim_is_unique_in_the_database(runner, clock):
    """Even a writer that skipped the check cannot record a slot twice (unique index)."""
    import sqlite3

    runner.register(scheduled({"every": 60}))
    clock.t = T0 + 61
    (first,) = runner.fire_due()
    conn = runner.store._conn()
    row = runner.store.execution_row(first)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO executions (id, workflow_id, revision, status, scheduled_for) "
            "VALUES ('exec_dup', ?, ?, 'pending', ?)",
            (row["workflow_id"], row["revision"], row["scheduled_for"]),
        )


def test_paris_spring_forward_day_through_the_scheduler(runner, clock):
    clock.t = utc(2026, 3, 28, 20)
    wf = runner.register(scheduled({"cron": "30 2 * * *", "timezone": "Europe/Paris"}))
    assert wf["nextRunTime"] == iso(utc(2026, 3, 29, 1, 0))
    walk(runner, clock, utc(2026, 3, 29, 6), 60)
    assert slots_of(runner) == [iso(utc(2026, 3, 29, 1, 0))]


def test_paris_fall_back_day_through_the_scheduler(runner, clock):
    clock.t = utc(2026, 10, 24, 20)
    runner.register(scheduled({"cron": "30 2 * * *", "timezone": "Europe/Paris"}))
    walk(runner, clock, utc(2026, 10, 25, 6), 60)
    assert slots_of(runner) == [iso(utc(2026, 10, 25, 0, 30))]


@pytest.mark.parametrize(("catchup", "count"), [("none", 0), ("latest", 1), ("all", 10)])
def test_catchup_after_a_downtime_through_the_scheduler(runner, clock, catchup, count):
    runner.schedule_grace = 30.0
    runner.register(scheduled({"every": 60, "catchup": catchup}))
    clock.t = T0 + 650  # no check ran for 11 minutes: slots 1..10 missed (600 by 50 s)
    runner.fire_due()
    assert len(slots_of(runner)) == count
    missed = runner.get_workflow("nightly")["missedSlots"]
    assert missed["count"] == 10 and missed["fired"] == count and missed["catchup"] == catchup
    assert runner.get_workflow("nightly")["nextRunTime"] == iso(T0 + 660)


def test_pause_and_resume_never_fire_the_paused_slots(runner, clock):
    runner.register(scheduled({"every": 60}))
    walk(runner, clock, T0 + 61, 30)
    assert len(slots_of(runner)) == 1
    paused = runner.pause("nightly")
    assert paused["paused"] is True and paused["nextRunTime"] is None
    walk(runner, clock, T0 + 3600, 60)
    assert len(slots_of(runner)) == 1
    resumed = runner.pause("nightly", False)
    assert resumed["paused"] is False and resumed["nextRunTime"] == iso(T0 + 3660)
    runner.fire_due()
    assert len(slots_of(runner)) == 1  # the 58 slots that fell while paused: none
    walk(runner, clock, T0 + 3661, 30)
    assert slots_of(runner)[-1] == iso(T0 + 3660)
    assert runner.get_workflow("nightly")["missedSlots"] is None


def test_a_schedule_change_takes_effect_from_now(runner, clock):
    runner.register(scheduled({"every": 60}))
    walk(runner, clock, T0 + 121, 30)
    assert len(slots_of(runner)) == 2
    changed = runner.register(scheduled({"every": 600}))
    assert changed["revision"] == 2 and changed["nextRunTime"] == iso(T0 + 121 + 600)
    walk(runner, clock, T0 + 121 + 601, 30)
    assert slots_of(runner)[2:] == [iso(T0 + 721)]
    # the same schedule registered again keeps its state (no new anchor)
    again = runner.register(scheduled({"every": 600}))
    assert again["revision"] == 2 and again["nextRunTime"] == iso(T0 + 1321)
    # a paused schedule stays paused across a change
    runner.pause("nightly")
    assert runner.register(scheduled({"every": 30}))["paused"] is True


def test_removing_or_deleting_the_schedule(runner, clock):
    runner.register(scheduled({"every": 60}))
    plain = runner.register({"id": "nightly", "name": "Nightly", "tasks": [{"name": "a"}]})
    assert plain["schedule"] is None and plain["nextRunTime"] is None
    walk(runner, clock, T0 + 200, 30)
    assert slots_of(runner) == []
    with pytest.raises(Conflict) as info:
        runner.pause("nightly")
    assert info.value.code == "no_schedule"
    with pytest.raises(NotFound):
        runner.pause("nope")
    runner.register(scheduled({"every": 60}))
    runner.delete_workflow("nightly")
    walk(runner, clock, T0 + 400, 30)
    assert slots_of(runner) == []


def test_the_check_reads_only_due_schedules(runner, clock):
    """1,000 schedules, none due: the check is one indexed read (its cost is in bench/)."""
    for i in range(1000):
        runner.register({**scheduled({"every": 3600}), "id": f"w{i}", "name": f"w{i}"})
    plan_rows = (
        runner.store._conn()
        .execute("EXPLAIN QUERY PLAN SELECT workflow_id FROM schedules WHERE next_slot <= ?", (T0,))
        .fetchall()
    )
    assert any("idx_schedules_next_slot" in str(r) for r in plan_rows), plan_rows
    assert runner.fire_due() == []
