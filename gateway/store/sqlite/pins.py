"""Object pins in the SQLite file (``SqlitePins``); expired pins are deleted as new ones are set."""

from __future__ import annotations

import time

from .connection import Conn, SqliteDb


class SqlitePins:
    """The ``Pins`` role on a SQLite file."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        def run(conn: Conn) -> None:
            now = time.time()
            conn.execute("DELETE FROM pins WHERE expires <= ?", (now,))  # by the index: what expired since
            conn.execute("INSERT INTO pins VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                         "value = excluded.value, expires = excluded.expires", (object_id, value, now + ttl_s))
        await self._db.call(run)

    async def get_pin(self, object_id: str) -> str | None:
        row = await self._db.call(lambda c: c.execute("SELECT value FROM pins WHERE id = ? AND expires > ?",
                                                      (object_id, time.time())).fetchone(), write=False)
        return None if row is None else str(row[0])

    async def clear_pin(self, object_id: str) -> None:
        await self._db.call(lambda c: c.execute("DELETE FROM pins WHERE id = ?", (object_id,)))
