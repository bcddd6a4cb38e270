"""The contract of the ``Ledger`` role (rows buffered and written in batches, totals, groups,
retention), run unchanged against every backend that serves it (``store`` and ``other``: see
test_counters.py and conftest.py; ``open_store`` opens whole stores)."""

from __future__ import annotations

import time

import anyio
import pytest

from gateway.store.base import Ledger
from gateway.store.values import LedgerRow

pytestmark = pytest.mark.anyio
ROLE = "ledger"


def row(n: int, client_id: str = "c1", **kw: object) -> LedgerRow:
    base: dict[str, object] = dict(time=1_700_000_000.0 + n, request_id=f"req-{n}", client_id=client_id,
                                   provider="openai-prod", model="gpt-4o", key_label="openai-prod#1", status=200,
                                   tokens_in=10, tokens_out=5, cost_usd=0.01, latency_ms=100.0, overhead_ms=0.4)
    base.update(kw)
    return LedgerRow(**base)  # type: ignore[arg-type]


async def test_rows_are_buffered_until_flushed(store: Ledger, other: Ledger) -> None:
    for n in range(5):
        store.record(row(n))
    assert await store.flush() == 5
    assert await store.flush() == 0
    totals = await other.usage_totals("c1", 0, 2e9)
    assert totals.total_requests == 5


async def test_the_buffer_is_written_in_the_background(backend: str, open_store) -> None:
    store = await open_store(ledger_interval_s=0.1)
    reader = await open_store()
    for n in range(3):
        store.record(row(n))
    deadline = time.monotonic() + 10
    while (await reader.usage_totals("c1", 0, 2e9)).total_requests < 3:
        assert time.monotonic() < deadline, "the background flush never wrote the rows"
        await anyio.sleep(0.05)


async def test_close_writes_what_is_buffered(backend: str, open_store) -> None:
    store = await open_store()
    reader = await open_store()
    store.record(row(1))
    await store.close()
    assert (await reader.usage_totals("c1", 0, 2e9)).total_requests == 1


async def test_usage_totals_of_a_client_over_a_period(store: Ledger) -> None:
    store.record(row(0, tokens_in=100, tokens_out=50, cost_usd=0.5, latency_ms=100.0))
    store.record(row(1, status=502, error_code="provider_error", tokens_in=0, tokens_out=0, cost_usd=0.0,
                     latency_ms=300.0))
    store.record(row(2, tokens_in=10, tokens_out=10, cost_usd=0.25, latency_ms=200.0, stream=True))
    store.record(row(3, client_id="c2"))
    store.record(row(100))  # outside the period
    await store.flush()
    totals = await store.usage_totals("c1", 1_700_000_000.0, 1_700_000_002.0)  # both ends included
    assert totals.client_id == "c1"
    assert totals.total_requests == 3
    assert totals.total_tokens == 170
    assert totals.total_cost == pytest.approx(0.75)
    assert totals.success_rate == pytest.approx(2 / 3)
    assert totals.avg_latency == pytest.approx(200.0)
    assert totals.last_request_time == pytest.approx(1_700_000_002.0)
    empty = await store.usage_totals("nobody", 0, 2e9)
    assert (empty.total_requests, empty.success_rate, empty.last_request_time) == (0, 0.0, None)


async def test_a_cache_hit_is_not_spend(store: Ledger) -> None:
    store.record(row(0, cost_usd=0.5))
    store.record(row(1, cost_usd=0.5, cache_hit=True))
    await store.flush()
    assert (await store.usage_totals("c1", 0, 2e9)).total_cost == pytest.approx(0.5)
    [group] = await store.usage_stats("client", 0, 2e9)
    assert (group.requests, group.cache_hits) == (2, 1)
    assert group.cost == pytest.approx(0.5) and group.saved_usd == pytest.approx(0.5)


async def test_usage_stats_group_by_provider_model_client_and_key(store: Ledger) -> None:
    store.record(row(0))
    store.record(row(1, provider="groq", model="llama", key_label="groq#2", status=429,
                     error_code="rate_limit_exceeded", cost_usd=0.0, latency_ms=50.0))
    store.record(row(2, client_id="c2", key_label="openai-prod#2", cache_hit=True))
    await store.flush()
    by_provider = await store.usage_stats("provider", 0, 2e9)
    assert [(g.key, g.requests, g.errors) for g in by_provider] == [("groq", 1, 1), ("openai-prod", 2, 0)]
    openai = by_provider[1]
    assert (openai.tokens_in, openai.tokens_out) == (20, 10)
    # the cache hit's 0.01 is what it saved: it spent nothing
    assert openai.cost == pytest.approx(0.01) and openai.cache_hits == 1 and openai.saved_usd == pytest.approx(0.01)
    assert (by_provider[0].cache_hits, by_provider[0].saved_usd) == (0, 0.0)
    assert openai.avg_latency == pytest.approx(100.0)
    assert [g.key for g in await store.usage_stats("model", 0, 2e9)] == ["gpt-4o", "llama"]
    assert [(g.key, g.requests) for g in await store.usage_stats("client", 0, 2e9)] == [("c1", 2), ("c2", 1)]
    keys = await store.usage_stats("key", 0, 2e9, client_id="c1")
    assert [g.key for g in keys] == ["groq#2", "openai-prod#1"]
    assert await store.usage_stats("key", 0, 1.0) == []


async def test_ledger_rows_keep_every_field(store: Ledger) -> None:
    """Stats and totals see each field (status, error, stream, cache, overhead) as recorded."""
    store.record(row(0, status=504, error_code="upstream_timeout", stream=True, cache_hit=True, overhead_ms=0.7,
                     tokens_in=7, tokens_out=3, cost_usd=0.003, latency_ms=30000.0))
    await store.flush()
    [group] = await store.usage_stats("client", 0, 2e9)
    assert (group.errors, group.tokens_in, group.tokens_out, group.avg_latency) == (1, 7, 3, 30000.0)
    assert (group.cost, group.cache_hits) == (0.0, 1) and group.saved_usd == pytest.approx(0.003)


async def test_retention_deletes_old_rows(store: Ledger) -> None:
    for n in (0, 10, 20):
        store.record(row(n))
    await store.flush()
    assert await store.prune_ledger(1_700_000_010.0) == 1
    assert (await store.usage_totals("c1", 0, 2e9)).total_requests == 2


async def test_a_row_keeps_what_the_guardrails_did(store: Ledger, other: Ledger) -> None:
    done = "pii:mask:input:2:email,secrets:block:output:1:openai_key,hook:block:input:1:policy:v2"
    store.record(row(1, guardrails=done))
    store.record(row(2))
    await store.flush()
    newest, oldest = await other.recent_rows(2)
    assert (newest.guardrails, oldest.guardrails) == ("", done)
