"""``/ws`` fan-out to many clients at once: every client gets every event its filters
select exactly once, in ``seq`` order, whether it joined before the runs or during them
(replay then live), and however the hub cuts the stream into chunks, rounds of clients
and writes. Correctness only: the cost is measured by ``bench/bench_ws.py``."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from pytaskflow_jupyter.server.websocket import Client, EventHub

from .helpers import store_with_events, task, wf

FINAL = {"execution_completed", "execution_failed", "execution_cancelled"}


class Reader:
    """One client reading in the background, as a browser does, while the runs go on."""

    def __init__(self, ws: Any, filters: dict[str, Any]) -> None:
        self.ws, self.filters = ws, filters
        self.got: list[dict[str, Any]] = []
        self.ended: set[str] = set()
        self.changed = asyncio.Event()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while (text := await self.ws.read_message()) is not None:
            message = json.loads(text)  # one event per message, nothing else
            self.got.append(message)
            if message["event"] in FINAL:
                self.ended.add(message["execution_id"])
                self.changed.set()

    async def until_ended(self, execution_id: str) -> None:
        while execution_id not in self.ended:
            assert not self.task.done(), f"closed ({self.ws.close_code}) {self.got[-3:]}"
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 60)

    def close(self) -> None:
        self.ws.close()
        self.task.cancel()


def selected(stored: list[Any], filters: dict[str, Any], start: int) -> list[int]:
    """The seqs of the stored events a client with ``filters`` must get, in order (from
    ``since``, or from ``start``, the end of the stream when it connected without)."""
    since = filters.get("since", start)
    return [
        e.seq
        for e in stored
        if e.seq > since
        and filters.get("execution", e.execution_id) == e.execution_id
        and filters.get("workflow", e.workflow) == e.workflow
    ]


async def stored_events(taskflow_app: Any) -> list[Any]:
    out: list[Any] = []
    while batch := await taskflow_app.run(taskflow_app.store.events, out[-1].seq if out else 0):
        out += batch
    return out


async def test_fifty_clients_get_every_event_once_in_order_with_their_filters(
    api, jp_ws_fetch, ws_connect, taskflow_app
):
    hub = taskflow_app.hub
    hub.page_size = 64  # many pages and chunks ...
    hub.clients_per_round = 7  # ... and many rounds of clients, with yields between them
    for name, width in (("wide", 150), ("narrow", 40)):
        definition = wf(name, task("start"), *[task(f"t{i}", "start") for i in range(width)])
        status, body, _ = await api("PUT", "workflows", name, body=definition)
        assert status == 200, body
    filters: list[dict[str, Any]] = [
        *({} for _ in range(20)),
        *({"workflow": "wide"} for _ in range(10)),
        *({"workflow": "narrow"} for _ in range(10)),
    ]
    readers = [Reader(await ws_connect(params=f), f) for f in filters]
    before = await taskflow_app.run(taskflow_app.store.last_seq)
    wide = (await api("POST", "workflows", "wide", "executions"))[1]
    narrow = (await api("POST", "workflows", "narrow", "executions"))[1]
    # ten more join while both run, replaying from before the runs, then live
    for i in range(10):
        f = {"execution": (wide, narrow)[i % 2]["id"], "since": before}
        if i in (2, 3):
            f["workflow"] = "wide"  # both filters at once: wide's events, or none of narrow's
        readers.append(Reader(await jp_ws_fetch("ws", params=f), f))
        await asyncio.sleep(0.005)
    assert len(readers) == 50
    for execution in (wide, narrow):
        await api.wait(execution["id"])
    # a last run of `wide` ends the stream of every client that follows `wide`: what came
    # before it is all a client will get of the two runs (a duplicate would show)
    last = (await api("POST", "workflows", "wide", "executions"))[1]
    await api.wait(last["id"])
    stored = await stored_events(taskflow_app)
    by_seq = {e.seq: e for e in stored}
    empty = []
    for reader in readers:
        f = reader.filters
        expected = selected(stored, f, before)
        # the last event of each execution it follows is that execution's final one
        for execution_id in {by_seq[seq].execution_id for seq in expected}:
            await reader.until_ended(execution_id)
        if not expected:
            empty.append(reader)
            continue
        seqs = [m["seq"] for m in reader.got]
        assert seqs == expected, (f, seqs[:10], expected[:10], len(seqs), len(expected))
        for m in reader.got:
            assert f.get("execution", m["execution_id"]) == m["execution_id"]
            assert f.get("workflow", m["workflow"]) == m["workflow"]
    # (the hub gives a chunk to every client in one pass: by now any leak would be here)
    assert [r.got for r in empty] == [[]], [r.filters for r in empty]
    unfiltered = [r for r in readers if not r.filters]
    assert {tuple(m["seq"] for m in r.got) for r in unfiltered} == {
        tuple(e.seq for e in stored if e.seq > before)
    }
    for reader in readers:
        reader.close()


async def test_a_replay_longer_than_the_queue_waits_for_the_client_and_is_not_closed(
    api, jp_ws_fetch, taskflow_app
):
    """Replay fills a client's queue as fast as the client takes it (never the 1013 of a
    live client that falls behind), with live events after it, none lost, none twice."""
    execution = await api.submit(wf("long", *[task(f"t{i}") for i in range(120)]))
    await api.wait(execution["id"])
    hub = taskflow_app.hub
    hub.queue_size = 8
    readers = [Reader(await jp_ws_fetch("ws", params={"since": 0}), {}) for _ in range(5)]
    assert [c.queue_size for c in hub.clients] == [8] * 5
    hub.queue_size = 10_000
    then = await api.submit(wf("then", task("a")))
    await api.wait(then["id"])
    stored = await stored_events(taskflow_app)
    for reader in readers:
        await reader.until_ended(then["id"])
        assert [m["seq"] for m in reader.got] == [e.seq for e in stored]
        reader.close()


async def test_a_client_going_live_during_a_fan_out_gets_the_chunk_once(tmp_path):
    """The hub feeds clients in rounds, yielding between them; a client whose replay ends
    during such a yield (``pos`` before the chunk) must get the whole chunk, and one whose
    ``since`` is inside the chunk only what follows it."""
    store = store_with_events(tmp_path / "t.db", 10)

    async def run(fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    hub = EventHub(store, run, clients_per_round=1)
    received: dict[str, list[int]] = {}

    def client(name: str, pos: int) -> Client:
        got = received.setdefault(name, [])
        c = Client(
            lambda text: got.append(json.loads(text)["seq"]) or _done(),
            lambda code, reason: None,
            execution=None,
            workflow=None,
            queue_size=100,
        )
        c.pos, c.live = pos, True
        c.tasks = [asyncio.ensure_future(c.write_loop())]
        return c

    early = [client("a", 0), client("b", 0)]
    hub.clients.update(early)
    late = [client("c", 0), client("d", 4)]
    rows = await run(hub.fetch, 0, None, None, 100)
    # they join at the first yield, as clients whose replay just caught up with hub.last
    asyncio.get_running_loop().call_soon(hub.clients.update, late)
    await hub._fan_out(rows)
    for _ in range(100):
        if sum(map(len, received.values())) == 36:
            break
        await asyncio.sleep(0.01)
    for c in early + late:
        hub.detach(c)
    store.close()
    everything = list(range(1, 11))
    assert received == {"a": everything, "b": everything, "c": everything, "d": everything[4:]}


def _done() -> asyncio.Future[None]:
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


async def _live_client(hub: EventHub, write_frames: Any) -> None:
    """A client of ``hub`` writing with ``write_frames``, once it is live."""
    c = Client(lambda text: None, lambda code, reason: None, execution=None, workflow=None,
               queue_size=100, write_frames=write_frames)  # fmt: skip
    await hub.ready()
    hub.attach(c, None)
    while not c.live:
        await asyncio.sleep(0.01)


async def _to_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def test_events_committed_within_min_interval_of_a_fan_out_go_out_in_one_write(tmp_path):
    """The first event after a quiet spell goes out at once; what is committed in the
    next ``min_interval`` waits for it and goes out in one write to each client, so a
    run's stream wakes hundreds of writers a few times a second, not once an event."""
    from pytaskflow_jupyter.events import make_event
    from pytaskflow_jupyter.transitions import Changes

    store = store_with_events(tmp_path / "t.db", 1)
    run = _to_thread

    def commit(count: int) -> None:
        events = [make_event("task_started", "exec_x", "w", "running", "a")] * count
        store.commit("exec_x", Changes(events=events))
        hub.notify()

    hub = EventHub(store, run, poll_interval=10, min_interval=0.5)
    writes: list[tuple[float, list[int]]] = []
    loop = asyncio.get_running_loop()

    def write_frames(frames: bytes) -> asyncio.Future[None]:
        writes.append((loop.time(), [int(s) for s in re.findall(rb'"seq": ?(\d+)', frames)]))
        return _done()

    await _live_client(hub, write_frames)
    await run(commit, 1)
    while not writes:
        await asyncio.sleep(0.005)
    for _ in range(4):  # four commits in quick succession, inside the interval
        await run(commit, 1)
    while sum(len(seqs) for _, seqs in writes) < 5:
        await asyncio.sleep(0.01)
    await hub.stop()
    store.close()
    assert [seqs for _, seqs in writes] == [[2], [3, 4, 5, 6]]
    assert writes[1][0] - writes[0][0] >= 0.45  # (the loop's clock; a little slack)


