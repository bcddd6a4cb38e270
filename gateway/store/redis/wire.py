"""One multiplexed connection to Redis for the request path (the Redis store's hot calls).

Every caller writes its command on the same socket at once and waits for its own reply: Redis
answers in order, so replies are matched first in, first out. The commands of one event-loop
turn go out in one write. No pool to check a connection out of, no lock, no round trip to wait
behind another request's: one future per command.

A lost connection fails the commands waiting on it (``ConnectionError``) and the next command
connects again; one that waited longer than ``timeout_s`` fails with ``TimeoutError`` and takes
the connection down with it (its late reply would be matched to the wrong command otherwise).
Nothing is sent twice: a command is only written to a connection that is up.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio.connection import parse_url


class ReplyError(Exception):
    """An error reply from Redis (``-ERR ...``, ``-NOSCRIPT ...``)."""


class ProtocolError(ConnectionError):
    """Redis sent something that is not RESP: the connection is dropped."""


@dataclass(frozen=True)
class Script:
    """A Lua script, run with EVALSHA (EVAL, which also caches it, after a NOSCRIPT)."""

    body: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode()).hexdigest())


def encode(args: tuple[Any, ...]) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


class _Incomplete(Exception):
    pass


_INCOMPLETE = _Incomplete()


class Replies:
    """An incremental RESP2 reader: ``feed`` bytes, take the complete replies. Bulk strings come
    back as ``str``, errors as ``ReplyError`` values (raised by the caller that waited for them)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out = []
        while self._pos < len(self._buf):
            start = self._pos
            try:
                out.append(self._one())
            except _Incomplete:
                self._pos = start
                break
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        return out

    def _line(self) -> bytes:
        end = self._buf.find(b"\r\n", self._pos)
        if end < 0:
            raise _INCOMPLETE
        line = bytes(self._buf[self._pos:end])
        self._pos = end + 2
        return line

    def _one(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            end = self._pos + size
            if len(self._buf) < end + 2:
                raise _INCOMPLETE
            value = self._buf[self._pos:end].decode()
            self._pos = end + 2
            return value
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._one() for _ in range(count)]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ReplyError(rest.decode(errors="replace"))
        raise ProtocolError(f"unexpected reply type {kind!r}")


class _Connection(asyncio.Protocol):
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._replies = Replies()
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._out: list[bytes] = []
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._replies.feed(data)
        except (ProtocolError, ValueError) as exc:
            self.abort(exc if isinstance(exc, ProtocolError) else ProtocolError(str(exc)))
            return
        waiting = self._waiting
        for reply in replies:
            if not waiting:
                self.abort(ProtocolError("a reply nobody asked for"))
                return
            future = waiting.popleft()[0]
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost ({type(exc).__name__ if exc else 'closed by the server'})"))

    # sending
    def send(self, payload: bytes) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self._waiting.append((future, self.loop.time() + self.timeout_s))
        if not self._out:
            self.loop.call_soon(self._flush)
        self._out.append(payload)
        if self._timer is None:
            self._timer = self.loop.call_at(self._waiting[0][1], self._check_timeout)
        return future

    def _flush(self) -> None:
        if self._out and not self.closed and self.transport is not None:
            self.transport.write(b"".join(self._out))
        self._out.clear()

    def _check_timeout(self) -> None:
        self._timer = None
        if not self._waiting or self.closed:
            return
        due = self._waiting[0][1]
        if due <= self.loop.time():
            self.abort(TimeoutError(f"no reply within {self.timeout_s:g}s"))
        else:
            self._timer = self.loop.call_at(due, self._check_timeout)

    def abort(self, exc: Exception) -> None:
        self._fail(exc)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        self._out.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            future = self._waiting.popleft()[0]
            if not future.done():
                future.set_exception(exc)


class RedisWire:
    """Commands on one shared connection, made on first use and again after it is lost."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        params = parse_url(url)
        self.timeout_s = timeout_s
        self._host = str(params.get("host") or "localhost")
        self._port = int(params.get("port") or 6379)
        self._path: str | None = params.get("path")
        self._hello: list[tuple[Any, ...]] = []
        if params.get("password") is not None:
            user = params.get("username")
            self._hello.append(("AUTH", user, params["password"]) if user else ("AUTH", params["password"]))
        if params.get("db"):
            self._hello.append(("SELECT", int(params["db"])))
        self._ssl: ssl.SSLContext | None = None
        if url.startswith("rediss://"):
            self._ssl = ssl.create_default_context()
            if str(params.get("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._conn: _Connection | None = None
        self._lock: asyncio.Lock | None = None

    async def call(self, *args: Any) -> Any:
        """Run one command; its reply. Raises ReplyError, ConnectionError, TimeoutError or OSError."""
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connected()
        reply = await conn.send(encode(args))
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    async def evalsha(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.call("EVAL", script.body, len(keys), *keys, *args)

    async def _connected(self) -> _Connection:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = await asyncio.wait_for(self._connect(), self.timeout_s)
            return self._conn

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        conn: _Connection
        if self._path:
            _, conn = await loop.create_unix_connection(lambda: _Connection(self.timeout_s), self._path)
        else:
            _, conn = await loop.create_connection(lambda: _Connection(self.timeout_s), self._host, self._port,
                                                   ssl=self._ssl)
        try:
            for reply in await asyncio.gather(*(conn.send(encode(cmd)) for cmd in self._hello)):
                if isinstance(reply, ReplyError):
                    raise reply
        except BaseException:
            conn.abort(ConnectionError("handshake failed"))
            raise
        return conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn._fail(ConnectionError("closed"))
            if conn.transport is not None:
                conn.transport.close()
