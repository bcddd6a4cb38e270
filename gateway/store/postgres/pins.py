"""Object pins in PostgreSQL (``PostgresPins``); expired pins are deleted as new ones are set."""

from __future__ import annotations

from .connection import Conn, PostgresPool, server_now


class PostgresPins:
    """The ``Pins`` role on PostgreSQL."""

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        async def run(conn: Conn) -> None:
            now = await server_now(conn)
            await conn.execute("DELETE FROM pins WHERE expires <= %s", (now,))
            await conn.execute("INSERT INTO pins VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                               "value = excluded.value, expires = excluded.expires", (object_id, value, now + ttl_s))
        await self._pool.tx(run)

    async def get_pin(self, object_id: str) -> str | None:
        async with self._pool.conn() as conn:
            cur = await conn.execute("SELECT value FROM pins WHERE id = %s AND "
                                     "expires > extract(epoch from clock_timestamp())", (object_id,))
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def clear_pin(self, object_id: str) -> None:
        async with self._pool.conn() as conn:
            await conn.execute("DELETE FROM pins WHERE id = %s", (object_id,))
