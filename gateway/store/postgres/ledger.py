"""The usage ledger in PostgreSQL (``PostgresLedger``); the live feed follows the ``id`` column."""

from __future__ import annotations

from .. import sql
from ..rows import BufferedLedger, int_cursor, last_used_of, row_from_values, row_values, series_of
from ..values import GroupBy, LedgerRow, SeriesPoint, UsageGroup, UsageTotals
from .connection import PostgresPool, pg


class PostgresLedger(BufferedLedger):
    """The ``Ledger`` role on PostgreSQL. A batch of rows and the ``last_used`` of their clients
    are written in one transaction."""

    def __init__(self, pool: PostgresPool, interval_s: float = 0.5) -> None:
        self._pool = pool
        super().__init__(interval_s)

    async def _write_rows(self, rows: list[LedgerRow]) -> None:
        async with self._pool.conn() as conn:
            cur = conn.cursor()
            await cur.executemany(pg(sql.INSERT_LEDGER), [row_values(r) for r in rows])
            touched = [(t, c, t) for c, t in last_used_of(rows).items()]
            if touched:
                await cur.executemany(pg(sql.TOUCH_CLIENT), touched)

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        [row] = await self._pool.fetch(sql.TOTALS, (client_id, start, end))
        return sql.totals_from(client_id, row)

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        return sql.groups_from(await self._pool.fetch(sql.stats_query(group_by, client_id, kind),
                                                      sql.stats_params(start, end, client_id, kind)))

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        rows = await self._pool.fetch(sql.rows_query(client_id), sql.stats_params(start, end, client_id))
        return series_of((row_from_values(r) for r in rows), bucket_s, group_by)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        rows = await self._pool.fetch(sql.recent_query(client_id), sql.recent_params(limit, client_id))
        return [row_from_values(r) for r in rows]

    async def prune_ledger(self, before: float) -> int:
        async with self._pool.conn() as conn:
            cur = await conn.execute(pg(sql.PRUNE_LEDGER), (before,))
            return cur.rowcount

    async def ledger_cursor(self) -> str:
        [(end,)] = await self._pool.fetch(sql.feed_end_query("id"), ())
        return str(int(end))

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        after = int_cursor(cursor)
        found = await self._pool.fetch(sql.feed_query("id"), (after, limit))
        last = int(found[-1][0]) if found else after
        return [row_from_values(r[1:]) for r in found], str(last)
