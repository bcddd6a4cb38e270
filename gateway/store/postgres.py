"""The durable shared store: PostgreSQL through psycopg 3 (async) and its connection pool.

Each call is one transaction. A window check takes a transaction-scoped advisory lock on the
window's name, so concurrent reservations from every replica queue on it; time is the server's
(``clock_timestamp()``). The schema is created at start inside one transaction holding a fixed
advisory lock, so two replicas starting together migrate once, one after the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from . import sql
from .base import (
    Ask,
    Batch,
    BudgetAsk,
    ClientExists,
    ClientNotFound,
    ClientRecord,
    GroupBy,
    Hold,
    LedgerRow,
    Reservation,
    SeriesPoint,
    Spend,
    StoreUnavailable,
    UsageGroup,
    UsageTotals,
    WindowResult,
)
from .common import (
    LedgerBuffer,
    client_from_dict,
    client_to_dict,
    int_cursor,
    last_used_of,
    new_id,
    periods,
    reserve_in_turn,
    row_from_values,
    row_values,
    series_of,
    settle_in_turn,
    window_wait,
)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
MIGRATION_LOCK = 0x67775F73746F7265  # "gw_store": one advisory lock id for the schema migration
NOW = "SELECT extract(epoch from clock_timestamp())::float8"

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
    *(f"ALTER TABLE ledger ADD COLUMN IF NOT EXISTS {name} {definition}" for name, definition in sql.LEDGER_ADDED),
    "CREATE INDEX IF NOT EXISTS ledger_time ON ledger (time)",
    "CREATE INDEX IF NOT EXISTS ledger_client_time ON ledger (client_id, time)",
    "CREATE TABLE IF NOT EXISTS pins (id text PRIMARY KEY, value text NOT NULL, expires float8 NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pins_expires ON pins (expires)",
]


def _pg(query: str) -> str:
    return query.replace("?", "%s")


def redacted(dsn: str) -> str:
    """The DSN's host, port, database and user: never its password."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgres (unparsable dsn)"
    return f"postgres://{info.get('user') or ''}@{info.get('host') or 'localhost'}:{info.get('port') or 5432}/" \
           f"{info.get('dbname') or ''}"


def _record(data: str, last_used: float | None) -> ClientRecord:
    return replace(client_from_dict(json.loads(data)), last_used=last_used)


def _client_json(record: ClientRecord) -> str:
    data = client_to_dict(record)
    data.pop("last_used")
    return json.dumps(data)


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
    await conn.execute("INSERT INTO gw_schema VALUES (%s)", (sql.SCHEMA_VERSION,))


async def _now(conn: Conn) -> float:
    row = await (await conn.execute(NOW)).fetchone()
    assert row is not None
    return float(row[0])


async def _bump_version(conn: Conn) -> None:
    await conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'directory_version'")


