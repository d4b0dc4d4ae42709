"""``/ws``: the stream of committed events (SPEC §4).

Design
------
The store is the single source of truth: every event is committed with its global,
gap-free ``seq`` before anyone sees it, by this server or by any kernel sharing the file.
So the stream is what the store holds, in ``seq`` order:

* One ``EventHub`` per server holds ``last``, the highest ``seq`` it has fanned out. It
  wakes when the in-process ``EventBus`` publishes (bounced onto the loop with
  ``call_soon_threadsafe``, coalesced) and every ``poll_interval`` seconds (to see
  commits of other processes), takes the events after ``last`` in a worker thread and
  encodes each there, once for every client: its JSON text and its WebSocket frame
  (no compression is negotiated, so the frame is the same bytes for every client). It
  hands them to each live client, in ``seq`` order, in rounds of ``clients_per_round``
  clients with a yield to the loop between rounds, so REST requests are served while
  hundreds of clients are fed; the messages a filter selects are picked, and their frames
  joined into one buffer, once per filter (a writer sends that buffer as it is).
* The events after ``last`` come from the bus when it has them all: the events it
  published (committed, numbered) are kept while clients listen, and when they run on
  from ``last + 1`` without a gap, those are the stored events, and the hub takes them
  instead of reading them back (reading and decoding them was half the hub's cost, 3-4
  us an event). At the first gap (a commit of another process, or one of another run
  not yet published) the hub reads the store, as it does when polled.
* Fan-outs are at least ``min_interval`` apart (50 ms): the first event after a quiet
  spell goes out at once; what is committed in the next 50 ms waits and goes out with
  the next fan-out, in one write per client. Each fan-out costs the loop a ``send`` per
  client: draining whenever woken, a 4 s run of 4,002 events made 175 fan-outs, 35,000
  sends to 200 clients, 2 s of the loop in ``socket.send`` with REST requests waiting
  behind them (``bench/bench_ws.py``); now at most 20 a second, whatever the event rate.
  An execution's end is not held back: its event goes out at once (``notify`` sees it),
  so a short run's client does not wait out the interval for the last one.
* A client has a cursor ``pos``: the last ``seq`` it has been given or has skipped. A
  new client first catches up from the store (``since=SEQ``, or the store's last seq
  when absent), in pages, until ``pos`` reaches ``hub.last``; it joins the live stream
  at that moment, with no ``await`` between the check and the switch, so no event falls
  between replay and live and none is sent twice (the live path also skips ``seq <= pos``,
  and takes, round after round, every live client still behind the chunk it fans out,
  so one that went live during a yield gets the chunk too).
* Each client has a bounded list of pending messages drained by its own writer task: it
  takes the whole list, writes all its frames to the socket in one write, and waits for
  that one flush (never for one message: Tornado's ``write_message`` costs a write and a
  ``Task`` per message per client). A client whose pending messages would exceed the
  queue size is closed with code 1013 ("try again later"); it reconnects with ``since``
  set to the last ``seq`` it saw and misses nothing. So a slow or dead client costs the
  others nothing, and the engine nothing at all: it never waits for the hub; a client
  costs the hub one list extension per chunk of events, whatever the chunk's length.

Messages from the client are not part of the protocol; they are ignored (frames over
``max_message_size`` close the connection with 1009, as Tornado does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol, cast

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import iostream, web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..errors import InvalidInput, Problem
from ..serialize import encode, event_json
from .base import AUTH_RESOURCE, Checker, ErrorMixin, nonempty, parse_query, seq_value

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..events import Event
    from ..store import Store

__all__ = ["EventHub", "EventsWebSocket"]

log = logging.getLogger(__name__)

SLOW_CLIENT = 1013
GOING_AWAY = 1001


def text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed WebSocket text frame (RFC 6455 5.2): what a server
    sends, the same bytes for every client."""
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size <= 0xFFFF:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


class Message:
    """One stored event, encoded once for every client: its JSON and its frame."""

    __slots__ = ("execution", "frame", "payload", "seq", "workflow")

    def __init__(self, seq: int, payload: bytes, execution: str, workflow: str) -> None:
        self.seq, self.payload, self.execution, self.workflow = seq, payload, execution, workflow
        self.frame = text_frame(payload)

    @classmethod
    def of(cls, event: Event) -> Message:
        """``event``, committed, encoded (orjson: the stdlib's encoder was a fifth of the
        server's CPU on a 10,000-task run)."""
        assert event.seq is not None  # the store numbers every event it has committed
        return cls(event.seq, encode(event_json(event)), event.execution_id, event.workflow)


_SEQ = attrgetter("seq")


class Client:
    """One subscriber: filters, cursor, bounded list of pending messages, writer task.

    ``write_frames`` takes many encoded frames at once and returns the flush's future; a
    client without it (a connection that must encode each message itself) falls back to
    ``send``, one message at a time.
    """

    def __init__(
        self,
        send: Callable[[str], Any],
        close: Callable[[int, str], None],
        *,
        execution: str | None,
        workflow: str | None,
        queue_size: int,
        write_frames: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        self.send, self.close, self.write_frames = send, close, write_frames
        self.execution, self.workflow = execution, workflow
        self.queue_size = queue_size
        self.pending: list[Message] = []
        self.pos = 0
        self.live = False
        self.closed = False
        self.tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Future[None] | None = None  # the writer waits for messages
        self._room: asyncio.Future[None] | None = None  # the replay waits for the writer
        self._joined: tuple[bytes, int] | None = None  # the frames of ``pending``, joined

    def wants(self, execution: str, workflow: str) -> bool:
        return (self.execution is None or execution == self.execution) and (
            self.workflow is None or workflow == self.workflow
        )

    def push(self, messages: list[Message], frames: bytes | None = None) -> bool:
        """Queue ``messages`` for the writer; False (nothing queued) if they overflow.
        ``frames``: their frames already joined (once for every client of a fan-out):
        the writer sends them as they are if nothing else is pending with them."""
        if len(self.pending) + len(messages) > self.queue_size:
            return False
        self._joined = (frames, len(messages)) if frames is not None and not self.pending else None
        self.pending += messages
        _resolve(self._wake)
        return True

    async def replay(self, messages: list[Message]) -> None:
        """Queue ``messages``, waiting for the writer to make room instead of dropping."""
        while messages and not self.closed:
            room = self.queue_size - len(self.pending)
            if room <= 0:
                self._room = asyncio.get_running_loop().create_future()
                await self._room
                continue
            self.push(messages[:room])
            messages = messages[room:]

    async def write_loop(self) -> None:
        """Hand everything pending to the socket in one write, then wait for that flush
        (never for one message): whatever arrives meanwhile goes in the next write."""
        loop = asyncio.get_running_loop()
        while not self.closed:
            if not self.pending:
                self._wake = loop.create_future()
                await self._wake
                continue
            batch, self.pending = self.pending, []
            joined, self._joined = self._joined, None
            _resolve(self._room)
            try:
                if self.write_frames is not None:
                    if joined is None or joined[1] != len(batch):
                        joined = (b"".join([m.frame for m in batch]), len(batch))
                    await self.write_frames(joined[0])
                else:
                    await asyncio.gather(*[self.send(m.payload.decode()) for m in batch])
            except (WebSocketClosedError, iostream.StreamClosedError):
                self.closed = True
                _resolve(self._room)  # a replay waiting for room ends (on_close detaches)


def _resolve(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class EventHub:
    """Reads committed events from the store and fans them out (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        run: Callable[..., Awaitable[Any]],
        *,
        poll_interval: float = 0.2,
        page_size: int = 1000,
        queue_size: int = 10_000,
        clients_per_round: int = 100,
        min_interval: float = 0.05,
    ) -> None:
        self.store, self.run = store, run
        self.poll_interval, self.page_size, self.queue_size = poll_interval, page_size, queue_size
        self.clients_per_round = clients_per_round  # clients fed between two yields
        self.min_interval = min_interval  # seconds from one fan-out to the next, at least
        self.last = 0
        self.clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._pending = False  # a wake-up is scheduled on the loop
        self._dirty = False  # committed while draining: drain again at once
        self._waiting = False  # the pump is (about to be) asleep: a commit must wake it
        self._ended = False  # an execution ended: the next fan-out goes at once
        self._stopping = False
        self._published: list[Event] = []  # committed events the bus gave, not yet taken
        self._published_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the pump once (idempotent); must be called on the server's loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._task = self._loop.create_task(self._pump())

    async def ready(self) -> None:
        """Wait until the hub knows the store's last ``seq``."""
        self.start()
        assert self._ready is not None
        await asyncio.shield(self._ready)

    def notify(self, events: Any = None) -> None:
        """EventBus subscriber: runs on the engine's thread; marks the hub dirty, and
        schedules a wake-up only when the pump sleeps (a wake-up of the loop is a write
        to its pipe and a turn of it: one per commit was 6 % of the server's CPU on a
        10,000-task run, with the pump busy or between fan-outs anyway), or when an
        execution ended: that event does not wait out ``min_interval``."""
        self._dirty = True
        if events and self.clients:  # with no client, the drain only moves ``last``
            with self._published_lock:
                if len(self._published) < self.queue_size:  # else it reads the store
                    self._published += events
        ended = events is not None and any(e.ends_execution for e in events)
        if ended:
            self._ended = True
        if not (self._waiting or ended) or self._pending or self._loop is None:
            return
        self._pending = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
            self._loop.call_soon_threadsafe(self._woken)

    def _woken(self) -> None:
        self._pending = False
        self._dirty = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _sleep(self) -> None:
        """Until woken or ``poll_interval`` passes. (Not ``asyncio.wait_for``: before
        Python 3.12 it can swallow a cancellation that races with the wake-up.)"""
        assert self._loop is not None
        self._waiting = True  # before the check: a commit after it sees it, and wakes us
        if not self._dirty:
            self._wake = wake = self._loop.create_future()
            timer = self._loop.call_later(self.poll_interval, self._woken)
            try:
                await wake
            finally:
                timer.cancel()
        self._waiting = self._dirty = False  # the drain that follows reads what was marked

    async def stop(self) -> None:
        """Stop the pump and close every client (1001, going away)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
            self._task = None
        for client in list(self.clients):
            client.close(GOING_AWAY, "server shutting down")
            self.detach(client)

    # -- the pump ------------------------------------------------------------------------
    async def _pump(self) -> None:
        assert self._ready is not None
        while not self._stopping:
            try:
                self.last = await self.run(self.store.last_seq)
                break
            except Exception:
                log.exception("event hub: cannot read the last event seq; retrying")
                await asyncio.sleep(self.poll_interval)
        if not self._ready.done():
            self._ready.set_result(None)
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await self._sleep()
            began = loop.time()
            try:
                fanned = await self._drain()
            except Exception:
                log.exception("event hub: reading events failed; retrying")
                await asyncio.sleep(self.poll_interval)
                continue
            rest = self.min_interval - (loop.time() - began)
            if fanned and rest > 0 and not self._ended:
                # what is committed meanwhile goes out in one chunk; an execution's end
                # (``notify``) cuts the wait short
                self._wake = wake = loop.create_future()
                timer = loop.call_later(rest, _resolve, wake)
                try:
                    await wake
                finally:
                    timer.cancel()
            self._ended = False

    async def _drain(self) -> bool:
        """Fan out every event committed after ``last``; whether there was any."""
        fanned = False
        while True:
            if not self.clients:
                self._take_published()
                last = await self.run(self.store.last_seq)
                if not self.clients:  # else a client joined (maybe live) meanwhile: fan out
                    self.last = max(self.last, last)
                    return fanned
                continue
            rows, stored = await self.run(self.after, self.last)
            if not rows:
                return fanned
            fanned = True
            # Fan out in chunks no larger than half a client queue, yielding between them so
            # writers can move their queues to their sockets: only a client whose socket
            # does not drain overflows, never one that merely met a burst.
            smallest = min((c.queue_size for c in self.clients), default=self.queue_size)
            step = max(1, min(self.page_size, smallest // 2))
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                await self._fan_out(chunk)
                self.last = chunk[-1].seq  # a client joining live now starts after this
                if start + step < len(rows):
                    await asyncio.sleep(0)
            if stored and len(rows) < self.page_size:
                return fanned

    def _take_published(self) -> list[Event]:
        with self._published_lock:
            published, self._published = self._published, []
        return published

    def after(self, seq: int) -> tuple[list[Message], bool]:
        """The events after ``seq`` (at most a page), encoded, and whether they were read
        from the store (worker thread). The published events that run on from ``seq + 1``
        without a gap are those the store holds; the rest wait for the next call."""
        published = sorted(self._take_published(), key=_SEQ)  # runs of several threads
        start = 0
        while start < len(published) and (published[start].seq or 0) <= seq:
            start += 1
        end = start
        while end < len(published) and end - start < self.page_size:
            if published[end].seq != seq + 1 + end - start:
                break
            end += 1
        if end < len(published):
            with self._published_lock:
                self._published[:0] = published[end:]
        if end > start:
            return [Message.of(e) for e in published[start:end]], False
        return self.fetch(seq, None, None, self.page_size), True

    def fetch(
        self, after: int, execution: str | None, workflow: str | None, limit: int
    ) -> list[Message]:
        """Stored events after ``after``, encoded (worker thread)."""
        events = self.store.events(after, execution=execution, workflow=workflow, limit=limit)
        return [Message.of(e) for e in events]

    async def _fan_out(self, rows: list[Message]) -> None:
        """Give ``rows`` to every live client, a round of clients between yields.

        The messages a filter selects, and their frames joined, are made once for all the
        clients that share it.
        ``self.last`` moves only after this, so a client may go live during a yield with
        ``pos`` before ``rows``: each round takes the live clients still behind ``rows``,
        until none is (the ``seq > pos`` cut keeps out what a client already has).
        """
        end = rows[-1].seq
        selected: dict[tuple[str | None, str | None], tuple[list[Message], bytes]] = {}
        while behind := [c for c in self.clients if c.live and c.pos < end]:
            for client in behind[: max(1, self.clients_per_round)]:
                key = (client.execution, client.workflow)
                if key not in selected:
                    chosen = [m for m in rows if client.wants(m.execution, m.workflow)]
                    selected[key] = (chosen, b"".join([m.frame for m in chosen]))
                messages, joined = selected[key]
                frames: bytes | None = joined
                if messages and messages[0].seq <= client.pos:
                    messages = [m for m in messages if m.seq > client.pos]
                    frames = None  # not the joined selection: the writer joins its own
                client.pos = end
                if messages and not client.push(messages, frames):
                    log.warning(
                        "closing a /ws client that fell %d events behind", client.queue_size
                    )
                    client.close(SLOW_CLIENT, "too slow; reconnect with since=<last seq received>")
                    self.detach(client)
            if len(behind) > max(1, self.clients_per_round):
                await asyncio.sleep(0)  # the loop serves REST requests between rounds

    # -- clients -------------------------------------------------------------------------
    def attach(self, client: Client, since: int | None) -> None:
        """Register ``client``: replay from the store, then join the live stream."""
        if self._stopping:
            client.close(GOING_AWAY, "server shutting down")
            return
        self.clients.add(client)
        client.tasks = [
            asyncio.ensure_future(client.write_loop()),
            asyncio.ensure_future(self._catch_up(client, since)),
        ]

    def detach(self, client: Client) -> None:
        client.closed = True
        self.clients.discard(client)
        for task in client.tasks:
            task.cancel()

    async def _catch_up(self, client: Client, since: int | None) -> None:
        await self.ready()
        client.pos = await self.run(self.store.last_seq) if since is None else since
        while not client.closed:
            target = self.last
            if client.pos >= target:
                client.live = True  # no await since reading self.last: nothing slips between
                return
            rows = await self.run(
                self.fetch, client.pos, client.execution, client.workflow, self.page_size
            )
            complete = len(rows) < self.page_size
            kept = [m for m in rows if m.seq <= target]
            complete = complete or len(kept) < len(rows)
            await client.replay(kept)  # waits for the client instead of dropping
            if kept:
                client.pos = max(client.pos, kept[-1].seq)
            if complete:
                client.pos = max(client.pos, target)


class _HubHost(Protocol):
    """What the /ws handler needs of the extension app (``TaskFlowApp``)."""

    @property
    def hub(self) -> EventHub: ...


# The filters of /ws; unknown, repeated or bad ones are 400 ``invalid_query``.
WS_QUERY: dict[str, Checker] = {"execution": nonempty, "workflow": nonempty, "since": seq_value}


class EventsWebSocket(
    ErrorMixin, ExtensionHandlerMixin, WebSocketMixin, WebSocketHandler, JupyterHandler
):
    """``WS /ws[?execution=ID][&workflow=ID][&since=SEQ]``.

    Authenticated with ``@ws_authenticated`` (403, no redirect), authorized for ``read``
    on the ``taskflow`` resource; the Origin check is Jupyter's (``WebSocketMixin``).
    """

    auth_resource = AUTH_RESOURCE
    client: Client | None = None

    def set_default_headers(self) -> None:
        """JupyterHandler's page headers (CSP, ...) mean nothing on a WebSocket upgrade."""

    @property
    def hub(self) -> EventHub:
        return cast(_HubHost, self.extensionapp).hub

    @property
    def max_message_size(self) -> int:
        return 64 * 1024

    async def pre_get(self) -> None:
        user = self.current_user
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(
                403, f"User is not authorized to read on resource: {AUTH_RESOURCE}."
            )
        # (no cache buster here: JupyterLab adds it to REST GETs, never to a WebSocket)
        self.filters = parse_query(self.request.query_arguments, WS_QUERY, cache_buster=False)
        await self._check_since(self.filters.get("since"))
        if self.request.headers.get("Upgrade", "").lower() != "websocket":
            raise InvalidInput(
                "/ws is a WebSocket: send an Upgrade: websocket request",
                [Problem("Upgrade", "upgrade_required", "the request is not a WebSocket upgrade")],
                code="upgrade_required",
            )

    async def _check_since(self, since: int | None) -> None:
        """A ``since`` past the last stored event would wait, silently, for events that
        may never come (a client of another database, a seq from a typo): 400."""
        if since is None:
            return
        last = await self.hub.run(self.hub.store.last_seq)
        if since > last:
            detail = (
                f"{since} is beyond the last event (seq {last}); "
                f"reconnect with since={last} or less, or without since"
            )
            raise InvalidInput(
                "Invalid query:", [Problem("since", "out_of_range", detail)], code="invalid_query"
            )

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        res = super().get(*args, **kwargs)
        if res is not None:
            await res

    def get_compression_options(self) -> None:
        """No permessage-deflate: a frame is then the same bytes for every client, so the
        hub encodes each event once (``write_frames``)."""
        return None

    def write_frames(self, frames: bytes) -> Awaitable[None]:
        """Many encoded frames in one write to the stream, the future of its flush.

        Tornado's ``write_message`` costs a frame, a write and a ``Task`` per message per
        client, which fanning thousands of events out to hundreds of clients cannot pay.
        """
        connection = self.ws_connection
        if connection is None or connection.is_closing() or connection.stream is None:
            raise WebSocketClosedError()
        return connection.stream.write(frames)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)  # WebSocketMixin: keep-alive pings
        self.client = Client(
            self.write_message,
            self.close,
            execution=self.filters.get("execution"),
            workflow=self.filters.get("workflow"),
            queue_size=self.hub.queue_size,
            write_frames=self.write_frames,
        )
        self.hub.attach(self.client, self.filters.get("since"))

    def on_message(self, message: str | bytes) -> None:
        """The stream takes no messages; they are ignored."""

    def on_close(self) -> None:
        if self.ping_callback is not None:
            self.ping_callback.stop()
        if self.client is not None:
            self.hub.detach(self.client)
