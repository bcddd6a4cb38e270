"""The lean transport's connections: one asyncio protocol per connection reading the response with
the httptools parser (heads capped at ``MAX_HEAD_BYTES``, bodies with flow control between
``LOW_WATER`` and ``HIGH_WATER``), connect and read timeouts, and a keep-alive pool per origin.
``lean.py`` builds requests on them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import cast

import httptools
import httpx

MAX_HEAD_BYTES = 64 << 10  # a response whose status line and headers pass this is refused
HAPPY_EYEBALLS_DELAY_S = 0.25  # dual-stack hosts: the next address family starts after this (RFC 8305)
# Pause reading from the upstream when this much body is unread (resume below LOW_WATER). With
# one socket read on top (256 KiB at most) it bounds what a relay that falls behind is handed at
# once, and so each send a slow client holds in the server's queue: a stream's memory is these
# buffers, whatever the answer's size.
HIGH_WATER = 1 << 16
LOW_WATER = 1 << 14
STALE_CLOSE_WINDOW_S = 0.05  # a reused connection lost this soon after the write was stale


log = logging.getLogger("gateway.upstream")


def expire(future: asyncio.Future[None], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class Connection(asyncio.Protocol):
    """One upstream connection; carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.write_blocked = False
        self._parser = httptools.HttpResponseParser(self)
        self._paused = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None  # the body's read timeout (``body_waiter``)
        self._reset()

    def _reset(self) -> None:
        if self._paused and self.transport is not None:
            self.transport.resume_reading()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.received_any = False
        self._headers_done = False
        self._informational = False
        self._keep_alive = False
        self.sent_at = 0.0
        self.lost_at = 0.0
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        self._head_bytes = self._header_bytes = 0
        self._body_deadline = 0.0  # 0: no body read waiting on the timer
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream connection's transport is an asyncio.Transport; the Protocol API types the base class
        self.transport = cast(asyncio.Transport, transport)
        self.write_blocked = False
        self.transport.set_write_buffer_limits(high=0)  # pause_writing whenever bytes wait: the write timeout

    def pause_writing(self) -> None:
        self.write_blocked = True

    def resume_writing(self) -> None:
        self.write_blocked = False
        self._wake()

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade from upstream"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response from upstream: {exc}"))
        if not self._headers_done:  # a head that never ends, in many reads
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._head_too_large()

    def _head_too_large(self) -> None:
        self._fail(httpx.RemoteProtocolError(f"the upstream's response headers passed {MAX_HEAD_BYTES} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost_at = time.monotonic()
        if self._headers_done and not self.complete and not self._length_known():
            self.complete = True  # a body delimited by the end of the connection
            self._wake()
        elif not self.complete:
            self._fail(httpx.ReadError("the upstream closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._header_bytes += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        if self._header_bytes > MAX_HEAD_BYTES:  # a large head that came in one read
            self._head_too_large()
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: not the answer; wait for the final one
            self.headers = []
            self._informational = True
            return
        self.status = status
        self._keep_alive = self._parser.should_keep_alive()  # httptools forgets it once the message ends
        self._headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        self.complete = True
        self._wake()

    # the request side
    def _length_known(self) -> bool:
        for name, value in self.headers:
            lower = name.lower()
            if lower == b"content-length" or (lower == b"transfer-encoding" and b"chunked" in value.lower()):
                return True
        return False

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.abort()

    async def _wait(self, timeout: float | None, what: str,
                    error: type[httpx.TimeoutException] = httpx.ReadTimeout) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        handle = None
        if timeout:
            expired = error(f"{what} within {timeout:g} s")
            handle = loop.call_later(timeout, expire, waiter, expired)
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    async def send(self, data: bytes, read_timeout: float | None, write_timeout: float | None) -> None:
        """Write the request and wait for the response headers: the write timeout runs while the
        request is not all written, the read timeout after that."""
        self._reset()
        assert self.transport is not None
        self.sent_at = time.monotonic()
        self.transport.write(data)
        while not self._headers_done:
            if self._error is not None:
                raise self._error
            if self.write_blocked:
                await self._wait(write_timeout, "the upstream took no more of the request", httpx.WriteTimeout)
            else:
                await self._wait(read_timeout, "no response from the upstream")

    def take(self) -> bytes:
        """All the body received and not yet taken, as one chunk (``_chunks`` is not empty).

        Chunks pile up only while the reader lags behind (a busy loop): handing them over at
        once lets it relay them in one send instead of one per upstream read, adding no wait.
        At most ``HIGH_WATER`` and one read are buffered (reading pauses past it)."""
        chunks = self._chunks
        chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered -= len(chunk)
        if self._paused and self._buffered < LOW_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def body_waiter(self, read_timeout: float | None) -> asyncio.Future[None]:
        """A future done when more of the body (or its end, or an error) is in; ``ReadTimeout`` after
        ``read_timeout`` s without. One timer serves the whole body, moved lazily (``_body_due``),
        instead of a timer set and cancelled per chunk."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        if read_timeout:
            self._body_deadline = due = loop.time() + read_timeout
            if self._timer is None:
                self._timer = loop.call_at(due, self._body_due, read_timeout)
        return waiter

    def _body_due(self, read_timeout: float) -> None:
        self._timer = None
        waiter = self._waiter
        if not self._body_deadline or waiter is None or waiter.done():
            return  # nothing waits: the next wait sets a timer again
        assert self._loop is not None
        if self._loop.time() >= self._body_deadline - 0.001:
            waiter.set_exception(httpx.ReadTimeout(f"no data from the upstream within {read_timeout:g} s"))
        else:
            self._timer = self._loop.call_at(self._body_deadline, self._body_due, read_timeout)

    def body_done(self) -> None:
        self._body_deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def reusable(self) -> bool:
        return (self.complete and not self.closed and self._error is None and self._keep_alive
                and not self._paused and not self._chunks)

    @property
    def dropped_at_once(self) -> bool:
        """Closed by the upstream right as the request went out, before any answer: an idle
        keep-alive connection it had already given up on, so the request was never processed."""
        return (not self.received_any and self.lost_at > 0.0
                and self.lost_at - self.sent_at < STALE_CLOSE_WINDOW_S)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


Connector = Callable[[Callable[[], "Connection"], str, int, "ssl.SSLContext | None"], Awaitable["Connection"]]


async def tcp_connect(factory: Callable[[], Connection], host: str, port: int,
                      tls: ssl.SSLContext | None) -> Connection:
    """The network: every address the host resolves to, both families raced (happy eyeballs)."""
    loop = asyncio.get_running_loop()
    hostname = host if tls is not None else None
    try:
        _, conn = await loop.create_connection(factory, host, port, ssl=tls, server_hostname=hostname,
                                               happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S, interleave=1)
    except TypeError:  # a loop without happy eyeballs (uvloop) still tries each resolved address in turn
        _, conn = await loop.create_connection(factory, host, port, ssl=tls, server_hostname=hostname)
    return conn


class Pool:
    """Keep-alive connections to one origin, at most ``limit`` open at once."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, limit: int, keepalive_s: float,
                 connect: Connector = tcp_connect):
        self.host, self.port, self.tls = host, port, tls
        self._connect_to = connect
        self.keepalive_s = keepalive_s
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(limit)

    async def acquire(self, connect_timeout: float | None) -> tuple[Connection, bool]:
        try:
            if self.slots.locked():  # every slot busy: wait, but not forever
                await asyncio.wait_for(self.slots.acquire(), connect_timeout)
            else:
                await self.slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(f"all {self.host}:{self.port} connections stayed busy") from None
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            transport = conn.transport
            if (not conn.closed and now - conn.idle_since < self.keepalive_s
                    and transport is not None and not transport.is_closing()):
                return conn, True
            conn.abort()
        try:
            return await self._connect(connect_timeout), False
        except BaseException:
            self.slots.release()
            raise

    async def _connect(self, timeout: float | None) -> Connection:
        try:
            conn = await asyncio.wait_for(self._connect_to(Connection, self.host, self.port, self.tls), timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return conn

    def release(self, conn: Connection) -> None:
        if conn.reusable:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.abort()
        self.slots.release()

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()


def abandoned(pool: Pool, conn: Connection) -> None:
    """A response body garbage-collected unclosed: give its pool slot back (aborting the connection)."""
    log.warning("an upstream response from %s:%s was dropped without being closed; its connection was "
                "aborted and its pool slot released", pool.host, pool.port)
    with contextlib.suppress(RuntimeError):  # the event loop may be gone already
        pool.release(conn)


