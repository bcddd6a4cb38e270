"""The shared store for several workers and replicas (``RedisStore``): every role on one Redis
server, every decision one Lua script (``lua.py``), time from the server's clock.

Its roles share one ``connection.RedisLink``: the request path's multiplexed connection
(``wire.py``) and a redis-py client for the rest. The response cache can live on the same server
(``serves_cache``), on a connection of its own (``cache/redis.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import StoreDown
from ..composed import ComposedStore
from .connection import RedisLink
from .counters import RedisCounters
from .directory import RedisDirectory
from .ledger import RedisLedger
from .pins import RedisPins

if TYPE_CHECKING:
    from ...cache.base import CacheBackend


class RedisStore(ComposedStore):
    """Every role on one Redis server. Build it with ``await RedisStore.open(addr)``."""

    name = "redis"
    shared = True
    durable = True
    scales_workers = True
    serves_cache = True

    def __init__(self, addr: str, prefix: str = "gw:", ledger_interval_s: float = 0.5,
                 timeout_s: float = 5.0) -> None:
        self.link = RedisLink(addr, prefix, timeout_s)
        self.where = self.link.where
        super().__init__(RedisCounters(self.link), RedisPins(self.link), RedisDirectory(self.link),
                         RedisLedger(self.link, ledger_interval_s))

    @classmethod
    async def open(cls, addr: str, prefix: str = "gw:", ledger_interval_s: float = 0.5) -> RedisStore:
        """Connect and check that the server answers. Raises StoreDown."""
        store = cls(addr, prefix, ledger_interval_s)
        try:
            await store.ping()
        except StoreDown:
            await store.link.close()
            raise
        return store

    def response_cache(self) -> CacheBackend:
        from ...cache.redis import RedisBackend

        return RedisBackend(self.link.addr, self.link.prefix)

    async def ping(self) -> None:
        await self.link.ping()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self.link.close()
