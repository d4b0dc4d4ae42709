"""``/ws``: message shape, ``since`` replay then live with no gap and no duplicate,
filters, many clients, slow clients, events written by other processes, and auth."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from pytaskflow_jupyter.events import make_event
from pytaskflow_jupyter.store import Store
from pytaskflow_jupyter.transitions import Changes

from .helpers import REPO, store_with_events, task, wf

REQUIRED = {
    "event",
    "workflow_id",
    "task",
    "timestamp",
    "seq",
    "execution_id",
    "workflow",
    "status",
}
FINAL = {"execution_completed", "execution_failed", "execution_cancelled"}


async def read_until(ws: Any, predicate, *, limit: int = 100_000) -> list[dict[str, Any]]:
    """Messages up to and including the first one that satisfies ``predicate``."""
    out = []
    for _ in range(limit):
        text = await asyncio.wait_for(ws.read_message(), 30)
        assert text is not None, f"closed ({ws.close_code}) after {out[-3:]}"
        out.append(json.loads(text))
        if predicate(out[-1]):
            return out
    raise AssertionError("predicate never satisfied")


def ends(execution_id: str):
    return lambda m: m["event"] in FINAL and m["execution_id"] == execution_id


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_message_shape_matches_spec(api, ws_connect):
    ws = await ws_connect()
    definition = wf(
        "shape",
        task("ok", code="result = 1"),
        task("bad", "ok", code="raise ValueError('nope')", retries=1, retry_delay=0),
        task("after", "bad"),
        task("br", "ok", type="branch", params={"next": ["chosen"]}),
        task("chosen", "br"),
        task("other", "br"),
    )
    execution = await api.submit(definition)
    messages = await read_until(ws, ends(execution["id"]))
    ws.close()
    for m in messages:
        assert set(m) >= REQUIRED, m
        assert m["workflow_id"] == m["execution_id"] == execution["id"]
        assert m["workflow"] == "shape"
        assert m["timestamp"].endswith("Z")
    assert contiguous([m["seq"] for m in messages])
    by_event: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_event.setdefault(m["event"], []).append(m)
    assert by_event["execution_started"][0]["task"] is None
    assert {
        "task_started",
        "task_completed",
        "task_failed",
        "task_retrying",
        "task_skipped",
        "execution_failed",
    } <= set(by_event)
    completed = next(m for m in by_event["task_completed"] if m["task"] == "ok")
    assert completed["status"] == "completed" and completed["attempt"] == 1
    assert isinstance(completed["duration"], float)
    failed = by_event["task_failed"][0]
    assert failed["task"] == "bad" and "nope" in failed["error"] and failed["attempt"] == 2
    skipped = {m["task"]: m["reason"] for m in by_event["task_skipped"]}
    assert skipped == {"after": "upstream_failed", "other": "not_selected"}
    assert messages[-1]["event"] == "execution_failed"


async def test_since_replays_then_continues_live(api, jp_ws_fetch):
    first = await api.submit(wf("one", task("a"), task("b", "a")))
    await api.wait(first["id"])
    everything = await jp_ws_fetch("ws", params={"since": 0})
    history = await read_until(everything, ends(first["id"]))
    seqs = [m["seq"] for m in history]
    assert seqs[0] == 1 and contiguous(seqs)
    middle = seqs[len(seqs) // 2]
    ws = await jp_ws_fetch("ws", params={"since": middle})
    second = await api.submit(wf("two", task("a")))
    got = await read_until(ws, ends(second["id"]))
    got_seqs = [m["seq"] for m in got]
    assert got_seqs[0] == middle + 1 and contiguous(got_seqs)
    assert got[-1]["execution_id"] == second["id"]
    # the client connected before the second run sees exactly the same live events
    live = await read_until(everything, ends(second["id"]))
    assert [m["seq"] for m in live] == got_seqs[-len(live) :]
    assert live[0]["seq"] == seqs[-1] + 1
    ws.close()
    everything.close()


async def test_since_beyond_the_last_event_is_400_naming_the_last_seq(
    api, jp_ws_fetch, taskflow_app
):
    # it would otherwise wait, silently, for events that may never come (issue 15)
    execution = await api.submit(wf("past", task("a"), task("b", "a")))
    await api.wait(execution["id"])
    last = await taskflow_app.run(taskflow_app.store.last_seq)
    assert last > 0
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("ws", params={"since": last + 1})
    assert info.value.code == 400
    body = json.loads(info.value.response.body)
    assert body["code"] == "invalid_query"
    assert body["errors"][0]["path"] == "since"
    assert body["errors"][0]["code"] == "out_of_range"
    assert f"(seq {last})" in body["errors"][0]["detail"]
    ws = await jp_ws_fetch("ws", params={"since": last})  # at the end: follows live events
    second = await api.submit(wf("next", task("a")))
    got = await read_until(ws, ends(second["id"]))
    assert got[0]["seq"] == last + 1 and contiguous([m["seq"] for m in got])
    ws.close()


async def test_replay_racing_live_events_has_no_gap_and_no_duplicate(
    api, jp_ws_fetch, taskflow_app
):
    """Clients join with since=0 while a 300-task execution commits events; each must see
    1..N exactly once, in order. A tiny page size forces many replay rounds."""
    taskflow_app.hub.page_size = 7
    definition = wf(
        "race", *[task(f"t{i}", *([f"t{i - 1}"] if i % 10 else [])) for i in range(300)]
    )
    execution = await api.submit(definition)
    clients = []
    for _ in range(6):
        clients.append(await jp_ws_fetch("ws", params={"since": 0}))
        await asyncio.sleep(0.01)
    results = await asyncio.gather(*[read_until(c, ends(execution["id"])) for c in clients])
    for messages in results:
        seqs = [m["seq"] for m in messages]
        assert seqs[0] == 1 and contiguous(seqs), seqs[:20]
        assert len(messages) == len(results[0])
    for c in clients:
        c.close()


async def test_filters(api, jp_ws_fetch, ws_connect):
    alpha = await ws_connect(params={"workflow": "alpha"})
    a1 = await api.submit(wf("alpha", task("a")))
    b1 = await api.submit(wf("beta", task("a")))
    only_b1 = await jp_ws_fetch("ws", params={"execution": b1["id"], "since": 0})
    await api.wait(a1["id"])
    await api.wait(b1["id"])
    a2 = (await api("POST", "workflows", "alpha", "executions"))[1]
    got_alpha = await read_until(alpha, ends(a2["id"]))
    assert {m["workflow"] for m in got_alpha} == {"alpha"}
    assert {m["execution_id"] for m in got_alpha} == {a1["id"], a2["id"]}
    got_b1 = await read_until(only_b1, ends(b1["id"]))
    assert {m["execution_id"] for m in got_b1} == {b1["id"]}
    assert got_b1[0]["event"] == "execution_started"
    # both filters at once, replayed: nothing of beta under workflow=alpha
    both = await jp_ws_fetch("ws", params={"workflow": "alpha", "execution": a1["id"], "since": 0})
    got_both = await read_until(both, ends(a1["id"]))
    assert {m["execution_id"] for m in got_both} == {a1["id"]}
    for ws in (alpha, only_b1, both):
        ws.close()


async def test_many_clients_get_the_same_stream(api, ws_connect):
    clients = [await ws_connect() for _ in range(50)]
    execution = await api.submit(wf("fan", *[task(f"t{i}") for i in range(20)]))
    results = await asyncio.gather(*[read_until(c, ends(execution["id"])) for c in clients])
    reference = [m["seq"] for m in results[0]]
    assert contiguous(reference)
    for messages in results:
        assert [m["seq"] for m in messages] == reference
    for c in clients:
        c.close()


def _seed_events(db_path, count: int, pad: int) -> list[int]:
    """Commit ``count`` events of ``pad`` bytes through a second Store (as a kernel would)."""
    store = Store(db_path)
    seqs = []
    try:
        store.create_execution("exec_other", "bulk", 1)  # events are of an execution
        for start in range(0, count, 500):
            events = [
                make_event(
                    "task_completed",
                    "exec_other",
                    "bulk",
                    "completed",
                    task=f"t{i}",
                    error="x" * pad,  # padding
                )
                for i in range(start, min(count, start + 500))
            ]
            seqs += [e.seq for e in store.commit("exec_other", Changes(events=events)) or []]
    finally:
        store.close()
    return seqs


async def test_slow_client_is_closed_and_resumes_with_since(
    api, jp_ws_fetch, ws_connect, taskflow_app, db_path
):
    """A client that stops reading is closed (1013) once its queue overflows, while a
    reading client gets every event; the slow one reconnects with since and gets the rest."""
    hub = taskflow_app.hub
    hub.queue_size = 50
    slow = await ws_connect()  # never reads until it has been dropped
    hub.queue_size = 100_000
    fast = await ws_connect()
    assert len(hub.clients) == 2
    count = 5000  # 5 MB: more than a localhost socket buffers for a client that never reads
    seeding = asyncio.ensure_future(asyncio.to_thread(_seed_events, db_path, count, 1000))

    async def read_fast() -> list[int]:
        got = []
        while len(got) < count:
            text = await asyncio.wait_for(fast.read_message(), 30)
            assert text is not None, fast.close_code
            got.append(json.loads(text)["seq"])
        return got

    fast_reader = asyncio.ensure_future(read_fast())
    for _ in range(3000):  # the hub drops the slow client once its socket and queue are full
        if len(hub.clients) == 1:
            break
        await asyncio.sleep(0.01)
    assert len(hub.clients) == 1, "the slow client was never dropped"
    partial = []
    while (text := await asyncio.wait_for(slow.read_message(), 30)) is not None:
        partial.append(json.loads(text)["seq"])
    assert slow.close_code == 1013, (slow.close_code, slow.close_reason)
    seqs = await seeding
    assert await fast_reader == seqs
    assert partial == seqs[: len(partial)] and len(partial) < count
    resumed = await jp_ws_fetch("ws", params={"since": partial[-1] if partial else 0})
    rest = []
    while len(rest) < count - len(partial):
        rest.append(json.loads(await asyncio.wait_for(resumed.read_message(), 30))["seq"])
    assert partial + rest == seqs
    for ws in (fast, resumed):
        ws.close()


SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from pytaskflow_jupyter import EventBus, Runner, Store, make_executor
    store = Store({db!r})
    executor = make_executor("thread")
    runner = Runner(store, executor, EventBus())
    if {mode!r} == "run":
        execution = runner.submit({{"name": "kernel side", "tasks": [
            {{"name": "a", "params": {{"code": "result = 1"}}}},
            {{"name": "b", "dependencies": ["a"]}}]}})
        runner.wait(execution["id"], timeout=60)
    else:
        runner.register({{"name": "queued", "tasks": [{{"name": "a"}}]}})
        execution = runner.enqueue("queued")
    print(execution["id"])
    runner.close()
    executor.shutdown()
""")


