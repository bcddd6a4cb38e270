"""What every role of the PostgreSQL store shares (``PostgresPool``): psycopg 3's async connection
pool, the schema and its migration, and the server's clock.

Each call is one transaction. The schema is created at start inside one transaction holding a
fixed advisory lock, so two replicas starting together migrate once, one after the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .. import sql
from ..base import StoreDown

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
MIGRATION_LOCK = 0x67775F73746F7265  # "gw_store": one advisory lock id for the schema migration
NOW = "SELECT extract(epoch from clock_timestamp())::float8"

# ``holds`` is no longer written or read; it stays so a gateway of an earlier version on the same
# database still finds it
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS gw_schema (version integer NOT NULL)",
    """CREATE TABLE IF NOT EXISTS windows (win text NOT NULL, entry text NOT NULL, at float8 NOT NULL,
        amount float8 NOT NULL, PRIMARY KEY (win, entry))""",
    "CREATE INDEX IF NOT EXISTS windows_at ON windows (win, at)",
    "CREATE TABLE IF NOT EXISTS marks (name text PRIMARY KEY, until float8 NOT NULL)",
    """CREATE TABLE IF NOT EXISTS spend (client_id text NOT NULL, period text NOT NULL, usd float8 NOT NULL,
        PRIMARY KEY (client_id, period))""",
    """CREATE TABLE IF NOT EXISTS holds (client_id text NOT NULL, hold_id text NOT NULL, usd float8 NOT NULL,
        expires float8 NOT NULL, PRIMARY KEY (client_id, hold_id))""",
    """CREATE TABLE IF NOT EXISTS clients (id text PRIMARY KEY, key_digest bytea NOT NULL UNIQUE,
        data text NOT NULL, last_used float8)""",
    "CREATE TABLE IF NOT EXISTS meta (name text PRIMARY KEY, value bigint NOT NULL)",
    "INSERT INTO meta VALUES ('directory_version', 0) ON CONFLICT DO NOTHING",
    """CREATE TABLE IF NOT EXISTS ledger (id bigserial PRIMARY KEY, time float8 NOT NULL,
        request_id text NOT NULL, client_id text NOT NULL, provider text NOT NULL, model text NOT NULL,
        key_label text NOT NULL, status integer NOT NULL, error_code text, tokens_in bigint NOT NULL,
        tokens_out bigint NOT NULL, cost_usd float8 NOT NULL, latency_ms float8 NOT NULL,
        overhead_ms float8 NOT NULL, stream boolean NOT NULL, cache_hit boolean NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS ledger_time ON ledger (time)",
    "CREATE INDEX IF NOT EXISTS ledger_client_time ON ledger (client_id, time)",
    "CREATE TABLE IF NOT EXISTS pins (id text PRIMARY KEY, value text NOT NULL, expires float8 NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pins_expires ON pins (expires)",
]


def pg(query: str) -> str:
    """A query of ``sql.py`` (``?`` placeholders) in psycopg's ``%s``."""
    return query.replace("?", "%s")


def redacted(dsn: str) -> str:
    """The DSN's host, port, database and user: never its password."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgres (unparsable dsn)"
    return f"postgres://{info.get('user') or ''}@{info.get('host') or 'localhost'}:{info.get('port') or 5432}/" \
           f"{info.get('dbname') or ''}"


async def _migrate(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    exists = await (await conn.execute("SELECT to_regclass('gw_schema') IS NOT NULL")).fetchone()
    version = 0
    if exists and exists[0]:
        row = await (await conn.execute("SELECT max(version) FROM gw_schema")).fetchone()
        version = int(row[0] or 0) if row else 0
    if version >= sql.SCHEMA_VERSION:
        return
    for statement in SCHEMA:
        await conn.execute(statement)
    for column, kind in sql.LEDGER_V3:
        await conn.execute(f"ALTER TABLE ledger ADD COLUMN IF NOT EXISTS {column} {kind}")
    await conn.execute("INSERT INTO gw_schema VALUES (%s)", (sql.SCHEMA_VERSION,))


async def server_now(conn: Conn) -> float:
    row = await (await conn.execute(NOW)).fetchone()
    assert row is not None
    return float(row[0])


class PostgresPool:
    """One PostgreSQL database as the store's roles use it: a connection (one transaction) per call."""

    def __init__(self, dsn: str, max_connections: int = 10, timeout_s: float = 3.0) -> None:
        self.where = redacted(dsn)
        # timeout_s: how long a call waits for a connection before StoreDown (the server is down)
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            dsn, min_size=1, max_size=max_connections, open=False, timeout=timeout_s, name="gateway-store",
            kwargs={"connect_timeout": max(1, round(timeout_s))})

    async def open(self, connect_timeout_s: float = 10.0) -> None:
        """Connect and migrate. Raises StoreDown (and leaves nothing open)."""
        try:
            await self._pool.open(wait=True, timeout=connect_timeout_s)
            await self.tx(_migrate)
        except (PoolTimeout, psycopg.Error, StoreDown) as exc:
            await self._pool.close()
            raise StoreDown(f"postgres store {self.where}: cannot connect or migrate "
                            f"({type(exc).__name__})") from exc

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[Conn]:
        """A connection, its transaction committed when the block ends. Raises StoreDown."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreDown(f"postgres store {self.where}: unreachable ({type(exc).__name__})") from exc

    async def tx(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction (committed when it returns)."""
        async with self.conn() as conn:
            return await fn(conn)

    async def fetch(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The rows of one ``sql.py`` query."""
        async with self.conn() as conn:
            return await (await conn.execute(pg(query).encode(), params)).fetchall()

    async def ping(self) -> None:
        async with self.conn() as conn:
            await conn.execute("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()
