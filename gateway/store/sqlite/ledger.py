"""The usage ledger in the SQLite file (``SqliteLedger``); the live feed follows the rowid."""

from __future__ import annotations

from typing import Any

from .. import sql
from ..rows import BufferedLedger, int_cursor, last_used_of, row_from_values, row_values, series_of
from ..values import GroupBy, LedgerRow, SeriesPoint, UsageGroup, UsageTotals
from .connection import Conn, SqliteDb


class SqliteLedger(BufferedLedger):
    """The ``Ledger`` role on a SQLite file. A batch of rows and the ``last_used`` of their clients
    are written in one transaction."""

    def __init__(self, db: SqliteDb, interval_s: float = 0.5) -> None:
        self._db = db
        super().__init__(interval_s)

    async def _write_rows(self, rows: list[LedgerRow]) -> None:
        def run(conn: Conn) -> None:
            conn.executemany(sql.INSERT_LEDGER, [row_values(r) for r in rows])
            conn.executemany(sql.TOUCH_CLIENT, [(t, c, t) for c, t in last_used_of(rows).items()])
        await self._db.call(run)

    async def _read(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._db.call(lambda c: c.execute(query, params).fetchall(), write=False)

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        [row] = await self._read(sql.TOTALS, (client_id, start, end))
        return sql.totals_from(client_id, row)

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        return sql.groups_from(await self._read(sql.stats_query(group_by, client_id, kind),
                                                sql.stats_params(start, end, client_id, kind)))

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        rows = await self._read(sql.rows_query(client_id), sql.stats_params(start, end, client_id))
        return series_of((row_from_values(r) for r in rows), bucket_s, group_by)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        rows = await self._read(sql.recent_query(client_id), sql.recent_params(limit, client_id))
        return [row_from_values(r) for r in rows]

    async def prune_ledger(self, before: float) -> int:
        return await self._db.call(lambda c: c.execute(sql.PRUNE_LEDGER, (before,)).rowcount)

    async def ledger_cursor(self) -> str:
        [row] = await self._read(sql.feed_end_query("rowid"), ())
        return str(int(row[0]))

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        after = int_cursor(cursor)
        found = await self._read(sql.feed_query("rowid"), (after, limit))
        last = int(found[-1][0]) if found else after
        return [row_from_values(r[1:]) for r in found], str(last)