async def _other_process(db_path, mode: str) -> str:
    code = SCRIPT.format(repo=str(REPO), db=str(db_path), mode=mode)
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


async def test_events_of_another_process_reach_ws(api, ws_connect, db_path):
    ws = await ws_connect()
    execution_id = await _other_process(db_path, "run")
    got = await read_until(ws, ends(execution_id))
    assert {m["execution_id"] for m in got} == {execution_id}
    assert got[0]["event"] == "execution_started"
    assert got[-1]["event"] == "execution_completed"
    assert contiguous([m["seq"] for m in got])
    listed = (await api("GET", "executions"))[1]
    assert [e["id"] for e in listed] == [execution_id]
    ws.close()


async def test_executions_enqueued_by_a_kernel_are_run_by_the_server(
    api, ws_connect, db_path, taskflow_app
):
    ws = await ws_connect(params={"workflow": "queued"})
    execution_id = await _other_process(db_path, "enqueue")
    got = await read_until(ws, ends(execution_id))
    assert got[-1]["event"] == "execution_completed"
    done = await api.wait(execution_id)
    assert done["status"] == "completed"
    row = await taskflow_app.run(taskflow_app.store.execution_row, execution_id)
    assert row["owner"] == taskflow_app.runner.owner
    ws.close()


async def test_keepalive_pings(api, jp_ws_fetch, jp_serverapp):
    jp_serverapp.web_app.settings["ws_ping_interval"] = 50  # ms
    ws = await jp_ws_fetch("ws")
    pinged = asyncio.Event()
    ws.on_ping = lambda data: pinged.set()
    await asyncio.wait_for(pinged.wait(), 10)
    ws.close()


