"""The per-process backend: one byte-bounded LRU with time to live per namespace."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from .entry import Entry


class LRU:
    """Entries in least-recently-used order, at most ``max_bytes`` of them (``Entry.size``); an
    entry past its deadline is never served, and dropped when it is next looked at or evicted."""

    __slots__ = ("_items", "_clock", "max_bytes", "bytes")

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic):
        self._items: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self._clock = clock
        self.max_bytes = max_bytes
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Entry | None:
        found = self._items.get(key)
        if found is None:
            return None
        deadline, entry = found
        if deadline <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry, ttl_s: float) -> None:
        if key in self._items:
            self._drop(key)
        if entry.size > self.max_bytes:
            return  # it would push out everything else and still not fit
        self._items[key] = (self._clock() + ttl_s, entry)
        self.bytes += entry.size
        self.shrink(self.max_bytes)

    def shrink(self, max_bytes: int) -> None:
        """Evict the least recently used until at most ``max_bytes`` are held (O(1) per eviction:
        an expired entry is not searched for; it goes when looked at or when it is the oldest)."""
        self.max_bytes = max_bytes
        while self.bytes > max_bytes and self._items:
            self._drop(next(iter(self._items)))

    def _drop(self, key: str) -> None:
        _, entry = self._items.pop(key)
        self.bytes -= entry.size


class MemoryBackend:
    """Each namespace its own ``LRU`` in this process (several workers: one cache each)."""

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._caches: dict[str, LRU] = {}

    async def get(self, namespace: str, key: str) -> Entry | None:
        cache = self._caches.get(namespace)
        return cache.get(key) if cache is not None else None

    async def put(self, namespace: str, key: str, entry: Entry, ttl_s: float, max_bytes: int) -> None:
        cache = self._caches.get(namespace)
        if cache is None:
            cache = self._caches[namespace] = LRU(max_bytes, self._clock)
        elif cache.max_bytes != max_bytes:  # max_mb changed by a reload
            cache.shrink(max_bytes)
        cache.put(key, entry, ttl_s)

    def keep_only(self, namespaces: Iterable[str]) -> None:
        keep = set(namespaces)
        for name in [n for n in self._caches if n not in keep]:
            del self._caches[name]

    def bytes_held(self) -> int | None:
        return sum(cache.bytes for cache in self._caches.values())

    async def close(self) -> None:
        self._caches.clear()
