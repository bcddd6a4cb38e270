"""A lean HTTP/1.1 client transport for httpx: asyncio protocols, the httptools parser, keep-alive.

Measured on the 2-core development machine (README, scripts/bench), a request through
aiohttp costs several hundred microseconds of Python; this transport does the same work in a
fraction of that, which is most of the gateway's own overhead. It does exactly what a gateway
needs and no more: HTTP/1.1 over TCP or TLS, ``Content-Length``/chunked/EOF-delimited bodies,
keep-alive pools per origin, connect and read timeouts, streaming bodies with flow control,
and aborting a request by closing its connection. Proxies and HTTP/2 are not supported (use
``GATEWAY_HTTP_TRANSPORT=httpx`` for those).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections import deque
from typing import AsyncIterator

import httpx
import httptools

HIGH_WATER = 1 << 20  # pause reading from the upstream when this much body is unread
LOW_WATER = 1 << 18
STALE_CLOSE_WINDOW_S = 0.05  # a reused connection lost this soon after the write was stale
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _expire(future: asyncio.Future, error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class _Connection(asyncio.Protocol):
    """One upstream connection; carries one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._paused = False
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
        self._waiter: asyncio.Future | None = None
        self._error: Exception | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade from upstream"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response from upstream: {exc}"))

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

    def on_headers_complete(self) -> None:
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

    async def _wait(self, timeout: float | None, what: str) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        handle = loop.call_later(timeout, _expire, waiter, httpx.ReadTimeout(f"no {what} from the upstream "
                                                                             f"within {timeout:g} s")) if timeout else None
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    async def send(self, data: bytes, read_timeout: float | None) -> None:
        """Write the request and wait for the response headers."""
        self._reset()
        assert self.transport is not None
        self.sent_at = time.monotonic()
        self.transport.write(data)
        while not self._headers_done:
            if self._error is not None:
                raise self._error
            await self._wait(read_timeout, "response")

    async def body(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
                continue
            if self.complete:
                return
            if self._error is not None:
                raise self._error
            await self._wait(read_timeout, "data")

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


class _Pool:
    """Keep-alive connections to one origin, at most ``limit`` open at once."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, limit: int, keepalive_s: float):
        self.host, self.port, self.tls = host, port, tls
        self.keepalive_s = keepalive_s
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(limit)

    async def acquire(self, connect_timeout: float | None) -> tuple[_Connection, bool]:
        try:
            if self.slots.locked():  # every slot busy: wait, but not forever
                await asyncio.wait_for(self.slots.acquire(), connect_timeout)
            else:
                await self.slots.acquire()
        except asyncio.TimeoutError:
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
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                _Connection, self.host, self.port, ssl=self.tls,
                server_hostname=self.host if self.tls is not None else None), timeout)
        except asyncio.TimeoutError:
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


class _Body(httpx.AsyncByteStream):
    def __init__(self, pool: _Pool, conn: _Connection, read_timeout: float | None):
        self._pool, self._conn, self._timeout = pool, conn, read_timeout
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._conn.body(self._timeout):
            yield chunk
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._pool.release(self._conn)  # aborts the connection unless the answer was read to the end

    async def aclose(self) -> None:
        self._release()


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, limit_per_origin: int = 1024, keepalive_s: float = 30.0, verify: bool = True):
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._limit = limit_per_origin
        self._keepalive = keepalive_s
        self._verify = verify
        self._tls: ssl.SSLContext | None = None

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
            pool = self._pools[key] = _Pool(url.host, port, tls, self._limit, self._keepalive)
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        read_timeout, connect_timeout = timeouts.get("read"), timeouts.get("connect")
        pool = self._pool(request.url)
        lines = [request.method.encode(), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        data = b"".join(lines) + request.content
        for attempt in (1, 2):
            conn, reused = await pool.acquire(connect_timeout)
            try:
                await conn.send(data, read_timeout)
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
        return httpx.Response(conn.status, headers=conn.headers, stream=_Body(pool, conn, read_timeout),
                              request=request, extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
