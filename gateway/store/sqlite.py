"""The embedded default store: one SQLite file (WAL), no server.

Every call runs on one dedicated thread that owns the connection, so the event loop never
waits on the disk. Each call is one transaction; writers take the database lock at the start
(``BEGIN IMMEDIATE``), so several processes on one file share windows, marks and spend exactly.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

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
Conn = sqlite3.Connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (win TEXT NOT NULL, entry TEXT NOT NULL, at REAL NOT NULL,
    amount REAL NOT NULL, PRIMARY KEY (win, entry)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS windows_at ON windows (win, at);
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spend (client_id TEXT NOT NULL, period TEXT NOT NULL, usd REAL NOT NULL,
    PRIMARY KEY (client_id, period)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holds (client_id TEXT NOT NULL, hold_id TEXT NOT NULL, usd REAL NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (client_id, hold_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, key_digest BLOB NOT NULL UNIQUE, data TEXT NOT NULL,
    last_used REAL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('directory_version', 0);
CREATE TABLE IF NOT EXISTS ledger (time REAL NOT NULL, request_id TEXT NOT NULL, client_id TEXT NOT NULL,
    provider TEXT NOT NULL, model TEXT NOT NULL, key_label TEXT NOT NULL, status INTEGER NOT NULL,
    error_code TEXT, tokens_in INTEGER NOT NULL, tokens_out INTEGER NOT NULL, cost_usd REAL NOT NULL,
    latency_ms REAL NOT NULL, overhead_ms REAL NOT NULL, stream INTEGER NOT NULL, cache_hit INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'model', bytes_in INTEGER NOT NULL DEFAULT 0, bytes_out INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS ledger_time ON ledger (time);
CREATE INDEX IF NOT EXISTS ledger_client_time ON ledger (client_id, time);
CREATE TABLE IF NOT EXISTS pins (id TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pins_expires ON pins (expires);
"""


def _connect(path: str) -> Conn:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # durable across a process crash; WAL syncs at checkpoints
    return conn


def _migrate(conn: Conn) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < sql.SCHEMA_VERSION:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        _add_ledger_columns(conn)
        conn.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION}")


