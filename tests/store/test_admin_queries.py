"""The ``Ledger`` role's admin queries, run unchanged against every backend that serves it:
time-bucketed usage series, the latest rows, and the live feed of rows as they are written."""

from __future__ import annotations

import pytest

from gateway.store.base import Ledger
from gateway.store.values import LedgerRow

pytestmark = pytest.mark.anyio
ROLE = "ledger"
T0 = 1_700_000_040.0  # a multiple of 60


def row(offset: float, client_id: str = "c1", **kw: object) -> LedgerRow:
    base: dict[str, object] = dict(time=T0 + offset, request_id=f"req-{offset}-{client_id}", client_id=client_id,
                                   provider="openai-prod", model="gpt-4o", key_label="openai-prod#1", status=200,
                                   tokens_in=10, tokens_out=5, cost_usd=0.01, latency_ms=100.0, overhead_ms=0.5)
    base.update(kw)
    return LedgerRow(**base)  # type: ignore[arg-type]


async def write(store: Ledger, *rows: LedgerRow) -> None:
    for r in rows:
        store.record(r)
    assert await store.flush() == len(rows)


async def test_series_counts_rows_in_aligned_buckets(store: Ledger) -> None:
    await write(store, row(0, latency_ms=10.0), row(30, latency_ms=30.0, status=502, tokens_in=0, tokens_out=0),
                row(59.9, latency_ms=20.0, overhead_ms=2.0), row(61, latency_ms=500.0), row(300))
    points = await store.usage_series(60, T0, T0 + 120)
    assert [(p.key, p.t, p.requests, p.errors, p.tokens) for p in points] == [
        ("", T0, 3, 1, 30), ("", T0 + 60, 1, 0, 15)]
    first = points[0]
    assert first.cost == pytest.approx(0.03)
    assert (first.p50_ms, first.p99_ms, first.overhead_p50_ms) == (20.0, 30.0, 0.5)
    assert points[1].p50_ms == points[1].p99_ms == 500.0


async def test_series_per_group_and_of_one_client(store: Ledger) -> None:
    await write(store, row(0), row(1, provider="groq"), row(2, client_id="c2"), row(70, client_id="c2"))
    by_provider = await store.usage_series(60, 0, 2e9, group_by="provider")
    assert [(p.key, p.t, p.requests) for p in by_provider] == [
        ("groq", T0, 1), ("openai-prod", T0, 2), ("openai-prod", T0 + 60, 1)]
    by_client = await store.usage_series(3600, 0, 2e9, group_by="client", client_id="c2")
    assert [(p.key, p.requests) for p in by_client] == [("c2", 2)]
    assert await store.usage_series(60, 0, 1.0) == []


async def test_recent_rows_are_newest_first_and_bounded(store: Ledger) -> None:
    await write(store, row(5), row(1), row(9, client_id="c2"), row(3))
    recent = await store.recent_rows(3)
    assert [r.time - T0 for r in recent] == [9, 5, 3]
    assert [r.time - T0 for r in await store.recent_rows(10, client_id="c1")] == [5, 3, 1]
    assert recent[0] == row(9, client_id="c2")  # every field kept
    assert await store.recent_rows(5, client_id="nobody") == []


async def test_the_feed_gives_rows_written_after_the_cursor_in_write_order(store: Ledger, other: Ledger) -> None:
    await write(store, row(0))
    cursor = await other.ledger_cursor()  # another worker or replica follows the log
    rows, same = await other.rows_after(cursor)
    assert rows == [] and same == cursor
    await write(store, row(50), row(10, client_id="c2"))  # write order, not request time
    await write(store, row(20))
    rows, cursor = await other.rows_after(cursor, limit=2)
    assert [r.time - T0 for r in rows] == [50, 10]
    rows, cursor = await other.rows_after(cursor)
    assert [r.time - T0 for r in rows] == [20]
    assert (await other.rows_after(cursor))[0] == []
