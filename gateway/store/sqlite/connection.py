"""The SQLite store's one connection (``SqliteDb``): its schema, and one transaction per call on
one dedicated thread that owns the connection, so the event loop never waits on the disk.

Writers take the database lock at the start (``BEGIN IMMEDIATE``), so several processes on one
file share windows, marks and spend exactly.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .. import sql
from ..base import StoreDown

T = TypeVar("T")
Conn = sqlite3.Connection

# ``holds`` is no longer written or read; it stays so a gateway of an earlier version on the same
# file still finds it
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
    latency_ms REAL NOT NULL, overhead_ms REAL NOT NULL, stream INTEGER NOT NULL, cache_hit INTEGER NOT NULL);
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
        present = {row[1] for row in conn.execute("PRAGMA table_info(ledger)")}
        for column, kind in sql.LEDGER_V3:
            if column not in present:
                conn.execute(f"ALTER TABLE ledger ADD COLUMN {column} {kind}")
        conn.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION}")


class SqliteDb:
    """One SQLite file, its connection and the thread that runs every call. ``open`` connects
    and migrates; ``call`` runs a function in one transaction."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: Conn | None = None

    async def open(self) -> None:
        """Connect (creating the file and its folder) and migrate. Raises StoreDown."""
        target = Path(self.path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._conn = await self._on_thread(lambda: _connect(self.path))
        except (OSError, sqlite3.Error) as exc:
            self._executor.shutdown(wait=False)
            raise StoreDown(f"sqlite store {target}: cannot open: {exc}") from exc
        await self.call(_migrate)

    async def _on_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def call(self, fn: Callable[[Conn], T], write: bool = True) -> T:
        """Run ``fn`` in one transaction on the store's thread."""
        conn = self._conn
        if conn is None:
            raise StoreDown(f"sqlite store {self.path}: closed")

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
            raise StoreDown(f"sqlite store {self.path}: {exc}") from exc

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def ping(self) -> None:
        await self.call(lambda c: c.execute("SELECT 1").fetchone(), write=False)

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)
