"""What every role of the Redis store shares (``RedisLink``): the server's address, the key
prefix, and two connections to it.

The request path (windows, marks, spend, pins, the directory's lookups) runs on one multiplexed
connection (``wire.RedisWire``); the rest (client listings, the ledger, admin queries) goes
through redis-py, whose pipelines and stream commands it needs. Either way a lost or failing
server is ``StoreDown``, its message naming the server without its password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..base import StoreDown
from . import lua
from .wire import RedisWire, ReplyError, Script


def redis_url(addr: str) -> str:
    """``host:6379`` (the client-management document's form) or a ``redis://``/``rediss://`` URL."""
    return addr if "://" in addr else f"redis://{addr}"


def redacted(addr: str) -> str:
    """The address without its user and password, for messages and logs."""
    parts = urlsplit(redis_url(addr))
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class RedisLink:
    """One Redis server as the store's roles use it: key names, scripts, commands."""

    def __init__(self, addr: str, prefix: str = "gw:", timeout_s: float = 5.0) -> None:
        self.addr = addr  # with its password: never logged (``where`` is what messages name)
        self.where = redacted(addr)
        self.prefix = prefix
        # one retry, on a fresh connection, when a pooled one turns out dead (Redis restarted): the
        # command never reached a server, so it is not counted twice; timeouts are never retried
        self.redis = aioredis.Redis.from_url(redis_url(addr), socket_timeout=timeout_s,
                                             socket_connect_timeout=timeout_s, decode_responses=True,
                                             retry=Retry(NoBackoff(), 1), retry_on_error=[RedisConnectionError])
        self.registered = {name: self.redis.register_script(body) for name, body in lua.SCRIPTS.items()}
        self._wire = RedisWire(redis_url(addr), timeout_s)
        self._lua = {name: Script(body) for name, body in lua.SCRIPTS.items()}

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _down(self, exc: Exception) -> StoreDown:
        if isinstance(exc, OSError):  # ConnectionError, TimeoutError
            return StoreDown(f"redis store {self.where}: unreachable ({type(exc).__name__})")
        return StoreDown(f"redis store {self.where}: {exc}")

    async def script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of ``lua.SCRIPTS`` on the request path's connection."""
        try:
            return await self._wire.evalsha(self._lua[name], keys, args)
        except (OSError, ReplyError) as exc:
            raise self._down(exc) from exc

    async def call(self, *args: Any) -> Any:
        """One command on the request path's connection."""
        try:
            return await self._wire.call(*args)
        except (OSError, ReplyError) as exc:
            raise self._down(exc) from exc

    async def now(self) -> float:
        """The server's clock (epoch seconds): replicas with skewed clocks still agree on it."""
        seconds, micros = await self.call("TIME")
        return int(seconds) + int(micros) / 1e6

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """redis-py's errors inside the block, as ``StoreDown``."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise StoreDown(f"redis store {self.where}: unreachable ({type(exc).__name__})") from exc
        except RedisError as exc:
            raise StoreDown(f"redis store {self.where}: {type(exc).__name__}: {exc}") from exc

    async def ping(self) -> None:
        await self.call("PING")

    async def close(self) -> None:
        await self._wire.close()
        await self.redis.aclose()
