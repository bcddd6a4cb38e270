"""What every backend shares: UTC periods, the window arithmetic, client record encoding,
ledger aggregation, and the ledger buffer that writes rows in batches off the request path."""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..core.policy import Budget, Limits
from ..server.tasks import cancel_and_wait
from .base import (
    GROUP_COLUMNS,
    Ask,
    Batch,
    BudgetAsk,
    ClientRecord,
    Counters,
    GroupBy,
    LedgerRow,
    Reservation,
    SeriesPoint,
    StoreError,
    UsageGroup,
    UsageTotals,
    WindowResult,
)

log = logging.getLogger("gateway.store")

LEDGER_COLUMNS = ("time", "request_id", "client_id", "provider", "model", "key_label", "status", "error_code",
                  "tokens_in", "tokens_out", "cost_usd", "latency_ms", "overhead_ms", "stream", "cache_hit",
                  "kind", "bytes_in", "bytes_out")
MODEL_COLUMNS = 15  # the columns before MCP tool calls were kept: older rows (Redis) hold only these


def new_id() -> str:
    return secrets.token_hex(8)


def periods(at: float) -> tuple[str, str]:
    """The UTC day (``2025-01-31``) and month (``2025-01``) of an epoch time."""
    t = time.gmtime(at)
    return time.strftime("%Y-%m-%d", t), time.strftime("%Y-%m", t)


def period_ends(at: float) -> tuple[float, float]:
    """Epoch seconds when the UTC day and month of ``at`` end."""
    t = time.gmtime(at)
    day_end = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(day_end), float(calendar.timegm((year, month, 1, 0, 0, 0)))


def window_wait(entries: Iterable[tuple[float, float]], used: float, now: float, window_s: float,
                limit: float, need: float) -> float:
    """Seconds until ``need`` fits beside ``used`` in a window of ``(at, amount)`` entries (oldest first)."""
    excess = used + need - limit
    if excess <= 0:
        return 0.0
    for at, amount in entries:
        excess -= amount
        if excess <= 1e-9:
            return max(0.0, at + window_s - now)
    return window_s


async def reserve_in_turn(counters: Counters, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
    """``reserve_all`` made of ``spend`` and ``check_and_reserve`` calls (each one atomic), a
    refusal withdrawing what was reserved before it. Atomic as a whole on the memory store (no
    await in it yields); on SQLite and PostgreSQL each window is decided in its own transaction."""
    todo = list(asks)
    spend = None
    if budget is not None:
        spend = await counters.spend(budget.client_id, budget.at)
        todo.insert(0, Ask(budget.window, budget.limit(spend.day, spend.month), budget.need, budget.window_s))
    results: list[WindowResult] = []
    for ask in todo:
        got = await counters.check_and_reserve(ask.window, ask.limit, ask.need, ask.window_s)
        results.append(got)
        if got.reservation is None:
            await counters.settle_all([(r.reservation, 0.0) for r in results if r.reservation is not None])
            return Batch(tuple(replace(r, reservation=None) for r in results), True, spend)
    return Batch(tuple(results), False, spend)


async def settle_in_turn(counters: Counters, settles: Sequence[tuple[Reservation, float]]) -> None:
    for reservation, actual in settles:
        await counters.settle(reservation, actual)


def client_to_dict(record: ClientRecord) -> dict[str, Any]:
    return {"id": record.id, "key_digest": record.key_digest.hex(), "description": record.description,
            "allowed_providers": list(record.allowed_providers), "allowed_models": list(record.allowed_models),
            "limits": record.limits.model_dump(), "budget": record.budget.model_dump(), "admin": record.admin,
            "created_at": record.created_at, "last_used": record.last_used}


def client_from_dict(data: Mapping[str, Any]) -> ClientRecord:
    last_used = data.get("last_used")
    return ClientRecord(
        id=str(data["id"]), key_digest=bytes.fromhex(str(data["key_digest"])),
        description=str(data.get("description") or ""),
        allowed_providers=tuple(data.get("allowed_providers", ("*",))),
        allowed_models=tuple(data.get("allowed_models", ("*",))),
        limits=Limits.model_validate(data.get("limits") or {}), budget=Budget.model_validate(data.get("budget") or {}),
        admin=bool(data.get("admin")), created_at=float(data.get("created_at") or 0.0),
        last_used=None if last_used is None else float(last_used))


def row_values(row: LedgerRow) -> tuple[Any, ...]:
    return tuple(getattr(row, c) for c in LEDGER_COLUMNS)


def row_from_values(values: Sequence[Any]) -> LedgerRow:
    if len(values) == MODEL_COLUMNS:  # a row written before the MCP columns: a model request
        values = (*values, "model", 0, 0)
    data = dict(zip(LEDGER_COLUMNS, values, strict=True))
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


# --- admin queries (issue 10): time series and the live feed --------------------------------------

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