async def test_an_execution_s_end_does_not_wait_out_the_interval(tmp_path):
    """The terminal event goes out as soon as it is committed, even right after a
    fan-out: with a 30 s interval, it is written long before the interval is over."""
    from pytaskflow_jupyter.events import make_event
    from pytaskflow_jupyter.transitions import Changes

    store = store_with_events(tmp_path / "t.db", 1)
    run = _to_thread

    def commit(kind: str, status: str, task: str | None) -> None:
        events = [make_event(kind, "exec_x", "w", status, task)]
        store.commit("exec_x", Changes(events=events))
        hub.notify(events)

    hub = EventHub(store, run, poll_interval=60, min_interval=30)
    writes: list[list[int]] = []

    def write_frames(frames: bytes) -> asyncio.Future[None]:
        writes.append([int(s) for s in re.findall(rb'"seq": ?(\d+)', frames)])
        return _done()

    await _live_client(hub, write_frames)
    await run(commit, "task_started", "running", "a")
    while not writes:
        await asyncio.sleep(0.005)
    await run(commit, "execution_completed", "completed", None)
    for _ in range(1000):  # 10 s at most: a third of the interval
        if len(writes) == 2:
            break
        await asyncio.sleep(0.01)
    await hub.stop()
    store.close()
    assert writes == [[2], [3]]


