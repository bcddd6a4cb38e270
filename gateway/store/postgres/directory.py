"""The client directory in PostgreSQL (``PostgresDirectory``): each change one transaction that
also moves the directory's version (``meta.directory_version``)."""

from __future__ import annotations

import time
from dataclasses import replace

from psycopg import errors as pg_errors

from ..base import ClientExists, ClientNotFound
from ..sql import client_json, client_record
from ..values import ClientRecord
from .connection import Conn, PostgresPool


async def _bump_version(conn: Conn) -> None:
    await conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'directory_version'")


class PostgresDirectory:
    """The ``Directory`` role on PostgreSQL."""

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    async def create_client(self, record: ClientRecord) -> ClientRecord:
        if not record.created_at:
            record = replace(record, created_at=time.time())

        async def run(conn: Conn) -> None:
            try:
                async with conn.transaction():
                    await conn.execute("INSERT INTO clients VALUES (%s, %s, %s, %s)",
                                       (record.id, record.key_digest, client_json(record), record.last_used))
            except pg_errors.UniqueViolation as exc:
                raise ClientExists(f"a client with id {record.id!r} or the same key already exists") from exc
            await _bump_version(conn)
        await self._pool.tx(run)
        return record

    async def _one(self, where: str, value: object) -> ClientRecord | None:
        async with self._pool.conn() as conn:
            cur = await conn.execute(f"SELECT data, last_used FROM clients WHERE {where} = %s", (value,))
            row = await cur.fetchone()
        return None if row is None else client_record(row[0], row[1])

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return await self._one("id", client_id)

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        return await self._one("key_digest", digest)

    async def list_clients(self) -> list[ClientRecord]:
        async with self._pool.conn() as conn:
            rows = await (await conn.execute("SELECT data, last_used FROM clients ORDER BY id")).fetchall()
        return [client_record(data, last_used) for data, last_used in rows]

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        async def run(conn: Conn) -> ClientRecord:
            cur = await conn.execute("SELECT data, last_used FROM clients WHERE id = %s FOR UPDATE", (record.id,))
            row = await cur.fetchone()
            if row is None:
                raise ClientNotFound(f"no client with id {record.id!r}")
            old = client_record(row[0], row[1])
            new = replace(record, key_digest=old.key_digest, created_at=old.created_at, last_used=old.last_used)
            await conn.execute("UPDATE clients SET data = %s WHERE id = %s", (client_json(new), record.id))
            await _bump_version(conn)
            return new
        return await self._pool.tx(run)

    async def delete_client(self, client_id: str) -> bool:
        async def run(conn: Conn) -> bool:
            cur = await conn.execute("DELETE FROM clients WHERE id = %s", (client_id,))
            if cur.rowcount > 0:
                await _bump_version(conn)
            return cur.rowcount > 0
        return await self._pool.tx(run)

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        async def run(conn: Conn) -> ClientRecord:
            cur = await conn.execute("SELECT data, last_used FROM clients WHERE id = %s FOR UPDATE", (client_id,))
            row = await cur.fetchone()
            if row is None:
                raise ClientNotFound(f"no client with id {client_id!r}")
            new = replace(client_record(row[0], row[1]), key_digest=new_digest)
            try:
                async with conn.transaction():
                    await conn.execute("UPDATE clients SET key_digest = %s, data = %s WHERE id = %s",
                                       (new_digest, client_json(new), client_id))
            except pg_errors.UniqueViolation as exc:
                raise ClientExists("another client has this key") from exc
            await _bump_version(conn)
            return new
        return await self._pool.tx(run)

    async def directory_version(self) -> int:
        async with self._pool.conn() as conn:
            row = await (await conn.execute("SELECT value FROM meta WHERE name = 'directory_version'")).fetchone()
        return int(row[0]) if row else 0
