"""Clients created at runtime (the store's client directory), as authentication sees them.

Lookups by key digest are cached in the process, misses included (a wrong key does not reach
the store twice). The cache is dropped when ``directory_version()`` changes, polled at most
every ``poll_s`` seconds: a client created, rotated or deleted through another process or
replica takes effect here within about that long; ``changed()`` drops it at once (the process
that made the change calls it).

An id belongs to config.yaml first: a directory client whose id a config client also holds is
*shadowed* (authentication refuses its key for as long as the config client exists; the admin
API can still delete it). ``shadowed_ids`` names them, ``warn_shadowed`` logs them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..config.snapshot import Snapshot
from ..core.targets import ClientSpec
from ..errors import StoreUnavailable
from .base import Directory, StoreDown, StoreError
from .values import ClientRecord

log = logging.getLogger("gateway.config")

MAX_CACHED = 10_000


def client_spec(record: ClientRecord) -> ClientSpec:
    """The directory's record as the request path uses a client (the same shape as config clients)."""
    providers, models = record.allowed_providers, record.allowed_models
    return ClientSpec(id=record.id, digest=record.key_digest,
                      allowed_providers=None if "*" in providers else frozenset(providers),
                      allowed_models=None if "*" in models else frozenset(models),
                      limits=record.limits, budget=record.budget, admin=record.admin)


class ClientDirectory:
    def __init__(self, store: Directory, poll_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.poll_s = poll_s
        self._clock = clock
        self._cache: dict[bytes, ClientSpec | None] = {}
        self._version: int | None = None
        self._checked = -poll_s

    def changed(self) -> None:
        """Forget every cached lookup now (after this process changed the directory)."""
        self._cache.clear()
        self._checked = -self.poll_s

    async def find(self, digest: bytes) -> ClientSpec | None:
        """The client whose key has this digest, or None. Raises ``errors.StoreUnavailable`` (503)
        when the store cannot answer for a digest not cached (a valid key is not told 401)."""
        try:
            await self._refresh()
            if digest in self._cache:
                return self._cache[digest]
            record = await self.store.client_by_digest(digest)
        except StoreDown:
            if digest in self._cache:
                return self._cache[digest]
            raise StoreUnavailable("The gateway's client directory is unreachable; retry shortly.") from None
        found = None if record is None else client_spec(record)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[digest] = found
        return found

    async def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked < self.poll_s:
            return
        self._checked = now
        version = await self.store.directory_version()
        if version != self._version:
            self._cache.clear()
            self._version = version


async def shadowed_ids(store: Directory, snapshot: Snapshot) -> list[str]:
    """The ids of the directory's clients that a client of ``snapshot`` shadows (raises StoreError)."""
    if not snapshot.client_ids:
        return []
    return sorted(r.id for r in await store.list_clients() if r.id in snapshot.client_ids)


async def warn_shadowed(store: Directory, snapshot: Snapshot) -> None:
    """One warning naming the directory clients that config.yaml's clients shadow, if any."""
    try:
        ids = await shadowed_ids(store, snapshot)
    except StoreError as exc:
        log.warning("could not check the client directory for ids config.yaml also holds",
                    extra={"error": str(exc)})
        return
    if ids:
        log.warning("config.yaml holds the id of clients created through the admin API: their keys are "
                    "refused while config.yaml has these ids (DELETE /admin/v1/clients/<id> removes them)",
                    extra={"client_ids": ids})
