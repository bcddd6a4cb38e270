"""Object pins in Redis (``RedisPins``): one key each, expired by Redis itself."""

from __future__ import annotations

from .connection import RedisLink


class RedisPins:
    """The ``Pins`` role on Redis."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        await self._link.call("SET", self._link.key("pin", object_id), value, "PX", max(1, int(ttl_s * 1000)))

    async def get_pin(self, object_id: str) -> str | None:
        found = await self._link.call("GET", self._link.key("pin", object_id))
        return None if found is None else str(found)

    async def clear_pin(self, object_id: str) -> None:
        await self._link.call("DEL", self._link.key("pin", object_id))
