"""A lean HTTP/1.1 client transport for httpx, the default one (``GATEWAY_HTTP_TRANSPORT=lean``).

asyncio protocols, the httptools parser, keep-alive pools per origin, connect, read and write
timeouts, streaming bodies with flow control, aborting a request by closing its connection
(also while it waits for the response headers). ``scripts/bench`` measured it at about half
the CPU per request of ``httpx-aiohttp`` and ~17% below pyreqwest (choice.py, docs/operations.md).
Proxies and HTTP/2 are not supported (a proxy in the environment replaces it, choice.py).
Header names and values with CR, LF or NUL are refused (``request_head``), response heads are
capped at ``MAX_HEAD_BYTES``, dual-stack hosts are raced (happy eyeballs), every transport
error carries its request, and a body dropped unclosed gives its pool slot back when collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import cast

import httptools
import httpx

MAX_HEAD_BYTES = 64 << 10  # a response whose status line and headers pass this is refused
HAPPY_EYEBALLS_DELAY_S = 0.25  # dual-stack hosts: the next address family starts after this (RFC 8305)
HIGH_WATER = 1 << 20  # pause reading from the upstream when this much body is unread
LOW_WATER = 1 << 18
STALE_CLOSE_WINDOW_S = 0.05  # a reused connection lost this soon after the write was stale
_DEFAULT_PORTS = {"http": 80, "https": 443}
log = logging.getLogger("gateway.upstream")


def _carry(exc: httpx.TransportError, request: httpx.Request) -> None:
    """Give ``exc`` its request unless it has one: every transport error names its request."""
    if getattr(exc, "_request", None) is None:
        exc.request = request


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def with_host(headers: Mapping[str, str], url: httpx.URL) -> httpx.Headers:
    """A copy of ``headers`` with the ``Host`` header httpx's request preparation would add."""
    out = httpx.Headers(headers)
    if "host" not in out:
        out["Host"] = url.netloc.decode("ascii")
    return out


def sends_length(has_length: bool, method: str, content: bytes) -> bool:
    """Whether a ``Content-Length`` must be added, as httpx adds it: none given, and a body or a
    method that carries one."""
    return not has_length and (bool(content) or method in BODY_METHODS)


