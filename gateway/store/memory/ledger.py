"""The usage ledger in this process (``MemoryLedger``), and the live feed of its latest rows."""

from __future__ import annotations

from collections import deque

from ..rows import (
    BufferedLedger,
    groups_of,
    int_cursor,
    last_used_of,
    newest_first,
    series_of,
    totals_of,
)
from ..values import GroupBy, LedgerRow, SeriesPoint, UsageGroup, UsageTotals
from .directory import MemoryDirectory

FEED_ROWS = 10_000  # the live request log keeps this many rows for its readers


class MemoryLedger(BufferedLedger):
    """The ``Ledger`` role for one process. Written rows move the ``last_used`` of their clients
    in ``directory``."""

    def __init__(self, directory: MemoryDirectory, interval_s: float = 0.5) -> None:
        self._directory = directory
        self._rows: list[LedgerRow] = []
        super().__init__(interval_s)
        self._feed: deque[tuple[int, LedgerRow]] = deque(maxlen=FEED_ROWS)  # the live request log
        self._feed_seq = 0

    async def _write_rows(self, rows: list[LedgerRow]) -> None:
        self._rows.extend(rows)
        for row in rows:
            self._feed_seq += 1
            self._feed.append((self._feed_seq, row))
        self._directory.touch(last_used_of(rows))

    def _between(self, start: float, end: float, client_id: str | None = None) -> list[LedgerRow]:
        return [r for r in self._rows if start <= r.time <= end and (client_id is None or r.client_id == client_id)]

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        return totals_of(client_id, self._between(start, end, client_id))

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        return groups_of(group_by, (r for r in self._between(start, end, client_id) if kind is None or r.kind == kind))

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        return series_of(self._between(start, end, client_id), bucket_s, group_by)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        return newest_first(self._rows, limit, client_id)

    async def prune_ledger(self, before: float) -> int:
        kept = [r for r in self._rows if r.time >= before]
        removed = len(self._rows) - len(kept)
        self._rows = kept
        return removed

    async def ledger_cursor(self) -> str:
        return str(self._feed_seq)

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        after = min(int_cursor(cursor), self._feed_seq)  # a cursor from before a restart: from now on
        found = [(seq, row) for seq, row in self._feed if seq > after][:limit]
        return [row for _, row in found], str(found[-1][0] if found else max(after, 0))