async def test_client_messages_are_ignored_and_big_frames_close(api, ws_connect):
    ws = await ws_connect()
    await ws.write_message("hello")
    await ws.write_message("{not json")
    execution = await api.submit(wf("still works", task("a")))
    got = await read_until(ws, ends(execution["id"]))
    assert got[-1]["event"] == "execution_completed"
    await ws.write_message("x" * (65 * 1024))
    assert await asyncio.wait_for(ws.read_message(), 10) is None
    assert ws.close_code == 1009


async def test_server_stop_closes_clients_going_away(api, ws_connect, taskflow_app):
    ws = await ws_connect()
    await taskflow_app.hub.stop()
    assert await asyncio.wait_for(ws.read_message(), 10) is None
    assert ws.close_code == 1001


@pytest.mark.parametrize(
    "params",
    [{"since": "-1"}, {"since": "abc"}, {"since": "1.5"}, {"execution": ""}, {"topic": "x"}],
)
async def test_bad_ws_queries_are_400(api, jp_ws_fetch, params):
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("ws", params=params)
    assert info.value.code == 400
    body = json.loads(info.value.response.body)
    assert body["code"] == "invalid_query"


async def test_plain_get_on_ws_is_a_json_400(api):
    status, body, _ = await api("GET", "ws")
    assert status == 400 and body["code"] == "upgrade_required"


