"""The durable shared store (``PostgresStore``): every role on one PostgreSQL database, through
psycopg 3 (async) and its connection pool (``connection.PostgresPool``), each call one
transaction, time from the server's clock."""

from __future__ import annotations

from ..composed import ComposedStore
from .connection import PostgresPool
from .counters import PostgresCounters
from .directory import PostgresDirectory
from .ledger import PostgresLedger
from .pins import PostgresPins


class PostgresStore(ComposedStore):
    """Every role on one PostgreSQL database. Build it with ``await PostgresStore.open(dsn)``."""

    name = "postgres"
    shared = True
    durable = True
    scales_workers = True
    serves_cache = False

    def __init__(self, dsn: str, ledger_interval_s: float = 0.5, max_connections: int = 10,
                 timeout_s: float = 3.0) -> None:
        self.pool = PostgresPool(dsn, max_connections, timeout_s)
        self.where = self.pool.where
        super().__init__(PostgresCounters(self.pool), PostgresPins(self.pool), PostgresDirectory(self.pool),
                         PostgresLedger(self.pool, ledger_interval_s))

    @classmethod
    async def open(cls, dsn: str, ledger_interval_s: float = 0.5, connect_timeout_s: float = 10.0,
                   timeout_s: float = 3.0) -> PostgresStore:
        """Connect and migrate. Raises StoreDown."""
        store = cls(dsn, ledger_interval_s, timeout_s=timeout_s)
        await store.pool.open(connect_timeout_s)
        return store

    async def ping(self) -> None:
        await self.pool.ping()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self.pool.close()
