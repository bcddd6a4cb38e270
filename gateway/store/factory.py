"""Build the configured stores: the runtime store (windows, marks, spend) and the ledger store
(usage ledger, client directory), one instance when both roles name the same backend."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..server.tasks import cancel_and_wait
from .base import StoreError
from .composed import ComposedStore
from .config import DEFAULT_SQLITE_PATH, Backend, Storage
from .memory import AsyncMemoryStore
from .plugins import PLUGIN_TYPES

log = logging.getLogger("gateway.store")
PRUNE_EVERY_S = 3600.0


def sqlite_path(spec: Backend, base_dir: Path | None = None, data_dir: Path | None = None) -> Path:
    """The file of a SQLite backend (see ``open_backend``)."""
    if spec.path is None and data_dir is not None:
        return data_dir / "gateway.db"
    path = Path(spec.path or DEFAULT_SQLITE_PATH)
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def backend_class(kind: str) -> type[ComposedStore]:
    """The class of a backend type: what its capability flags say before it is opened (its
    module is imported only when asked for; a plugin's is its ``StoreType.store_class``)."""
    if kind in PLUGIN_TYPES:
        return PLUGIN_TYPES[kind].store_class
    if kind == "sqlite":
        from .sqlite import SqliteStore

        return SqliteStore
    if kind == "redis":
        from .redis import RedisStore

        return RedisStore
    if kind == "postgres":
        from .postgres import PostgresStore

        return PostgresStore
    return AsyncMemoryStore


async def open_backend(spec: Backend, flush_s: float = 0.5, base_dir: Path | None = None,
                       data_dir: Path | None = None) -> ComposedStore:
    """Connect one backend (and migrate its schema). Raises StoreDown with a clear message.

    A SQLite ``path`` that is relative is taken from ``base_dir`` (default: the working dir); with
    no ``path`` the file is ``gateway.db`` in ``data_dir`` (GATEWAY_DATA_DIR), else data/gateway.db."""
    if spec.type in PLUGIN_TYPES:
        assert spec.options is not None  # the schema validated the plugin's fields into it
        return await PLUGIN_TYPES[spec.type].open(spec.options, flush_s, data_dir)
    if spec.type == "memory":
        return AsyncMemoryStore(ledger_interval_s=flush_s)
    if spec.type == "sqlite":
        from .sqlite import SqliteStore

        return await SqliteStore.open(sqlite_path(spec, base_dir, data_dir), ledger_interval_s=flush_s)
    if spec.type == "redis":
        from .redis import RedisStore

        assert spec.addr is not None  # the schema requires it
        return await RedisStore.open(spec.addr, prefix=spec.prefix or "gw:", ledger_interval_s=flush_s)
    from .postgres import PostgresStore

    assert spec.dsn is not None
    return await PostgresStore.open(spec.dsn, ledger_interval_s=flush_s)


@dataclass
class Stores:
    """The opened backends: ``runtime`` for windows, marks, spend and pins, ``ledger`` for the usage
    ledger and the client directory (the same object when both name one backend)."""

    runtime: ComposedStore
    ledger: ComposedStore
    storage: Storage
    _pruner: asyncio.Task[None] | None = None

    def start_retention(self) -> None:
        """Delete ledger rows past ``retention_days`` now and every hour (on the running loop)."""
        if self.storage.retention_days is not None and self._pruner is None:
            self._pruner = asyncio.get_running_loop().create_task(self._prune_forever(), name="ledger-retention")

    async def prune(self) -> int:
        days = self.storage.retention_days
        return 0 if days is None else await self.ledger.prune_ledger(time.time() - days * 86400)

    async def _prune_forever(self) -> None:
        while True:
            try:
                removed = await self.prune()
                if removed:
                    log.info("usage ledger retention: old rows deleted", extra={"rows": removed})
            except StoreError as exc:
                log.warning("usage ledger retention failed", extra={"error": str(exc)})
            await asyncio.sleep(PRUNE_EVERY_S)

    async def close(self) -> None:
        await cancel_and_wait(self._pruner)
        self._pruner = None
        await self.runtime.close()
        if self.ledger is not self.runtime:
            await self.ledger.close()


async def open_stores(storage: Storage, base_dir: Path | None = None, data_dir: Path | None = None) -> Stores:
    """Open the runtime and ledger stores ``storage`` names. Raises StoreDown (nothing left open)."""
    runtime_spec, ledger_spec = storage.runtime_backend(), storage.ledger_backend()
    runtime = await open_backend(runtime_spec, storage.ledger_flush_s, base_dir, data_dir)
    if ledger_spec.same_as(runtime_spec):
        return Stores(runtime, runtime, storage)
    try:
        ledger = await open_backend(ledger_spec, storage.ledger_flush_s, base_dir, data_dir)
    except BaseException:
        await runtime.close()
        raise
    return Stores(runtime, ledger, storage)
