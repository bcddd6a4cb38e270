"""``GET /requests/stream``: the live request log as Server-Sent Events.

One poller per process follows the store's feed of ledger rows (``Ledger.rows_after``: rows of
every worker and replica, as they are written, about every ``storage.ledger_flush_s``) while at
least one dashboard listens, and hands each row to every listener's bounded queue. A listener
that does not keep up loses rows rather than holding memory: they are counted
(``gateway_admin_stream_dropped_total``) and the listener gets an ``event: dropped`` with how
many before its next row. A comment every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

import falcon.asgi
import orjson
from prometheus_client import Counter

from ...server.runtime import Runtime
from ...store.base import StoreError
from ...store.values import LedgerRow
from ..common import DisconnectGuard
from .base import AdminResource, store_errors
from .views import row_view

log = logging.getLogger("gateway.admin")
DROPPED = Counter("gateway_admin_stream_dropped_total", "Live request log rows dropped for slow listeners")
KEEPALIVE_S = 15.0
QUEUE_ROWS = 1000  # per listener
POLL_S = 0.25
BATCH = 500


class Listener:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[LedgerRow] = asyncio.Queue(maxsize=size)
        self.dropped = 0  # rows lost since the last ``event: dropped``

    def offer(self, row: LedgerRow) -> None:
        try:
            self.queue.put_nowait(row)
        except asyncio.QueueFull:
            self.dropped += 1
            DROPPED.inc()


class FeedHub:
    """Follows the store's feed while anyone listens; fans rows out to the listeners."""

    def __init__(self, runtime: Runtime, poll_s: float = POLL_S, queue_rows: int = QUEUE_ROWS) -> None:
        self.runtime = runtime
        self.poll_s = poll_s
        self.queue_rows = queue_rows
        self.listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None
        self._cursor: str | None = None

    async def subscribe(self) -> Listener:
        listener = Listener(self.queue_rows)
        if self._task is None or self._task.done():
            self._cursor = await self.runtime.stores.ledger.ledger_cursor()  # rows from now on
            self._task = asyncio.get_running_loop().create_task(self._follow(), name="admin-request-feed")
        self.listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        if not self.listeners and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _follow(self) -> None:
        while True:
            try:
                rows, self._cursor = await self.runtime.stores.ledger.rows_after(self._cursor or "", BATCH)
            except StoreError as exc:
                log.warning("live request log: the store did not answer", extra={"error": str(exc)})
                rows = []
                await asyncio.sleep(1.0)
            for row in rows:
                for listener in list(self.listeners):
                    listener.offer(row)
            if len(rows) < BATCH:
                await asyncio.sleep(self.poll_s)


def _event(data: object, name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


async def events(listener: Listener, close: Callable[[], None],
                 keepalive_s: float = KEEPALIVE_S) -> AsyncGenerator[bytes, None]:
    """The SSE stream of one listener; ``close`` runs when it ends (the client left)."""
    try:
        yield b": live request log\n\n"
        while True:
            try:
                row = await asyncio.wait_for(listener.queue.get(), keepalive_s)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if listener.dropped:
                dropped, listener.dropped = listener.dropped, 0
                yield _event({"dropped": dropped}, "dropped")
            yield _event(row_view(row))
    finally:
        close()


class StreamResource(AdminResource):
    def __init__(self, runtime: Runtime, hub: FeedHub):
        super().__init__(runtime)
        self.hub = hub

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        async with store_errors():
            listener = await self.hub.subscribe()
        resp.content_type = "text/event-stream"
        resp.set_header("cache-control", "no-cache")
        resp.set_header("x-accel-buffering", "no")
        guard = DisconnectGuard(req)  # the client leaving cancels the stream at once

        def close() -> None:
            self.hub.unsubscribe(listener)
            guard.close()
        resp.stream = events(listener, close)