def _add_ledger_columns(conn: Conn) -> None:
    """The columns a ledger table made by an older version lacks (``sql.LEDGER_ADDED``)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
    for name, definition in sql.LEDGER_ADDED:
        if name not in have:
            conn.execute(f"ALTER TABLE ledger ADD COLUMN {name} {definition}")


def _record(data: str, last_used: float | None) -> ClientRecord:
    return replace(client_from_dict(json.loads(data)), last_used=last_used)


def _client_json(record: ClientRecord) -> str:
    data = client_to_dict(record)
    data.pop("last_used")
    return json.dumps(data)


def _bump_version(conn: Conn) -> None:
    conn.execute("UPDATE meta SET value = value + 1 WHERE name = 'directory_version'")


class SqliteStore:
    """The ``Store`` contract on one SQLite file. Build it with ``await SqliteStore.open(path)``."""

    name = "sqlite"

    def __init__(self, path: str, ledger_interval_s: float = 0.5) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: Conn | None = None
        self._buffer = LedgerBuffer(self._write_rows, interval_s=ledger_interval_s)

    @classmethod
    async def open(cls, path: str | Path, ledger_interval_s: float = 0.5) -> SqliteStore:
        target = Path(path)
        store = cls(str(target), ledger_interval_s)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            store._conn = await store._on_thread(lambda: _connect(str(target)))
        except (OSError, sqlite3.Error) as exc:
            store._executor.shutdown(wait=False)
            raise StoreUnavailable(f"sqlite store {target}: cannot open: {exc}") from exc
        await store._call(_migrate)
        return store

    async def _on_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _call(self, fn: Callable[[Conn], T], write: bool = True) -> T:
        """Run ``fn`` in one transaction on the store's thread."""
        conn = self._conn
        if conn is None:
            raise StoreUnavailable(f"sqlite store {self.path}: closed")

        def tx() -> T:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        try:
            return await self._on_thread(tx)
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise
            raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc

    # windows
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        def run(conn: Conn) -> WindowResult:
            now = time.time()
            conn.execute("DELETE FROM windows WHERE win = ? AND at <= ?", (window, now - window_s))
            used, oldest = conn.execute("SELECT coalesce(sum(amount), 0), min(at) FROM windows WHERE win = ?",
                                        (window,)).fetchone()
            reset = window_s if oldest is None else max(0.0, oldest + window_s - now)
            if used + need <= limit:
                entry = new_id()
                conn.execute("INSERT INTO windows VALUES (?, ?, ?, ?)", (window, entry, now, need))
                return WindowResult(Reservation(window, entry, need, now, window_s), 0.0, used + need, reset)
            entries = conn.execute("SELECT at, amount FROM windows WHERE win = ? ORDER BY at", (window,))
            return WindowResult(None, window_wait(entries, used, now, window_s, limit, need), used, reset)
        return await self._call(run)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        key = (reservation.window, reservation.entry)
        if actual <= 0:
            await self._call(lambda c: c.execute("DELETE FROM windows WHERE win = ? AND entry = ?", key))
        else:
            await self._call(lambda c: c.execute("UPDATE windows SET amount = ? WHERE win = ? AND entry = ?",
                                                 (actual, *key)))

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        return await reserve_in_turn(self, asks, budget)

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        await settle_in_turn(self, settles)

    # marks
    async def set_mark(self, name: str, ttl_s: float) -> float:
        def run(conn: Conn) -> float:
            now = time.time()
            conn.execute("INSERT INTO marks VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                         "until = max(until, excluded.until)", (name, now + ttl_s))
            until: float = conn.execute("SELECT until FROM marks WHERE name = ?", (name,)).fetchone()[0]
            return until - now
        return await self._call(run)

    async def clear_mark(self, name: str) -> None:
        await self._call(lambda c: c.execute("DELETE FROM marks WHERE name = ?", (name,)))

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        def run(conn: Conn) -> list[float]:
            now = time.time()
            marks = {}
            for name in names:
                row = conn.execute("SELECT until FROM marks WHERE name = ?", (name,)).fetchone()
                marks[name] = 0.0 if row is None else max(0.0, row[0] - now)
            return [marks[n] for n in names]
        return await self._call(run, write=False)

    # spend
    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        def run(conn: Conn) -> None:
            for period in periods(time.time() if at is None else at):
                conn.execute("INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT (client_id, period) DO UPDATE SET "
                             "usd = usd + excluded.usd", (client_id, period, usd))
        await self._call(run)

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        def run(conn: Conn) -> Spend:
            now = time.time()
            day, month = periods(now if at is None else at)
            found = dict(conn.execute("SELECT period, usd FROM spend WHERE client_id = ? AND period IN (?, ?)",
                                      (client_id, day, month)).fetchall())
            held = conn.execute("SELECT coalesce(sum(usd), 0) FROM holds WHERE client_id = ? AND expires > ?",
                                (client_id, now)).fetchone()[0]
            return Spend(found.get(day, 0.0), found.get(month, 0.0), float(held))
        return await self._call(run, write=False)

    async def hold_spend(self, client_id: str, usd: float, ttl_s: float) -> Hold:
        hold = Hold(client_id, new_id(), usd)

        def run(conn: Conn) -> None:
            now = time.time()
            conn.execute("DELETE FROM holds WHERE client_id = ? AND expires <= ?", (client_id, now))
            conn.execute("INSERT INTO holds VALUES (?, ?, ?, ?)", (client_id, hold.hold_id, usd, now + ttl_s))
        await self._call(run)
        return hold

    async def release_spend(self, hold: Hold) -> None:
        await self._call(lambda c: c.execute("DELETE FROM holds WHERE client_id = ? AND hold_id = ?",
                                             (hold.client_id, hold.hold_id)))

    # object pins
    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        def run(conn: Conn) -> None:
            now = time.time()
            conn.execute("DELETE FROM pins WHERE expires <= ?", (now,))  # by the index: what expired since
            conn.execute("INSERT INTO pins VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                         "value = excluded.value, expires = excluded.expires", (object_id, value, now + ttl_s))
        await self._call(run)

    async def get_pin(self, object_id: str) -> str | None:
        row = await self._call(lambda c: c.execute("SELECT value FROM pins WHERE id = ? AND expires > ?",
                                                   (object_id, time.time())).fetchone(), write=False)
        return None if row is None else str(row[0])

    async def clear_pin(self, object_id: str) -> None:
        await self._call(lambda c: c.execute("DELETE FROM pins WHERE id = ?", (object_id,)))

    # client directory
    async def create_client(self, record: ClientRecord) -> ClientRecord:
        if not record.created_at:
            record = replace(record, created_at=time.time())

        def run(conn: Conn) -> None:
            try:
                conn.execute("INSERT INTO clients VALUES (?, ?, ?, ?)",
                             (record.id, record.key_digest, _client_json(record), record.last_used))
            except sqlite3.IntegrityError as exc:
                raise ClientExists(f"a client with id {record.id!r} or the same key already exists") from exc
            _bump_version(conn)
        await self._call(run)
        return record

    async def get_client(self, client_id: str) -> ClientRecord | None:
        row = await self._call(lambda c: c.execute("SELECT data, last_used FROM clients WHERE id = ?",
                                                   (client_id,)).fetchone(), write=False)
        return None if row is None else _record(row[0], row[1])

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        row = await self._call(lambda c: c.execute("SELECT data, last_used FROM clients WHERE key_digest = ?",
                                                   (digest,)).fetchone(), write=False)
        return None if row is None else _record(row[0], row[1])

    async def list_clients(self) -> list[ClientRecord]:
        rows = await self._call(lambda c: c.execute("SELECT data, last_used FROM clients ORDER BY id").fetchall(),
                                write=False)
        return [_record(data, last_used) for data, last_used in rows]

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        def run(conn: Conn) -> ClientRecord:
            row = conn.execute("SELECT data, last_used FROM clients WHERE id = ?", (record.id,)).fetchone()
            if row is None:
                raise ClientNotFound(f"no client with id {record.id!r}")
            old = _record(row[0], row[1])
            new = replace(record, key_digest=old.key_digest, created_at=old.created_at, last_used=old.last_used)
            conn.execute("UPDATE clients SET data = ? WHERE id = ?", (_client_json(new), record.id))
            _bump_version(conn)
            return new
        return await self._call(run)

    async def delete_client(self, client_id: str) -> bool:
        def run(conn: Conn) -> bool:
            gone = conn.execute("DELETE FROM clients WHERE id = ?", (client_id,)).rowcount > 0
            if gone:
                _bump_version(conn)
            return gone
        return await self._call(run)

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        def run(conn: Conn) -> ClientRecord:
            row = conn.execute("SELECT data, last_used FROM clients WHERE id = ?", (client_id,)).fetchone()
            if row is None:
                raise ClientNotFound(f"no client with id {client_id!r}")
            new = replace(_record(row[0], row[1]), key_digest=new_digest)
            try:
                conn.execute("UPDATE clients SET key_digest = ?, data = ? WHERE id = ?",
                             (new_digest, _client_json(new), client_id))
            except sqlite3.IntegrityError as exc:
                raise ClientExists("another client has this key") from exc
            _bump_version(conn)
            return new
        return await self._call(run)

    async def directory_version(self) -> int:
        row = await self._call(lambda c: c.execute("SELECT value FROM meta WHERE name = 'directory_version'")
                               .fetchone(), write=False)
        return int(row[0])

    # ledger
    def record(self, row: LedgerRow) -> None:
        self._buffer.record(row)

    async def flush(self) -> int:
        return await self._buffer.flush()

    async def _write_rows(self, rows: list[LedgerRow]) -> None:
        def run(conn: Conn) -> None:
            conn.executemany(sql.INSERT_LEDGER, [row_values(r) for r in rows])
            conn.executemany(sql.TOUCH_CLIENT, [(t, c, t) for c, t in last_used_of(rows).items()])
        await self._call(run)

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        row = await self._call(lambda c: c.execute(sql.TOTALS, (client_id, start, end)).fetchone(), write=False)
        return sql.totals_from(client_id, row)

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        query, params = sql.stats_query(group_by, client_id, kind), sql.stats_params(start, end, client_id, kind)
        return sql.groups_from(await self._call(lambda c: c.execute(query, params).fetchall(), write=False))

    async def prune_ledger(self, before: float) -> int:
        return await self._call(lambda c: c.execute(sql.PRUNE_LEDGER, (before,)).rowcount)

    # admin queries (issue 10)
    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        query = sql.rows_query(client_id)
        params = sql.stats_params(start, end, client_id)
        rows = await self._call(lambda c: c.execute(query, params).fetchall(), write=False)
        return series_of((row_from_values(r) for r in rows), bucket_s, group_by)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        query, params = sql.recent_query(client_id), sql.recent_params(limit, client_id)
        rows = await self._call(lambda c: c.execute(query, params).fetchall(), write=False)
        return [row_from_values(r) for r in rows]

    async def ledger_cursor(self) -> str:
        row = await self._call(lambda c: c.execute(sql.feed_end_query("rowid")).fetchone(), write=False)
        return str(int(row[0]))

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        params = (int_cursor(cursor), limit)
        found = await self._call(lambda c: c.execute(sql.feed_query("rowid"), params).fetchall(), write=False)
        last = int(found[-1][0]) if found else params[0]
        return [row_from_values(r[1:]) for r in found], str(last)

    # lifecycle
    async def ping(self) -> None:
        await self._call(lambda c: c.execute("SELECT 1").fetchone(), write=False)

    async def close(self) -> None:
        if self._conn is None:
            return
        try:
            await self._buffer.close()
        finally:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
            self._executor.shutdown(wait=True)
