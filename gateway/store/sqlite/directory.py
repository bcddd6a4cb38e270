"""The client directory in the SQLite file (``SqliteDirectory``): each change one transaction that
also moves the directory's version (``meta.directory_version``)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace

from ..base import ClientExists, ClientNotFound
from ..sql import client_json, client_record
from ..values import ClientRecord
from .connection import Conn, SqliteDb


def _bump_version(conn: Conn) -> None:
    conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'directory_version'")


class SqliteDirectory:
    """The ``Directory`` role on a SQLite file."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def create_client(self, record: ClientRecord) -> ClientRecord:
        if not record.created_at:
            record = replace(record, created_at=time.time())

        def run(conn: Conn) -> None:
            try:
                conn.execute("INSERT INTO clients VALUES (?, ?, ?, ?)",
                             (record.id, record.key_digest, client_json(record), record.last_used))
            except sqlite3.IntegrityError as exc:
                raise ClientExists(f"a client with id {record.id!r} or the same key already exists") from exc
            _bump_version(conn)
        await self._db.call(run)
        return record

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return await self._one("id", client_id)

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        return await self._one("key_digest", digest)

    async def _one(self, column: str, value: object) -> ClientRecord | None:
        query = f"SELECT data, last_used FROM clients WHERE {column} = ?"  # column: one of two names above
        row = await self._db.call(lambda c: c.execute(query, (value,)).fetchone(), write=False)
        return None if row is None else client_record(row[0], row[1])

    async def list_clients(self) -> list[ClientRecord]:
        rows = await self._db.call(lambda c: c.execute("SELECT data, last_used FROM clients ORDER BY id").fetchall(),
                                   write=False)
        return [client_record(data, last_used) for data, last_used in rows]

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        def run(conn: Conn) -> ClientRecord:
            row = conn.execute("SELECT data, last_used FROM clients WHERE id = ?", (record.id,)).fetchone()
            if row is None:
                raise ClientNotFound(f"no client with id {record.id!r}")
            old = client_record(row[0], row[1])
            new = replace(record, key_digest=old.key_digest, created_at=old.created_at, last_used=old.last_used)
            conn.execute("UPDATE clients SET data = ? WHERE id = ?", (client_json(new), record.id))
            _bump_version(conn)
            return new
        return await self._db.call(run)

    async def delete_client(self, client_id: str) -> bool:
        def run(conn: Conn) -> bool:
            gone = conn.execute("DELETE FROM clients WHERE id = ?", (client_id,)).rowcount > 0
            if gone:
                _bump_version(conn)
            return gone
        return await self._db.call(run)

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        def run(conn: Conn) -> ClientRecord:
            row = conn.execute("SELECT data, last_used FROM clients WHERE id = ?", (client_id,)).fetchone()
            if row is None:
                raise ClientNotFound(f"no client with id {client_id!r}")
            new = replace(client_record(row[0], row[1]), key_digest=new_digest)
            try:
                conn.execute("UPDATE clients SET key_digest = ?, data = ? WHERE id = ?",
                             (new_digest, client_json(new), client_id))
            except sqlite3.IntegrityError as exc:
                raise ClientExists("another client has this key") from exc
            _bump_version(conn)
            return new
        return await self._db.call(run)

    async def directory_version(self) -> int:
        row = await self._db.call(lambda c: c.execute("SELECT value FROM meta WHERE name = 'directory_version'")
                                  .fetchone(), write=False)
        return int(row[0])