async def test_ws_without_token_is_403(api, jp_ws_fetch):
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("ws", headers={"Authorization": ""})
    assert info.value.code == 403
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("ws", headers={"Authorization": "token wrong"})
    assert info.value.code == 403


async def test_a_client_joining_while_the_idle_hub_catches_up_misses_nothing(tmp_path):
    """The hub, with no client, skips ahead to the store's last seq; a client that joins
    (and goes live at once) during that read must still get every later-stored event."""
    from pytaskflow_jupyter.server.websocket import Client, EventHub

    store = store_with_events(tmp_path / "t.db", 5)
    received: list[int] = []
    client = Client(
        lambda text: received.append(json.loads(text)["seq"]) or _done(),
        lambda code, reason: None,
        execution=None,
        workflow=None,
        queue_size=100,
    )
    hub: EventHub

    async def run(fn, *args, **kwargs):
        if fn == store.last_seq and client not in hub.clients:
            hub.attach(client, 0)  # joins during the hub's read of the last seq ...
            await asyncio.sleep(0.05)  # ... and catches up (to hub.last, still 0): live
        return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))

    hub = EventHub(store, run, poll_interval=0.05)
    hub._loop = asyncio.get_running_loop()  # the hub's state, without its pump task
    hub._ready = hub._loop.create_future()
    hub._ready.set_result(None)
    hub._task = hub._ready  # (marks the hub started: no pump runs beside this test)
    await hub._drain()  # idle: reads the last seq, while the client joins
    await hub._drain()  # nothing new is stored: a drain that skipped ahead sends nothing
    for _ in range(50):
        if len(received) == 5:
            break
        await asyncio.sleep(0.02)
    hub.detach(client)
    store.close()
    assert received == [1, 2, 3, 4, 5]


def _done():
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut
