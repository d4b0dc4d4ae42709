"""``/ws``: the stream of committed events (SPEC §4).

Design
------
The store is the single source of truth: every event is committed with its global,
gap-free ``seq`` before anyone sees it, by this server or by any kernel sharing the file.
So the stream is read from the store, never from memory:

* One ``EventHub`` per server holds ``last``, the highest ``seq`` it has fanned out. It
  wakes when the in-process ``EventBus`` publishes (bounced onto the loop with
  ``call_soon_threadsafe``, coalesced) and every ``poll_interval`` seconds (to see
  commits of other processes), reads the stored events after ``last`` in a worker thread
  and hands their JSON text (encoded once for every client) to each live client, in
  ``seq`` order.
* A client has a cursor ``pos``: the last ``seq`` it has been given or has skipped. A
  new client first catches up from the store (``since=SEQ``, or the store's last seq
  when absent), in pages, until ``pos`` reaches ``hub.last``; it joins the live stream
  at that moment, with no ``await`` between the check and the switch, so no event falls
  between replay and live and none is sent twice (the live path also skips ``seq <= pos``).
* Each client has a bounded queue drained by its own writer task, which waits for the
  socket to flush. A client whose queue overflows is closed with code 1013 ("try again
  later"); it reconnects with ``since`` set to the last ``seq`` it saw and misses nothing.
  So a slow or dead client costs the others one ``put_nowait`` per event, and the engine
  nothing at all: it never waits for the hub.

Messages from the client are not part of the protocol; they are ignored (frames over
``max_message_size`` close the connection with 1009, as Tornado does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any, Protocol, cast

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import iostream, web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..errors import InvalidInput, Problem
from ..serialize import event_json
from .base import AUTH_RESOURCE, Checker, ErrorMixin, nonempty, parse_query, seq_value

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..store import Store

__all__ = ["EventHub", "EventsWebSocket"]

log = logging.getLogger(__name__)

Row = tuple[int, str, str, str]  # seq, JSON text, execution id, workflow id
SLOW_CLIENT = 1013
GOING_AWAY = 1001


class Client:
    """One subscriber: filters, cursor, bounded queue, writer task."""

    def __init__(
        self,
        send: Callable[[str], Any],
        close: Callable[[int, str], None],
        *,
        execution: str | None,
        workflow: str | None,
        queue_size: int,
    ) -> None:
        self.send, self.close = send, close
        self.execution, self.workflow = execution, workflow
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.pos = 0
        self.live = False
        self.closed = False
        self.tasks: list[asyncio.Task[None]] = []

    def wants(self, execution: str, workflow: str) -> bool:
        return (self.execution is None or execution == self.execution) and (
            self.workflow is None or workflow == self.workflow
        )

    async def write_loop(self) -> None:
        """Hand everything queued to the socket at once, then wait for it to flush."""
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            writes = []
            try:
                for text in batch:
                    writes.append(self.send(text))
            except (WebSocketClosedError, iostream.StreamClosedError):
                self.closed = True
            outcomes = await asyncio.gather(*writes, return_exceptions=True)
            if self.closed or any(isinstance(o, BaseException) for o in outcomes):
                self.closed = True
                return


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
    ) -> None:
        self.store, self.run = store, run
        self.poll_interval, self.page_size, self.queue_size = poll_interval, page_size, queue_size
        self.last = 0
        self.clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._pending = False
        self._dirty = False  # woken while draining: drain again at once
        self._stopping = False

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

    def notify(self, _events: Any = None) -> None:
        """EventBus subscriber: runs on the engine's thread; only schedules a wake-up."""
        if self._pending or self._loop is None:
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
        if not self._dirty:
            self._wake = wake = self._loop.create_future()
            timer = self._loop.call_later(self.poll_interval, self._woken)
            try:
                await wake
            finally:
                timer.cancel()
        self._dirty = False

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
        while not self._stopping:
            await self._sleep()
            try:
                await self._drain()
            except Exception:
                log.exception("event hub: reading events failed; retrying")
                await asyncio.sleep(self.poll_interval)

    async def _drain(self) -> None:
        while True:
            if not self.clients:
                last = await self.run(self.store.last_seq)
                if not self.clients:  # else a client joined (maybe live) meanwhile: fan out
                    self.last = max(self.last, last)
                    return
                continue
            rows = await self.run(self.fetch, self.last, None, None, self.page_size)
            if not rows:
                return
            # Fan out in chunks no larger than half a client queue, yielding between them so
            # writers can move their queues to their sockets: only a client whose socket
            # does not drain overflows, never one that merely met a burst.
            smallest = min((c.queue.maxsize for c in self.clients), default=self.queue_size)
            step = max(1, min(self.page_size, smallest // 2))
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                self._fan_out(chunk)
                self.last = chunk[-1][0]  # a client joining live now starts after this
                if start + step < len(rows):
                    await asyncio.sleep(0)
            if len(rows) < self.page_size:
                return

    def fetch(
        self, after: int, execution: str | None, workflow: str | None, limit: int
    ) -> list[Row]:
        """Stored events after ``after`` with their routing keys (worker thread)."""
        rows = []
        for event in self.store.events(after, execution=execution, workflow=workflow, limit=limit):
            assert event.seq is not None  # the store numbers every event it has committed
            rows.append(
                (event.seq, json.dumps(event_json(event)), event.execution_id, event.workflow)
            )
        return rows

    def _fan_out(self, rows: list[Row]) -> None:
        for client in list(self.clients):
            if not client.live:
                continue
            for seq, text, execution, workflow in rows:
                if seq <= client.pos:
                    continue
                client.pos = seq
                if not client.wants(execution, workflow):
                    continue
                try:
                    client.queue.put_nowait(text)
                except asyncio.QueueFull:
                    log.warning(
                        "closing a /ws client that fell %d events behind", client.queue.maxsize
                    )
                    client.close(SLOW_CLIENT, "too slow; reconnect with since=<last seq received>")
                    self.detach(client)
                    break

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
            for seq, text, _, _ in rows:
                if seq > target:
                    complete = True
                    break
                await client.queue.put(text)  # replay waits for the client instead of dropping
                client.pos = seq
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

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)  # WebSocketMixin: keep-alive pings
        self.client = Client(
            self.write_message,
            self.close,
            execution=self.filters.get("execution"),
            workflow=self.filters.get("workflow"),
            queue_size=self.hub.queue_size,
        )
        self.hub.attach(self.client, self.filters.get("since"))

    def on_message(self, message: str | bytes) -> None:
        """The stream takes no messages; they are ignored."""

    def on_close(self) -> None:
        if self.ping_callback is not None:
            self.ping_callback.stop()
        if self.client is not None:
            self.hub.detach(self.client)