def _expire(future: asyncio.Future[None], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class _Connection(asyncio.Protocol):
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
            handle = loop.call_later(timeout, _expire, waiter, expired)
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


Connector = Callable[[Callable[[], "_Connection"], str, int, "ssl.SSLContext | None"], Awaitable["_Connection"]]


async def tcp_connect(factory: Callable[[], _Connection], host: str, port: int,
                      tls: ssl.SSLContext | None) -> _Connection:
    """The network: every address the host resolves to, both families raced (happy eyeballs)."""
    loop = asyncio.get_running_loop()
    hostname = host if tls is not None else None
    try:
        _, conn = await loop.create_connection(factory, host, port, ssl=tls, server_hostname=hostname,
                                               happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S, interleave=1)
    except TypeError:  # a loop without happy eyeballs (uvloop) still tries each resolved address in turn
        _, conn = await loop.create_connection(factory, host, port, ssl=tls, server_hostname=hostname)
    return conn


class _Pool:
    """Keep-alive connections to one origin, at most ``limit`` open at once."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, limit: int, keepalive_s: float,
                 connect: Connector = tcp_connect):
        self.host, self.port, self.tls = host, port, tls
        self._connect_to = connect
        self.keepalive_s = keepalive_s
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(limit)

    async def acquire(self, connect_timeout: float | None) -> tuple[_Connection, bool]:
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

    async def _connect(self, timeout: float | None) -> _Connection:
        try:
            conn = await asyncio.wait_for(self._connect_to(_Connection, self.host, self.port, self.tls), timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {self.host}:{self.port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return conn

    def release(self, conn: _Connection) -> None:
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


def _abandoned(pool: _Pool, conn: _Connection) -> None:
    """A response body garbage-collected unclosed: give its pool slot back (aborting the connection)."""
    log.warning("an upstream response from %s:%s was dropped without being closed; its connection was "
                "aborted and its pool slot released", pool.host, pool.port)
    with contextlib.suppress(RuntimeError):  # the event loop may be gone already
        pool.release(conn)


class _Body(httpx.AsyncByteStream):
    def __init__(self, pool: _Pool, conn: _Connection, read_timeout: float | None, request: httpx.Request):
        self._pool, self._conn, self._timeout, self._request = pool, conn, read_timeout, request
        self._released = False  # else ``__del__`` gives the slot back (a weakref.finalize cost ~4 µs an answer)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self  # one await per chunk straight on the connection, no generator layers (CPU per streamed event)

    async def __anext__(self) -> bytes:
        conn = self._conn
        try:
            while True:
                if conn._chunks:
                    return conn.take()
                if conn.complete:
                    self._release()
                    raise StopAsyncIteration
                if conn._error is not None:
                    raise conn._error
                await conn.body_waiter(self._timeout)
        except httpx.TransportError as exc:
            _carry(exc, self._request)
            raise

    def _release(self) -> None:
        if not self._released:  # once only, and no longer when collected
            self._released = True
            self._conn.body_done()
            self._pool.release(self._conn)  # aborts the connection unless the answer was read to the end

    def __del__(self) -> None:
        if not self._released:  # dropped unclosed
            self._released = True
            _abandoned(self._pool, self._conn)

    async def aclose(self) -> None:
        self._release()


def request_head(request: httpx.Request) -> bytes:
    """The request line and headers; ``LocalProtocolError`` when a name or value holds CR, LF or NUL.

    httpx.Headers accepts them, and written raw they would end the header early and smuggle a
    header (or a whole request) to the upstream. The check counts line ends over the joined head
    (one per line, each a CRLF), which costs far less than scanning every header on its own.
    """
    lines = [request.method.encode(), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    head = b"".join(lines)
    ends = len(request.headers.raw) + 2
    if head.count(b"\n") != ends or head.count(b"\r") != ends or b"\0" in head:
        bad = next((name.decode("latin-1") for name, value in request.headers.raw
                    if any(c in name + value for c in (b"\r", b"\n", b"\0"))), "the request line")
        raise httpx.LocalProtocolError(f"refusing to send a CR, LF or NUL in header {bad[:64]!r}", request=request)
    return head


MAX_HEADS = 4096  # request heads kept by send_bytes (one per provider key and endpoint in use)


class _Head:
    """A checked request line and headers without ``Content-Length`` and the closing blank line."""

    __slots__ = ("headers", "pool", "prefix", "request", "has_length")

    def __init__(self, headers: Mapping[str, str], pool: _Pool, prefix: bytes, request: httpx.Request,
                 has_length: bool):
        self.headers, self.pool, self.prefix, self.request = headers, pool, prefix, request
        self.has_length = has_length  # the headers give a Content-Length: none is added


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, limit_per_origin: int = 1024, keepalive_s: float = 30.0, verify: bool = True,
                 connect: Connector = tcp_connect):
        """``connect`` opens connections (the network by default; tests pass one that scripts bytes)."""
        self._connect = connect
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._limit = limit_per_origin
        self._keepalive = keepalive_s
        self._verify = verify
        self._tls: ssl.SSLContext | None = None
        self._heads: dict[tuple[str, str, int], _Head] = {}  # see send_bytes

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            cafile = os.environ.get("SSL_CERT_FILE")  # a private CA, as OpenSSL and httpx honour it
            if not cafile:
                try:
                    import certifi

                    cafile = certifi.where()
                except ImportError:
                    cafile = None
            context = ssl.create_default_context(cafile=cafile)
            if not self._verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls = context
        return self._tls

    def _pool(self, url: httpx.URL) -> _Pool:
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        port = url.port or _DEFAULT_PORTS[scheme]
        key = (scheme, url.host, port)
        pool = self._pools.get(key)
        if pool is None:
            tls = self._tls_context() if scheme == "https" else None
            pool = self._pools[key] = _Pool(url.host, port, tls, self._limit, self._keepalive, self._connect)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        try:
            return await self._exchange(self._pool(request.url), request_head(request) + request.content,
                                        request, timeouts)
        except httpx.TransportError as exc:
            _carry(exc, request)
            raise

    async def send_bytes(self, method: str, url: str, headers: Mapping[str, str], content: bytes,
                         timeouts: Mapping[str, float | None]) -> httpx.Response:
        """``handle_async_request`` without an ``httpx.Request`` per call (a share of every request's CPU): the request
        line and headers are checked and joined once per (method, URL, headers object: the
        adapters share one per key) and kept with a request that stands for them in responses
        and errors (its body is not kept); each call adds only ``Content-Length`` and the body."""
        head = self._heads.get((method, url, id(headers)))
        if head is None or head.headers is not headers:
            head = self._head(method, url, headers)
        if sends_length(head.has_length, method, content):
            data = head.prefix + (b"content-length: %d\r\n\r\n" % len(content)) + content
        else:
            data = head.prefix + b"\r\n" + content
        try:
            return await self._exchange(head.pool, data, head.request, timeouts)
        except httpx.TransportError as exc:
            _carry(exc, head.request)
            raise

    def _head(self, method: str, raw_url: str, headers: Mapping[str, str]) -> _Head:
        if len(self._heads) >= MAX_HEADS:
            self._heads.clear()
        url = httpx.URL(raw_url)
        sent = with_host(headers, url)
        request = httpx.Request(method, url, headers=sent, stream=httpx.ByteStream(b""))  # adds no header
        try:
            head = _Head(headers, self._pool(url), request_head(request)[:-2], request, "content-length" in sent)
        except httpx.TransportError as exc:  # a scheme this transport does not speak, a CR/LF in a header
            _carry(exc, request)
            raise
        self._heads[(method, raw_url, id(headers))] = head
        return head

    async def _exchange(self, pool: _Pool, data: bytes, request: httpx.Request,
                        timeouts: Mapping[str, float | None]) -> httpx.Response:
        read_timeout, connect_timeout = timeouts.get("read"), timeouts.get("connect")
        write_timeout = timeouts.get("write")
        for attempt in (1, 2):
            conn, reused = await pool.acquire(connect_timeout)
            try:
                await conn.send(data, read_timeout, write_timeout)
                break
            except httpx.ReadError:
                pool.release(conn)
                # only a kept-alive connection the upstream dropped the moment we wrote is retried:
                # a request that may have been processed is never sent twice
                if not (reused and attempt == 1 and conn.dropped_at_once):
                    raise
            except BaseException:
                conn.abort()
                pool.release(conn)
                raise
        return httpx.Response(conn.status, headers=conn.headers, stream=_Body(pool, conn, read_timeout, request),
                              request=request, extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        self._heads.clear()
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
