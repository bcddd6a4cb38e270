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

import os
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence

import httpx

from .lean_connection import Connection, Connector, Pool, abandoned, tcp_connect

_DEFAULT_PORTS = {"http": 80, "https": 443}


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


class _Body(httpx.AsyncByteStream):
    def __init__(self, pool: Pool, conn: Connection, read_timeout: float | None, request: httpx.Request):
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
            abandoned(self._pool, self._conn)

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


def _extra_lines(extra: Sequence[tuple[str, str]], request: httpx.Request) -> bytes:
    """``name: value`` lines for headers added to a shared head; ``LocalProtocolError`` for a CR,
    LF or NUL (see ``request_head``) or a character outside Latin-1."""
    try:
        lines = b"".join(b"%s: %s\r\n" % (name.encode("ascii"), value.encode("latin-1")) for name, value in extra)
    except UnicodeEncodeError:
        raise httpx.LocalProtocolError("refusing to send a header that is not Latin-1", request=request) from None
    if lines.count(b"\n") != len(extra) or lines.count(b"\r") != len(extra) or b"\0" in lines:
        raise httpx.LocalProtocolError("refusing to send a CR, LF or NUL in a header", request=request)
    return lines


MAX_HEADS = 4096  # request heads kept by send_bytes (one per provider key and endpoint in use)


class _Head:
    """A checked request line and headers without ``Content-Length`` and the closing blank line."""

    __slots__ = ("headers", "pool", "prefix", "request", "has_length")

    def __init__(self, headers: Mapping[str, str], pool: Pool, prefix: bytes, request: httpx.Request,
                 has_length: bool):
        self.headers, self.pool, self.prefix, self.request = headers, pool, prefix, request
        self.has_length = has_length  # the headers give a Content-Length: none is added


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, limit_per_origin: int = 1024, keepalive_s: float = 30.0, verify: bool = True,
                 connect: Connector = tcp_connect):
        """``connect`` opens connections (the network by default; tests pass one that scripts bytes)."""
        self._connect = connect
        self._pools: dict[tuple[str, str, int], Pool] = {}
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

    def _pool(self, url: httpx.URL) -> Pool:
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        port = url.port or _DEFAULT_PORTS[scheme]
        key = (scheme, url.host, port)
        pool = self._pools.get(key)
        if pool is None:
            tls = self._tls_context() if scheme == "https" else None
            pool = self._pools[key] = Pool(url.host, port, tls, self._limit, self._keepalive, self._connect)
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
                         timeouts: Mapping[str, float | None],
                         extra: Sequence[tuple[str, str]] | None = None) -> httpx.Response:
        """``handle_async_request`` without an ``httpx.Request`` per call (a share of every request's CPU): the request
        line and headers are checked and joined once per (method, URL, headers object: the
        adapters share one per key) and kept with a request that stands for them in responses
        and errors (its body is not kept); each call adds only ``Content-Length`` and the body.
        ``extra``: headers of this call alone (a trace context), written after the shared ones
        and checked as they are, so the shared head stays cached."""
        head = self._heads.get((method, url, id(headers)))
        if head is None or head.headers is not headers:
            head = self._head(method, url, headers)
        prefix = head.prefix if extra is None else head.prefix + _extra_lines(extra, head.request)
        if sends_length(head.has_length, method, content):
            data = prefix + (b"content-length: %d\r\n\r\n" % len(content)) + content
        else:
            data = prefix + b"\r\n" + content
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

    async def _exchange(self, pool: Pool, data: bytes, request: httpx.Request,
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
