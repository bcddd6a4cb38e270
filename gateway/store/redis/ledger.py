"""The usage ledger in Redis (``RedisLedger``): rows in a sorted set by request time, and the live
feed in a stream capped near ``FEED_ROWS`` entries. Queries add the rows up in the process."""

from __future__ import annotations

import json
from typing import Any

from ..common import new_id
from ..rows import (
    BufferedLedger,
    groups_of,
    last_used_of,
    newest_first,
    row_from_values,
    row_values,
    series_of,
    totals_of,
)
from ..values import GroupBy, LedgerRow, SeriesPoint, UsageGroup, UsageTotals
from .connection import RedisLink

FEED_ROWS = 10_000  # the live request log (a stream) keeps about this many rows for its readers
RECENT_SCAN_ROWS = 20_000  # recent_rows of one client looks this far back at most


def _stream_entries(found: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of one stream in an XREAD answer (RESP2: ``[[name, entries]]``; RESP3: ``{name: entries}``)."""
    if not found:
        return []
    per_stream = next(iter(found.values())) if isinstance(found, dict) else found[0][1]
    return [(str(entry_id), dict(fields)) for entry_id, fields in per_stream]


def _row(member: Any) -> LedgerRow:
    return row_from_values(json.loads(str(member))[1:])


class RedisLedger(BufferedLedger):
    """The ``Ledger`` role on Redis. A batch of rows, their feed entries and the ``last_used`` of
    their clients are written in one transaction."""

    def __init__(self, link: RedisLink, interval_s: float = 0.5) -> None:
        self._link = link
        self._key = link.key("ledger")
        self._feed = link.key("feed")
        super().__init__(interval_s)

    async def _write_rows(self, rows: list[LedgerRow]) -> None:
        link = self._link
        members = {json.dumps([new_id(), *row_values(r)]): r.time for r in rows}
        async with link.guard(), link.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._key, members)
            for member in members:
                pipe.xadd(self._feed, {"row": member}, maxlen=FEED_ROWS, approximate=True)
            for client_id, at in last_used_of(rows).items():
                await link.registered["touch"](keys=[link.key("client_last_used"), link.key("clients")],
                                               args=[client_id, repr(at)], client=pipe)
            await pipe.execute()

    async def _between(self, start: float, end: float, client_id: str | None = None) -> list[LedgerRow]:
        async with self._link.guard():
            members = await self._link.redis.zrangebyscore(self._key, start, end)
        rows = (_row(m) for m in members)
        return [r for r in rows if client_id is None or r.client_id == client_id]

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        return totals_of(client_id, await self._between(start, end, client_id))

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        rows = await self._between(start, end, client_id)
        return groups_of(group_by, (r for r in rows if kind is None or r.kind == kind))

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        return series_of(await self._between(start, end, client_id), bucket_s, group_by)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        found: list[LedgerRow] = []
        page = max(limit, 200)
        for offset in range(0, RECENT_SCAN_ROWS, page):  # newest first, a page at a time, until enough
            async with self._link.guard():
                members = await self._link.redis.zrevrange(self._key, offset, offset + page - 1)
            found += [r for r in map(_row, members) if client_id is None or r.client_id == client_id]
            if len(found) >= limit or len(members) < page:
                break
        return newest_first(found, limit)

    async def prune_ledger(self, before: float) -> int:
        async with self._link.guard():
            return int(await self._link.redis.zremrangebyscore(self._key, "-inf", f"({before!r}"))

    async def ledger_cursor(self) -> str:
        async with self._link.guard():
            last = await self._link.redis.xrevrange(self._feed, count=1)
        return str(last[0][0]) if last else "0-0"

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        async with self._link.guard():
            found: Any = await self._link.redis.xread({self._feed: cursor or "0-0"}, count=limit)
        entries = _stream_entries(found)
        rows = [_row(fields["row"]) for _, fields in entries]
        return rows, str(entries[-1][0]) if entries else (cursor or "0-0")
