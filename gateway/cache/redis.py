"""The shared backend, used when ``storage.runtime`` is Redis: every worker and replica on that
Redis serves the same entries.

Each namespace is bounded in one Lua script, atomically: an entry is a string key with its time to
live (``PX``), the namespace's sorted set orders its entries by last use, and a hash holds each
entry's size and the namespace's total. A put evicts the least recently used until the total fits.
The keys of one namespace share a hash tag (``{ns}``), so a Redis Cluster keeps them on one slot.

It has its own connection to the runtime store's Redis (same address and key prefix): the store's
client decodes answers to text, and a cached answer is bytes. Redis being away is a miss, never
an error for the request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .entry import Entry, decode

log = logging.getLogger("gateway.cache")

# KEYS: lru zset, sizes hash; ARGV: member, value, ttl ms, max bytes, entry key prefix
_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local function drop(member)
  local size = tonumber(redis.call('HGET', KEYS[2], member) or '0')
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('DEL', ARGV[5] .. member)
  return redis.call('HINCRBY', KEYS[2], '#total', -size)
end
-- entries not used for a whole time to live have expired: forget them first
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl, 'LIMIT', 0, 64)) do
  drop(member)
end
local size = string.len(ARGV[2])
local old = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('SET', ARGV[5] .. ARGV[1], ARGV[2], 'PX', ttl)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], size)
local total = redis.call('HINCRBY', KEYS[2], '#total', size - old)
local max = tonumber(ARGV[4])
while total > max do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #oldest == 0 then break end
  total = drop(oldest[1])
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return total
"""

# KEYS: lru zset; ARGV: member, entry key prefix
_GET = """
local value = redis.call('GET', ARGV[2] .. ARGV[1])
if value then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
end
return value
"""


class RedisBackend:
    name = "redis"

    def __init__(self, addr: str, prefix: str = "gw:", timeout_s: float = 2.0):
        url = addr if "://" in addr else f"redis://{addr}"  # storage's "host:6379" form, or a URL
        self._redis = aioredis.Redis.from_url(url, socket_timeout=timeout_s,
                                              socket_connect_timeout=timeout_s)
        self._prefix = prefix + "cache:"
        self._get = self._redis.register_script(_GET)
        self._put = self._redis.register_script(_PUT)

    def _keys(self, namespace: str) -> tuple[str, str, str]:
        """The namespace's sorted set, its size hash, and the prefix of its entries' keys."""
        base = self._prefix + "{" + namespace + "}:"
        return base + "lru", base + "sizes", base + "e:"

    async def get(self, namespace: str, key: str) -> Entry | None:
        lru, _, entries = self._keys(namespace)
        try:
            raw = await self._get(keys=[lru], args=[key, entries])
        except (RedisError, OSError) as exc:
            log.warning("response cache: redis lookup failed (a miss)", extra={"error": type(exc).__name__})
            return None
        return decode(raw) if isinstance(raw, bytes) else None

    async def put(self, namespace: str, key: str, entry: Entry, ttl_s: float, max_bytes: int) -> None:
        if entry.size > max_bytes:
            return
        lru, sizes, entries = self._keys(namespace)
        try:
            await self._put(keys=[lru, sizes], args=[key, entry.encode(), max(1, int(ttl_s * 1000)), max_bytes,
                                                     entries])
        except (RedisError, OSError) as exc:
            log.warning("response cache: redis store failed (not kept)", extra={"error": type(exc).__name__})

    def keep_only(self, namespaces: Iterable[str]) -> None:
        """Nothing to do here: a namespace no longer used expires by itself after its time to live."""

    def bytes_held(self) -> int | None:
        return None

    async def close(self) -> None:
        await self._redis.aclose()
