"""The client directory in this process (``MemoryDirectory``): nothing survives a restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from ..base import ClientExists, ClientNotFound
from ..values import ClientRecord


class MemoryDirectory:
    """The ``Directory`` role for one process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._clients: dict[str, ClientRecord] = {}
        self._digests: dict[bytes, str] = {}
        self._version = 0

    async def create_client(self, record: ClientRecord) -> ClientRecord:
        if record.id in self._clients or record.key_digest in self._digests:
            raise ClientExists(f"a client with id {record.id!r} or the same key already exists")
        if not record.created_at:
            record = replace(record, created_at=self._clock())
        self._put(record)
        return record

    def _put(self, record: ClientRecord) -> None:
        self._clients[record.id] = record
        self._digests[record.key_digest] = record.id
        self._version += 1

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return self._clients.get(client_id)

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        client_id = self._digests.get(digest)
        return None if client_id is None else self._clients.get(client_id)

    async def list_clients(self) -> list[ClientRecord]:
        return [self._clients[k] for k in sorted(self._clients)]

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        old = self._clients.get(record.id)
        if old is None:
            raise ClientNotFound(f"no client with id {record.id!r}")
        new = replace(record, key_digest=old.key_digest, created_at=old.created_at, last_used=old.last_used)
        self._put(new)
        return new

    async def delete_client(self, client_id: str) -> bool:
        old = self._clients.pop(client_id, None)
        if old is None:
            return False
        del self._digests[old.key_digest]
        self._version += 1
        return True

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        old = self._clients.get(client_id)
        if old is None:
            raise ClientNotFound(f"no client with id {client_id!r}")
        if self._digests.get(new_digest, client_id) != client_id:
            raise ClientExists("another client has this key")
        del self._digests[old.key_digest]
        new = replace(old, key_digest=new_digest)
        self._put(new)
        return new

    async def directory_version(self) -> int:
        return self._version

    def touch(self, last_used: Mapping[str, float]) -> None:
        """Move each client's ``last_used`` forward to the time given (the ledger calls it as it
        writes rows; ids not in the directory are ignored, and the version does not change)."""
        for client_id, at in last_used.items():
            old = self._clients.get(client_id)
            if old is not None and (old.last_used or 0.0) < at:
                self._clients[client_id] = replace(old, last_used=at)
