"""What every backend's ledger shares: the columns of a row, what rows add up to (totals, groups,
time series, the latest), and ``LedgerBuffer``, which writes rows in batches off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..server.tasks import cancel_and_wait
from .base import StoreError
from .values import GROUP_COLUMNS, GroupBy, LedgerRow, SeriesPoint, UsageGroup, UsageTotals

log = logging.getLogger("gateway.store")

LEDGER_COLUMNS = ("time", "request_id", "client_id", "provider", "model", "key_label", "status", "error_code",
                  "tokens_in", "tokens_out", "cost_usd", "latency_ms", "overhead_ms", "stream", "cache_hit",
                  # added in schema version 3 (a row written before has none of them: their defaults)
                  "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "kind", "bytes_in", "bytes_out")


def row_values(row: LedgerRow) -> tuple[Any, ...]:
    return tuple(getattr(row, c) for c in LEDGER_COLUMNS)


def row_from_values(values: Sequence[Any]) -> LedgerRow:
    """A row from its column values; an older row with fewer columns takes the defaults of the rest."""
    data = dict(zip(LEDGER_COLUMNS, values, strict=False))
    data["stream"], data["cache_hit"] = bool(data["stream"]), bool(data["cache_hit"])
    return LedgerRow(**data)


def totals_of(client_id: str, rows: Iterable[LedgerRow]) -> UsageTotals:
    count = ok = tokens = 0
    cost = latency = 0.0
    last: float | None = None
    for row in rows:
        count += 1
        ok += row.ok
        tokens += row.tokens_in + row.tokens_out
        cost += row.spent_usd
        latency += row.latency_ms
        last = row.time if last is None else max(last, row.time)
    return UsageTotals(client_id, count, tokens, cost, ok / count if count else 0.0,
                       latency / count if count else 0.0, last)


def groups_of(group_by: GroupBy, rows: Iterable[LedgerRow]) -> list[UsageGroup]:
    column = GROUP_COLUMNS[group_by]
    acc: dict[str, list[float]] = {}
    for row in rows:
        a = acc.setdefault(str(getattr(row, column)), [0, 0, 0, 0.0, 0, 0.0, 0, 0.0])
        a[0] += 1
        a[1] += row.tokens_in
        a[2] += row.tokens_out
        a[3] += row.spent_usd
        a[4] += not row.ok
        a[5] += row.latency_ms
        if row.cache_hit:
            a[6] += 1
            a[7] += row.cost_usd
    return [UsageGroup(k, int(a[0]), int(a[1]), int(a[2]), a[3], int(a[4]), a[5] / a[0], int(a[6]), a[7])
            for k, a in sorted(acc.items())]


def last_used_of(rows: Iterable[LedgerRow]) -> dict[str, float]:
    """The latest request time of each client among ``rows``."""
    last: dict[str, float] = {}
    for row in rows:
        if row.time > last.get(row.client_id, 0.0):
            last[row.client_id] = row.time
    return last


class LedgerBuffer:
    """Rows waiting to be written. ``record`` appends and returns; a task started on the running
    loop writes a batch every ``interval_s`` (sooner once ``batch`` rows wait). A failed write keeps
    the rows for the next try; past ``max_rows`` waiting, the oldest are dropped and logged."""

    def __init__(self, write: Callable[[list[LedgerRow]], Awaitable[None]], interval_s: float = 0.5,
                 batch: int = 500, max_rows: int = 100_000) -> None:
        self._write = write
        self.interval_s = interval_s
        self.batch = batch
        self.max_rows = max_rows
        self._rows: list[LedgerRow] = []
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._rows)

    def record(self, row: LedgerRow) -> None:
        self._rows.append(row)
        if len(self._rows) > self.max_rows:
            excess = len(self._rows) - self.max_rows
            del self._rows[:excess]
            self.dropped += excess
            log.error("usage ledger buffer full: oldest rows dropped", extra={"dropped": self.dropped})
        self._start()
        if len(self._rows) >= self.batch and self._wake is not None:
            self._wake.set()

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the rows wait for the next flush
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name="ledger-flush")

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except StoreError as exc:
                log.warning("usage ledger write failed; rows kept for the next try",
                            extra={"error": str(exc), "waiting": len(self._rows)})

    async def flush(self) -> int:
        if self._lock is None:
            self._lock = asyncio.Lock()
        written = 0
        async with self._lock:
            while self._rows:
                size = self.batch * 4
                rows, self._rows = self._rows[:size], self._rows[size:]
                try:
                    await self._write(rows)
                except BaseException:
                    self._rows = rows + self._rows  # kept, in order, for the next try
                    raise
                written += len(rows)
        return written

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.flush()


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0 < q <= 1) of sorted values by nearest rank; 0.0 for none."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[rank - 1])


def series_of(rows: Iterable[LedgerRow], bucket_s: float, group_by: GroupBy | None) -> list[SeriesPoint]:
    """``rows`` counted per group and bucket of ``bucket_s`` seconds (see ``Store.usage_series``)."""
    if bucket_s <= 0:
        raise ValueError("bucket_s must be > 0")
    column = GROUP_COLUMNS[group_by] if group_by is not None else None
    buckets: dict[tuple[str, float], list[LedgerRow]] = {}
    for row in rows:
        key = str(getattr(row, column)) if column is not None else ""
        buckets.setdefault((key, math.floor(row.time / bucket_s) * bucket_s), []).append(row)
    points = []
    for (key, t), members in sorted(buckets.items()):
        latencies = sorted(r.latency_ms for r in members)
        overheads = sorted(r.overhead_ms for r in members)
        points.append(SeriesPoint(
            key=key, t=t, requests=len(members), errors=sum(not r.ok for r in members),
            tokens=sum(r.tokens_in + r.tokens_out for r in members), cost=sum(r.spent_usd for r in members),
            p50_ms=nearest_rank(latencies, 0.5), p99_ms=nearest_rank(latencies, 0.99),
            overhead_p50_ms=nearest_rank(overheads, 0.5)))
    return points


def newest_first(rows: Iterable[LedgerRow], limit: int, client_id: str | None = None) -> list[LedgerRow]:
    """The ``limit`` latest of ``rows`` by request time (of one client, if given), newest first."""
    chosen = [r for r in rows if client_id is None or r.client_id == client_id]
    chosen.sort(key=lambda r: r.time, reverse=True)
    return chosen[:max(0, limit)]


def int_cursor(cursor: str) -> int:
    """A numeric feed cursor (memory, SQLite, PostgreSQL); a foreign or broken one reads as the start."""
    return int(cursor) if cursor.isdigit() else 0
