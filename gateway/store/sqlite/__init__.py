"""The embedded default store (``SqliteStore``): one SQLite file (WAL), no server.

Every role runs its calls on the one connection of ``connection.SqliteDb`` (one transaction per
call, on the store's own thread). Several processes on one file share everything exactly, but
each write takes the file's lock: one worker keeps its hot windows and marks in memory instead
(``scales_workers`` is False; ``store.guard.SplitCounters``).
"""

from __future__ import annotations

from pathlib import Path

from ..composed import ComposedStore
from .connection import SqliteDb
from .counters import SqliteCounters
from .directory import SqliteDirectory
from .ledger import SqliteLedger
from .pins import SqlitePins


class SqliteStore(ComposedStore):
    """Every role on one SQLite file. Build it with ``await SqliteStore.open(path)``."""

    name = "sqlite"
    shared = True
    durable = True
    scales_workers = False
    serves_cache = False

    def __init__(self, path: str, ledger_interval_s: float = 0.5) -> None:
        self.path = path
        self.db = SqliteDb(path)
        super().__init__(SqliteCounters(self.db), SqlitePins(self.db), SqliteDirectory(self.db),
                         SqliteLedger(self.db, ledger_interval_s))

    @classmethod
    async def open(cls, path: str | Path, ledger_interval_s: float = 0.5) -> SqliteStore:
        """Open (creating the file and its folder) and migrate. Raises StoreDown."""
        store = cls(str(Path(path)), ledger_interval_s)
        await store.db.open()
        return store

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        if not self.db.is_open:
            return
        try:
            await super().close()
        finally:
            await self.db.close()