def test_the_events_the_bus_published_are_taken_as_the_store_holds_them(tmp_path):
    """The hub takes the committed events the bus published instead of reading them back:
    for every kind of event a run makes (a branch's selection, skips and their reasons, a
    failure, retries and their delays, a mapped task's instances), the frames are byte for
    byte those of the stored events, and no event is read back from the store."""
    from pytaskflow_jupyter.events import EventBus
    from pytaskflow_jupyter.executors import ThreadExecutor
    from pytaskflow_jupyter.runner import Runner
    from pytaskflow_jupyter.store import Store

    from ..unit.helpers import task as unit_task
    from ..unit.helpers import wf as unit_wf

    store, bus, executor = Store(tmp_path / "t.db"), EventBus(), ThreadExecutor(2)
    runner = Runner(store, executor, bus)
    hub = EventHub(store, _to_thread)
    hub.clients.add(Client(print, print, execution=None, workflow=None, queue_size=10))
    bus.subscribe(hub.notify)
    marker = str(tmp_path / "count")
    definition = unit_wf(
        unit_task("br", type="branch", next=["left"]),
        unit_task("left", "br", code="result = [1, 2, 3]"),
        unit_task("right", "br"),
        unit_task("each", "left", map_over="left", code="result = item * 2"),
        unit_task("flaky", callable="tests.unit.sample_tasks:fail_until",
                  kwargs={"marker": marker, "times": 1}, retries=1, retry_delay=0.01),
        unit_task("bad", code="raise ValueError('no <good>\\u00e9')"),
        unit_task("after_bad", "bad"),
    )  # fmt: skip
    ended = runner.wait(runner.submit(definition)["id"], 30)
    assert ended["status"] == "failed"
    taken: list[bytes] = []
    while True:
        rows, stored = hub.after(len(taken))
        if not rows:
            break
        assert not stored, f"events after seq {len(taken)} were read back from the store"
        taken += [m.frame for m in rows]
    assert taken == [m.frame for m in hub.fetch(0, None, None, 10_000)]
    kinds = {json.loads(f[2:] if f[1] < 126 else f[4:])["event"] for f in taken}
    assert {"task_skipped", "task_failed", "task_retrying", "execution_failed"} <= kinds
    runner.close()
    executor.shutdown(wait=True)
    store.close()


def test_after_a_gap_in_the_published_events_the_hub_reads_the_store(tmp_path):
    """Events of another process (or of a run not yet published) leave a gap in what the
    bus gave: the hub then reads the store from ``last``, and drops what it has given."""
    from pytaskflow_jupyter.events import make_event
    from pytaskflow_jupyter.transitions import Changes

    store = store_with_events(tmp_path / "t.db", 3)  # seq 1-3, never published
    hub = EventHub(store, _to_thread)
    hub.clients.add(Client(print, print, execution=None, workflow=None, queue_size=10))
    events = [make_event("task_started", "exec_x", "w", "running", "a") for _ in range(2)]
    store.commit("exec_x", Changes(events=events))  # seq 4-5
    hub.notify(events)
    rows, stored = hub.after(0)
    assert ([m.seq for m in rows], stored) == ([1, 2, 3, 4, 5], True)
    assert hub.after(5) == ([], True)  # 4-5 were dropped, not given twice
    later = [make_event("task_started", "exec_x", "w", "running", "a")]
    store.commit("exec_x", Changes(events=later))  # seq 6
    hub.notify(later)
    rows, stored = hub.after(5)
    assert ([m.seq for m in rows], stored) == ([6], False)
    store.close()
