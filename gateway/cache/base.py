"""The contract of a cache backend: entries under a namespace (one alias's or one client's cache)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .entry import Entry


class CacheBackend(Protocol):
    """Keeps entries per namespace, each namespace bounded by bytes (least recently used evicted
    first) and each entry by its time to live. Never raises for the store being away: a lookup
    that cannot be made is a miss, an entry that cannot be kept is dropped."""

    name: str

    async def get(self, namespace: str, key: str) -> Entry | None: ...

    async def put(self, namespace: str, key: str, entry: Entry, ttl_s: float, max_bytes: int) -> None: ...

    def keep_only(self, namespaces: Iterable[str]) -> None:
        """Forget the namespaces not named (their alias or client is no longer configured)."""
        ...

    def bytes_held(self) -> int | None:
        """Bytes this process holds (None: the entries are held elsewhere)."""
        ...

    async def close(self) -> None: ...
