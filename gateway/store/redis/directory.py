"""The client directory in Redis (``RedisDirectory``): hashes of the clients' fields, digests,
created and last-used times, and a version counter; every change one Lua script."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from ..base import ClientExists, ClientNotFound
from ..common import client_from_dict, client_to_dict
from ..values import ClientRecord
from .connection import RedisLink

# the hashes every directory script takes, in this order (lua.py's KEYS[1..6])
DIRECTORY_KEYS = ("clients", "client_digests", "clients_version", "client_last_used", "client_keys",
                  "client_created")


def _fields_json(record: ClientRecord) -> str:
    """The fields an update replaces (not the key digest, created_at or last_used)."""
    data = client_to_dict(record)
    for kept in ("key_digest", "created_at", "last_used"):
        data.pop(kept)
    return json.dumps(data)


def _client(found: Any) -> ClientRecord | None:
    """A record from a script's ``[fields, digest, created_at, last_used]`` answer (None: no such client)."""
    if not found:
        return None
    fields, digest, created_at, last_used = found
    data = json.loads(fields)
    data.update(key_digest=digest, created_at=float(created_at or 0.0),
                last_used=None if last_used is None else float(last_used))
    return client_from_dict(data)


class RedisDirectory:
    """The ``Directory`` role on Redis."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._keys = [link.key(n) for n in DIRECTORY_KEYS]

    async def create_client(self, record: ClientRecord) -> ClientRecord:
        if not record.created_at:
            record = replace(record, created_at=await self._link.now())
        args = [record.id, _fields_json(record), record.key_digest.hex(), repr(record.created_at)]
        if not int(await self._link.script("client_create", self._keys, args)):
            raise ClientExists(f"a client with id {record.id!r} or the same key already exists")
        return record

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return _client(await self._link.script("client_get", self._keys, [client_id, ""]))

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        return _client(await self._link.script("client_get", self._keys, ["", digest.hex()]))

    async def list_clients(self) -> list[ClientRecord]:
        async with self._link.guard():
            ids = sorted(str(i) for i in await self._link.redis.hkeys(self._link.key("clients")))
        found = [await self.get_client(i) for i in ids]
        return [c for c in found if c is not None]

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        client = _client(await self._link.script("client_update", self._keys, [record.id, _fields_json(record)]))
        if client is None:
            raise ClientNotFound(f"no client with id {record.id!r}")
        return client

    async def delete_client(self, client_id: str) -> bool:
        return bool(int(await self._link.script("client_delete", self._keys, [client_id])))

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        found = await self._link.script("client_rotate", self._keys, [client_id, new_digest.hex()])
        if found == "exists":
            raise ClientExists("another client has this key")
        client = _client(found)
        if client is None:
            raise ClientNotFound(f"no client with id {client_id!r}")
        return client

    async def directory_version(self) -> int:
        return int(await self._link.call("GET", self._link.key("clients_version")) or 0)