class PostgresStore:
    """The ``Store`` contract on PostgreSQL. Build it with ``await PostgresStore.open(dsn)``."""

    name = "postgres"

    def __init__(self, dsn: str, ledger_interval_s: float = 0.5, max_connections: int = 10,
                 timeout_s: float = 3.0) -> None:
        self.where = redacted(dsn)
        # timeout_s: how long a call waits for a connection before StoreUnavailable (the server is down)
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            dsn, min_size=1, max_size=max_connections, open=False, timeout=timeout_s, name="gateway-store",
            kwargs={"connect_timeout": max(1, round(timeout_s))})
        self._buffer = LedgerBuffer(self._write_rows, interval_s=ledger_interval_s)

    @classmethod
    async def open(cls, dsn: str, ledger_interval_s: float = 0.5, connect_timeout_s: float = 10.0,
                   timeout_s: float = 3.0) -> PostgresStore:
        store = cls(dsn, ledger_interval_s, timeout_s=timeout_s)
        try:
            await store._pool.open(wait=True, timeout=connect_timeout_s)
            await store._tx(_migrate)
        except (PoolTimeout, psycopg.Error, StoreUnavailable) as exc:
            await store._pool.close()
            raise StoreUnavailable(f"postgres store {store.where}: cannot connect or migrate "
                                   f"({type(exc).__name__})") from exc
        return store

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StoreUnavailable(f"postgres store {self.where}: unreachable ({type(exc).__name__})") from exc

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction (committed when it returns)."""
        async with self._conn() as conn:
            return await fn(conn)

    # windows
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        async def run(conn: Conn) -> WindowResult:
            # the lock first (in FROM), then the time: reservations on one window queue here
            cur = await conn.execute("SELECT extract(epoch from clock_timestamp())::float8 FROM "
                                     "(SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))) AS locked", (window,))
            row = await cur.fetchone()
            assert row is not None
            now = float(row[0])
            await conn.execute("DELETE FROM windows WHERE win = %s AND at <= %s", (window, now - window_s))
            cur = await conn.execute("SELECT coalesce(sum(amount), 0), min(at) FROM windows WHERE win = %s",
                                     (window,))
            found = await cur.fetchone()
            assert found is not None
            used, oldest = float(found[0]), found[1]
            reset = window_s if oldest is None else max(0.0, float(oldest) + window_s - now)
            if used + need <= limit:
                entry = new_id()
                await conn.execute("INSERT INTO windows VALUES (%s, %s, %s, %s)", (window, entry, now, need))
                return WindowResult(Reservation(window, entry, need, now, window_s), 0.0, used + need, reset)
            cur = await conn.execute("SELECT at, amount FROM windows WHERE win = %s ORDER BY at", (window,))
            entries = [(float(at), float(amount)) for at, amount in await cur.fetchall()]
            return WindowResult(None, window_wait(entries, used, now, window_s, limit, need), used, reset)
        return await self._tx(run)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        key = (reservation.window, reservation.entry)
        async with self._conn() as conn:
            if actual <= 0:
                await conn.execute("DELETE FROM windows WHERE win = %s AND entry = %s", key)
            else:
                await conn.execute("UPDATE windows SET amount = %s WHERE win = %s AND entry = %s", (actual, *key))

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        return await reserve_in_turn(self, asks, budget)

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        await settle_in_turn(self, settles)

    # marks
    async def set_mark(self, name: str, ttl_s: float) -> float:
        async def run(conn: Conn) -> float:
            now = await _now(conn)
            cur = await conn.execute("INSERT INTO marks VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET "
                                     "until = greatest(marks.until, excluded.until) RETURNING until",
                                     (name, now + ttl_s))
            row = await cur.fetchone()
            assert row is not None
            return float(row[0]) - now
        return await self._tx(run)

    async def clear_mark(self, name: str) -> None:
        async with self._conn() as conn:
            await conn.execute("DELETE FROM marks WHERE name = %s", (name,))

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        async def run(conn: Conn) -> list[float]:
            now = await _now(conn)
            cur = await conn.execute("SELECT name, until FROM marks WHERE name = ANY(%s)", (list(names),))
            found = {name: float(until) for name, until in await cur.fetchall()}
            return [max(0.0, found.get(n, 0.0) - now) for n in names]
        return await self._tx(run)

    # spend
    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        rows = [(client_id, period, usd) for period in periods(time.time() if at is None else at)]
        async with self._conn() as conn:
            await conn.cursor().executemany(
                "INSERT INTO spend VALUES (%s, %s, %s) ON CONFLICT (client_id, period) DO UPDATE SET "
                "usd = spend.usd + excluded.usd", rows)

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        day, month = periods(time.time() if at is None else at)

        async def run(conn: Conn) -> Spend:
            cur = await conn.execute("SELECT period, usd FROM spend WHERE client_id = %s AND period IN (%s, %s)",
                                     (client_id, day, month))
            found = {period: float(usd) for period, usd in await cur.fetchall()}
            cur = await conn.execute("SELECT coalesce(sum(usd), 0) FROM holds WHERE client_id = %s AND "
                                     "expires > extract(epoch from clock_timestamp())", (client_id,))
            row = await cur.fetchone()
            return Spend(found.get(day, 0.0), found.get(month, 0.0), float(row[0]) if row else 0.0)
        return await self._tx(run)

    async def hold_spend(self, client_id: str, usd: float, ttl_s: float) -> Hold:
        hold = Hold(client_id, new_id(), usd)

        async def run(conn: Conn) -> None:
            now = await _now(conn)
            await conn.execute("DELETE FROM holds WHERE client_id = %s AND expires <= %s", (client_id, now))
            await conn.execute("INSERT INTO holds VALUES (%s, %s, %s, %s)", (client_id, hold.hold_id, usd, now + ttl_s))
        await self._tx(run)
        return hold

    async def release_spend(self, hold: Hold) -> None:
        async with self._conn() as conn:
            await conn.execute("DELETE FROM holds WHERE client_id = %s AND hold_id = %s",
                               (hold.client_id, hold.hold_id))

    # object pins
    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        async def run(conn: Conn) -> None:
            now = await _now(conn)
            await conn.execute("DELETE FROM pins WHERE expires <= %s", (now,))
            await conn.execute("INSERT INTO pins VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                               "value = excluded.value, expires = excluded.expires", (object_id, value, now + ttl_s))
        await self._tx(run)

    async def get_pin(self, object_id: str) -> str | None:
        async with self._conn() as conn:
            cur = await conn.execute("SELECT value FROM pins WHERE id = %s AND "
                                     "expires > extract(epoch from clock_timestamp())", (object_id,))
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def clear_pin(self, object_id: str) -> None:
        async with self._conn() as conn:
            await conn.execute("DELETE FROM pins WHERE id = %s", (object_id,))

    # client directory
    async def create_client(self, record: ClientRecord) -> ClientRecord:
        if not record.created_at:
            record = replace(record, created_at=time.time())

        async def run(conn: Conn) -> None:
            try:
                async with conn.transaction():
                    await conn.execute("INSERT INTO clients VALUES (%s, %s, %s, %s)",
                                       (record.id, record.key_digest, _client_json(record), record.last_used))
            except pg_errors.UniqueViolation as exc:
                raise ClientExists(f"a client with id {record.id!r} or the same key already exists") from exc
            await _bump_version(conn)
        await self._tx(run)
        return record

    async def _one_client(self, where: str, value: object) -> ClientRecord | None:
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT data, last_used FROM clients WHERE {where} = %s", (value,))
            row = await cur.fetchone()
        return None if row is None else _record(row[0], row[1])

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return await self._one_client("id", client_id)

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        return await self._one_client("key_digest", digest)

    async def list_clients(self) -> list[ClientRecord]:
        async with self._conn() as conn:
            rows = await (await conn.execute("SELECT data, last_used FROM clients ORDER BY id")).fetchall()
        return [_record(data, last_used) for data, last_used in rows]

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        async def run(conn: Conn) -> ClientRecord:
            cur = await conn.execute("SELECT data, last_used FROM clients WHERE id = %s FOR UPDATE", (record.id,))
            row = await cur.fetchone()
            if row is None:
                raise ClientNotFound(f"no client with id {record.id!r}")
            old = _record(row[0], row[1])
            new = replace(record, key_digest=old.key_digest, created_at=old.created_at, last_used=old.last_used)
            await conn.execute("UPDATE clients SET data = %s WHERE id = %s", (_client_json(new), record.id))
            await _bump_version(conn)
            return new
        return await self._tx(run)

    async def delete_client(self, client_id: str) -> bool:
        async def run(conn: Conn) -> bool:
            cur = await conn.execute("DELETE FROM clients WHERE id = %s", (client_id,))
            if cur.rowcount > 0:
                await _bump_version(conn)
            return cur.rowcount > 0
        return await self._tx(run)

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        async def run(conn: Conn) -> ClientRecord:
            cur = await conn.execute("SELECT data, last_used FROM clients WHERE id = %s FOR UPDATE", (client_id,))
            row = await cur.fetchone()
            if row is None:
                raise ClientNotFound(f"no client with id {client_id!r}")
            new = replace(_record(row[0], row[1]), key_digest=new_digest)
            try:
                async with conn.transaction():
                    await conn.execute("UPDATE clients SET key_digest = %s, data = %s WHERE id = %s",
                                       (new_digest, _client_json(new), client_id))
            except pg_errors.UniqueViolation as exc:
                raise ClientExists("another client has this key") from exc
            await _bump_version(conn)
            return new
        return await self._tx(run)

    async def directory_version(self) -> int:
        async with self._conn() as conn:
            row = await (await conn.execute("SELECT value FROM meta WHERE name = 'directory_version'")).fetchone()
        return int(row[0]) if row else 0

    # ledger
    def record(self, row: LedgerRow) -> None:
        self._buffer.record(row)

    async def flush(self) -> int:
        return await self._buffer.flush()

    async def _write_rows(self, rows: list[LedgerRow]) -> None:
        async with self._conn() as conn:
            cur = conn.cursor()
            await cur.executemany(_pg(sql.INSERT_LEDGER), [row_values(r) for r in rows])
            touched = [(t, c, t) for c, t in last_used_of(rows).items()]
            if touched:
                await cur.executemany(_pg(sql.TOUCH_CLIENT), touched)

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        async with self._conn() as conn:
            row = await (await conn.execute(_pg(sql.TOTALS), (client_id, start, end))).fetchone()
        assert row is not None
        return sql.totals_from(client_id, row)

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        query = _pg(sql.stats_query(group_by, client_id, kind))
        params = sql.stats_params(start, end, client_id, kind)
        async with self._conn() as conn:
            rows = await (await conn.execute(query.encode(), params)).fetchall()
        return sql.groups_from(rows)

    async def prune_ledger(self, before: float) -> int:
        async with self._conn() as conn:
            cur = await conn.execute(_pg(sql.PRUNE_LEDGER), (before,))
            return cur.rowcount

    # admin queries (issue 10)
    async def _fetch(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with self._conn() as conn:
            return await (await conn.execute(_pg(query).encode(), params)).fetchall()

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        rows = await self._fetch(sql.rows_query(client_id), sql.stats_params(start, end, client_id))
        return series_of((row_from_values(r) for r in rows), bucket_s, group_by)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        rows = await self._fetch(sql.recent_query(client_id), sql.recent_params(limit, client_id))
        return [row_from_values(r) for r in rows]

    async def ledger_cursor(self) -> str:
        [(end,)] = await self._fetch(sql.feed_end_query("id"), ())
        return str(int(end))

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        after = int_cursor(cursor)
        found = await self._fetch(sql.feed_query("id"), (after, limit))
        last = int(found[-1][0]) if found else after
        return [row_from_values(r[1:]) for r in found], str(last)

    # lifecycle
    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.execute("SELECT 1")

    async def close(self) -> None:
        try:
            await self._buffer.close()
        finally:
            await self._pool.close()
