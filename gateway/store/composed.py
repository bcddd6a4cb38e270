"""``ComposedStore``: a ``Store`` made of one object per role (see the package docstring).

A backend subclasses it: builds its role objects on one shared connection, passes them here,
sets the capability flags and adds ``ping`` (and ``close`` when it has connections to release).
Every role method of ``Store`` is answered by the role object that owns it; nothing else is
written here, once, for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from .base import Counters, Directory, Ledger, Pins, StoreError
from .values import (
    Ask,
    Batch,
    BudgetAsk,
    ClientRecord,
    GroupBy,
    LedgerRow,
    Reservation,
    SeriesPoint,
    Spend,
    UsageGroup,
    UsageTotals,
    WindowResult,
)

if TYPE_CHECKING:
    from ..cache.base import CacheBackend


class ComposedStore:
    """The roles ``counters``, ``pins``, ``directory`` and ``ledger``, answering as one ``Store``."""

    name: ClassVar[str]
    shared: ClassVar[bool]
    durable: ClassVar[bool]
    scales_workers: ClassVar[bool]
    serves_cache: ClassVar[bool]

    def __init__(self, counters: Counters, pins: Pins, directory: Directory, ledger: Ledger) -> None:
        self.counters = counters
        self.pins = pins
        self.directory = directory
        self.ledger = ledger

    # lifecycle: a backend with connections adds its own ping and close (calling this close first)
    def response_cache(self) -> CacheBackend:
        raise StoreError(f"the {self.name} store serves no response cache")

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        await self.ledger.close()

    # counters
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        return await self.counters.check_and_reserve(window, limit, need, window_s)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        await self.counters.settle(reservation, actual)

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        return await self.counters.reserve_all(asks, budget)

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        await self.counters.settle_all(settles)

    async def set_mark(self, name: str, ttl_s: float) -> float:
        return await self.counters.set_mark(name, ttl_s)

    async def clear_mark(self, name: str) -> None:
        await self.counters.clear_mark(name)

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        return await self.counters.marks_remaining(names)

    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        await self.counters.add_spend(client_id, usd, at)

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        return await self.counters.spend(client_id, at)

    # pins
    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        await self.pins.set_pin(object_id, value, ttl_s)

    async def get_pin(self, object_id: str) -> str | None:
        return await self.pins.get_pin(object_id)

    async def clear_pin(self, object_id: str) -> None:
        await self.pins.clear_pin(object_id)

    # directory
    async def create_client(self, record: ClientRecord) -> ClientRecord:
        return await self.directory.create_client(record)

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return await self.directory.get_client(client_id)

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        return await self.directory.client_by_digest(digest)

    async def list_clients(self) -> list[ClientRecord]:
        return await self.directory.list_clients()

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        return await self.directory.update_client(record)

    async def delete_client(self, client_id: str) -> bool:
        return await self.directory.delete_client(client_id)

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        return await self.directory.rotate_client(client_id, new_digest)

    async def directory_version(self) -> int:
        return await self.directory.directory_version()

    # ledger
    def record(self, row: LedgerRow) -> None:
        self.ledger.record(row)

    async def flush(self) -> int:
        return await self.ledger.flush()

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        return await self.ledger.usage_totals(client_id, start, end)

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        return await self.ledger.usage_stats(group_by, start, end, client_id, kind)

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        return await self.ledger.usage_series(bucket_s, start, end, group_by, client_id)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        return await self.ledger.recent_rows(limit, client_id)

    async def prune_ledger(self, before: float) -> int:
        return await self.ledger.prune_ledger(before)

    async def ledger_cursor(self) -> str:
        return await self.ledger.ledger_cursor()

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        return await self.ledger.rows_after(cursor, limit)
