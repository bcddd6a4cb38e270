"""The store contract: one suite, run unchanged against memory, sqlite, redis and postgres.

``store`` is a fresh store of the backend; ``other`` a second handle on the same state (another
connection, as another worker or replica holds it; for memory the same object).
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import time

import anyio
import pytest

from gateway.core.policy import Budget, Limits
from gateway.store.base import Ask, BudgetAsk, ClientExists, ClientNotFound, ClientRecord, LedgerRow, Store

pytestmark = pytest.mark.anyio


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def utc(*parts: int) -> float:
    return float(calendar.timegm((*parts, 0, 0, 0)[:6]))


# --- limit windows ---------------------------------------------------------------------------


async def test_reserves_up_to_the_limit_then_says_how_long_to_wait(store: Store) -> None:
    results = [await store.check_and_reserve("w", 3, 1, 30.0) for _ in range(4)]
    assert [r.ok for r in results] == [True, True, True, False]
    denied = results[3]
    assert denied.reservation is None
    assert denied.used == 3
    assert 25.0 < denied.wait_s <= 30.0
    assert 25.0 < denied.reset_s <= 30.0
    assert results[0].used == 1 and results[2].used == 3


async def test_windows_are_separate_by_name(store: Store) -> None:
    assert (await store.check_and_reserve("a", 1, 1, 30.0)).ok
    assert not (await store.check_and_reserve("a", 1, 1, 30.0)).ok
    assert (await store.check_and_reserve("b", 1, 1, 30.0)).ok


async def test_amounts_count_against_the_limit(store: Store) -> None:
    assert (await store.check_and_reserve("tok", 100, 70, 30.0)).ok
    assert not (await store.check_and_reserve("tok", 100, 40, 30.0)).ok
    third = await store.check_and_reserve("tok", 100, 30, 30.0)
    assert third.ok and third.used == 100


async def test_entries_slide_out_of_the_window(store: Store) -> None:
    first = await store.check_and_reserve("slide", 1, 1, 0.6)
    denied = await store.check_and_reserve("slide", 1, 1, 0.6)
    assert first.ok and not denied.ok
    assert 0.0 < denied.wait_s <= 0.6
    await anyio.sleep(denied.wait_s + 0.15)
    assert (await store.check_and_reserve("slide", 1, 1, 0.6)).ok


async def test_settle_replaces_the_estimate_and_zero_withdraws_it(store: Store) -> None:
    big = await store.check_and_reserve("tok", 100, 80, 30.0)
    assert big.reservation is not None
    assert not (await store.check_and_reserve("tok", 100, 30, 30.0)).ok
    await store.settle(big.reservation, 10)  # the answer used 10 tokens, not 80
    small = await store.check_and_reserve("tok", 100, 30, 30.0)
    assert small.ok and small.used == 40
    assert not (await store.check_and_reserve("tok", 100, 61, 30.0)).ok
    assert small.reservation is not None
    await store.settle(small.reservation, 0)
    assert (await store.check_and_reserve("tok", 100, 90, 30.0)).ok


async def test_settling_an_entry_that_slid_out_changes_nothing(store: Store) -> None:
    old = await store.check_and_reserve("s", 10, 5, 0.3)
    assert old.reservation is not None
    await anyio.sleep(0.45)
    fresh = await store.check_and_reserve("s", 10, 10, 0.3)
    assert fresh.ok
    await store.settle(old.reservation, 0)  # must not give back room that fresh holds
    assert not (await store.check_and_reserve("s", 10, 1, 0.3)).ok


async def test_concurrent_reservations_never_exceed_the_limit(store: Store, other: Store) -> None:
    """200 requests at once from two handles (two workers/replicas) on a limit of 50: exactly 50 pass."""
    handles = [store, other]
    results = await asyncio.gather(*(handles[i % 2].check_and_reserve("hot", 50, 1, 30.0) for i in range(200)))
    assert sum(r.ok for r in results) == 50
    assert all(r.wait_s > 0 for r in results if not r.ok)


async def test_two_handles_share_one_window(store: Store, other: Store) -> None:
    assert (await store.check_and_reserve("shared", 2, 1, 30.0)).ok
    assert (await other.check_and_reserve("shared", 2, 1, 30.0)).ok
    assert not (await store.check_and_reserve("shared", 2, 1, 30.0)).ok
    assert not (await other.check_and_reserve("shared", 2, 1, 30.0)).ok


# --- one request's windows and budget hold in one step (reserve_all, settle_all) --------------


def this_month(day: int, hour: int) -> float:
    """A time in the current UTC month (spend of long past months has expired in Redis)."""
    t = time.gmtime()
    return utc(t.tm_year, t.tm_mon, day, hour)


def budget_ask(need: float, daily: float | None = 10.0, monthly: float | None = None) -> BudgetAsk:
    return BudgetAsk("c", this_month(2, 12), daily, monthly, "c:held", need, 60.0)


async def test_reserve_all_counts_in_every_window_or_in_none(store: Store) -> None:
    asks = [Ask("a", 2, 1, 30.0), Ask("b", 1, 1, 30.0)]
    first = await store.reserve_all(asks)
    assert first.ok and [r.used for r in first.results] == [1, 1]
    assert all(r.reservation is not None for r in first.results)
    second = await store.reserve_all(asks)  # b is full: a is not counted either
    assert second.refused and len(second.results) == 2
    assert all(r.reservation is None for r in second.results)
    assert second.results[0].used == 2  # what a would have held
    assert 25.0 < second.results[1].wait_s <= 30.0
    assert (await store.check_and_reserve("a", 2, 1, 30.0)).ok  # a still had room for one
    third = await store.reserve_all([Ask("a", 2, 1, 30.0), Ask("b", 1, 1, 30.0)])
    assert third.refused and len(third.results) == 1  # stops at the first that does not fit


async def test_a_budget_hold_admits_what_the_budget_has_left(store: Store) -> None:
    await store.add_spend("c", 8.0, at=this_month(2, 9))
    first = await store.reserve_all([], budget_ask(1.5))
    assert first.ok and first.spend is not None and first.spend.day == pytest.approx(8.0)
    assert first.results[0].reservation is not None and first.results[0].used == pytest.approx(1.5)
    assert (await store.reserve_all([], budget_ask(0.6))).ok  # 1.5 held is under the 2 left: admitted
    refused = await store.reserve_all([Ask("c:req", 10, 1, 30.0)], budget_ask(0.01))  # 2.1 held: no more
    assert refused.refused and len(refused.results) == 1 and refused.results[0].used == pytest.approx(2.1)
    assert (await store.check_and_reserve("c:req", 1, 1, 30.0)).ok  # the request was not counted
    assert first.results[0].reservation is not None
    await store.settle_all([(first.results[0].reservation, 0.0)])
    assert (await store.reserve_all([], budget_ask(0.2))).ok  # the 1.5 given back makes room


async def test_the_tighter_budget_decides_and_a_spent_one_refuses_everything(store: Store) -> None:
    await store.add_spend("c", 9.0, at=this_month(1, 9))  # the day before
    await store.add_spend("c", 0.5, at=this_month(2, 9))
    both = await store.reserve_all([Ask("c:req", 10, 1, 30.0)], budget_ask(1.0, daily=10.0, monthly=9.6))
    assert both.ok and both.spend is not None and (both.spend.day, both.spend.month) == pytest.approx((0.5, 9.5))
    assert (await store.reserve_all([], budget_ask(1.0, daily=10.0, monthly=9.6))).refused  # 1.0 held, 0.1 left
    assert (await store.reserve_all([], budget_ask(1.0, daily=10.0, monthly=None))).ok  # the day has room
    spent = await store.reserve_all([Ask("c:req", 10, 1, 30.0)], budget_ask(0.0, daily=None, monthly=9.5))
    assert spent.refused and len(spent.results) == 1


async def test_settle_all_settles_each_reservation(store: Store) -> None:
    got = await store.reserve_all([Ask("x", 100, 80, 30.0), Ask("y", 100, 50, 30.0)])
    x, y = (r.reservation for r in got.results)
    assert x is not None and y is not None
    await store.settle_all([(x, 10.0), (y, 0.0)])
    assert (await store.check_and_reserve("x", 100, 90, 30.0)).used == 100
    assert (await store.check_and_reserve("y", 100, 100, 30.0)).ok


async def test_concurrent_admissions_never_exceed_a_limit_or_a_budget(store: Store, other: Store) -> None:
    """200 admissions at once from two handles: a request limit of 50 and a budget with room for 40."""
    handles = [store, other]
    await store.add_spend("c", 6.0, at=this_month(2, 9))
    batches = await asyncio.gather(*(handles[i % 2].reserve_all([Ask("c:req", 50, 1, 30.0)], budget_ask(0.1))
                                     for i in range(200)))
    assert sum(b.ok for b in batches) == 40  # admitted while under the 4 left: 40 holds of 0.1
    assert (await store.reserve_all([Ask("c:req", 50, 10, 30.0)])).ok  # only the 40 were counted


# --- expiring marks --------------------------------------------------------------------------


async def test_marks_expire(store: Store) -> None:
    assert await store.marks_remaining(["cooldown:k1"]) == [0.0]
    left = await store.set_mark("cooldown:k1", 0.4)
    assert 0.3 < left <= 0.4 + 1e-3
    remaining = await store.marks_remaining(["cooldown:k1", "quarantine:k1"])
    assert 0.2 < remaining[0] <= 0.4 + 1e-3 and remaining[1] == 0.0
    await anyio.sleep(0.55)
    assert await store.marks_remaining(["cooldown:k1"]) == [0.0]


async def test_a_mark_keeps_its_later_expiry_and_clears(store: Store) -> None:
    await store.set_mark("circuit:k", 30.0)
    left = await store.set_mark("circuit:k", 1.0)  # a shorter cooldown does not shorten a longer one
    assert left > 25.0
    await store.clear_mark("circuit:k")
    assert await store.marks_remaining(["circuit:k"]) == [0.0]
    await store.clear_mark("never-set")


async def test_a_mark_set_by_one_handle_is_seen_by_the_other_at_once(store: Store, other: Store) -> None:
    await store.set_mark("cooldown:openai#1", 20.0)
    [left] = await other.marks_remaining(["cooldown:openai#1"])
    assert 15.0 < left <= 20.0 + 1e-3


# --- spend -----------------------------------------------------------------------------------


async def test_spend_counts_per_utc_day_and_month(store: Store) -> None:
    """Around this month's first midnight (UTC): the day and the month both start afresh."""
    t = time.gmtime()
    month_start = utc(t.tm_year, t.tm_mon, 1, 0)
    last_day = month_start - 86400  # noon of last month's last day is last_day + 12 h
    await store.add_spend("c1", 1.5, at=last_day - 86400 + 12 * 3600)
    await store.add_spend("c1", 2.0, at=last_day + 23 * 3600)
    await store.add_spend("c1", 0.25, at=month_start + 60)
    await store.add_spend("c2", 9.0, at=last_day + 3600)
    before = await store.spend("c1", at=last_day + 8 * 3600)
    assert before.day == pytest.approx(2.0)
    assert before.month == pytest.approx(3.5)
    after = await store.spend("c1", at=month_start + 8 * 3600)
    assert after.day == pytest.approx(0.25) and after.month == pytest.approx(0.25)
    assert (await store.spend("nobody")).day == 0.0


async def test_spend_now_uses_the_current_period(store: Store) -> None:
    await store.add_spend("c", 3.0)
    now = await store.spend("c")
    assert now.day == pytest.approx(3.0) and now.month == pytest.approx(3.0) and now.held == 0.0


async def test_concurrent_spend_adds_up_exactly(store: Store, other: Store) -> None:
    handles = [store, other]
    await asyncio.gather(*(handles[i % 2].add_spend("c", 0.125) for i in range(80)))
    assert (await other.spend("c")).day == pytest.approx(10.0)


async def test_held_spend_counts_until_released(store: Store, other: Store) -> None:
    first = await store.hold_spend("c", 2.0, 60.0)
    second = await other.hold_spend("c", 0.5, 60.0)
    assert (await store.spend("c")).held == pytest.approx(2.5)
    await other.release_spend(first)
    assert (await store.spend("c")).held == pytest.approx(0.5)
    await store.release_spend(second)
    await store.release_spend(second)  # twice: harmless
    assert (await other.spend("c")).held == 0.0


async def test_a_hold_lapses_after_its_ttl(store: Store) -> None:
    """A crashed worker never releases its holds: they must not block the budget for ever."""
    await store.hold_spend("c", 4.0, 0.3)
    assert (await store.spend("c")).held == pytest.approx(4.0)
    await anyio.sleep(0.45)
    assert (await store.spend("c")).held == 0.0


# --- client directory ------------------------------------------------------------------------


def client(cid: str, key: str, **kw: object) -> ClientRecord:
    return ClientRecord(id=cid, key_digest=digest(key), **kw)  # type: ignore[arg-type]


async def test_create_get_and_list_clients(store: Store) -> None:
    made = await store.create_client(client(
        "prod-app-001", "sk-prod-app-key-123", description="Production mobile application",
        allowed_providers=("openai", "anthropic"), allowed_models=("gpt-4o",),
        limits=Limits(req_per_min=100, tokens_per_min=50000), budget=Budget(daily_usd=5), admin=False))
    assert made.created_at > time.time() - 60
    await store.create_client(client("a-first", "sk-another-key-456", admin=True, allowed_providers=()))
    got = await store.get_client("prod-app-001")
    assert got == made
    assert got is not None and got.limits.req_per_min == 100 and got.budget.daily_usd == 5
    assert await store.client_by_digest(digest("sk-prod-app-key-123")) == made
    assert await store.client_by_digest(digest("sk-unknown-key")) is None
    assert await store.get_client("nobody") is None
    listed = await store.list_clients()
    assert [c.id for c in listed] == ["a-first", "prod-app-001"]
    assert listed[0].admin and listed[0].allowed_providers == ()


async def test_create_refuses_a_taken_id_or_key(store: Store) -> None:
    await store.create_client(client("one", "sk-key-one-1"))
    with pytest.raises(ClientExists):
        await store.create_client(client("one", "sk-key-two-2"))
    with pytest.raises(ClientExists):
        await store.create_client(client("two", "sk-key-one-1"))
    assert [c.id for c in await store.list_clients()] == ["one"]


async def test_update_replaces_settings_but_keeps_key_and_dates(store: Store) -> None:
    made = await store.create_client(client("app", "sk-app-key-0001"))
    changed = await store.update_client(ClientRecord(
        id="app", key_digest=b"ignored", description="Updated production mobile app",
        allowed_providers=("openai", "anthropic", "gemini"), created_at=1.0))
    assert changed.key_digest == made.key_digest and changed.created_at == made.created_at
    assert await store.get_client("app") == changed
    assert changed.allowed_providers == ("openai", "anthropic", "gemini")
    with pytest.raises(ClientNotFound):
        await store.update_client(client("ghost", "sk-ghost-key-1"))


async def test_rotate_retires_the_old_key_at_once(store: Store, other: Store) -> None:
    await store.create_client(client("app", "sk-old-key-0001"))
    await store.create_client(client("else", "sk-else-key-001"))
    rotated = await store.rotate_client("app", digest("sk-new-key-0002"))
    assert rotated.key_digest == digest("sk-new-key-0002")
    assert await other.client_by_digest(digest("sk-old-key-0001")) is None
    found = await other.client_by_digest(digest("sk-new-key-0002"))
    assert found is not None and found.id == "app"
    with pytest.raises(ClientExists):
        await store.rotate_client("app", digest("sk-else-key-001"))
    with pytest.raises(ClientNotFound):
        await store.rotate_client("ghost", digest("sk-x-key-00001"))


async def test_delete_frees_the_id_and_key(store: Store) -> None:
    await store.create_client(client("app", "sk-app-key-0001"))
    assert await store.delete_client("app") is True
    assert await store.delete_client("app") is False
    assert await store.client_by_digest(digest("sk-app-key-0001")) is None
    assert await store.list_clients() == []
    await store.create_client(client("app", "sk-app-key-0001"))  # both free again


async def test_the_directory_version_moves_on_every_change(store: Store, other: Store) -> None:
    seen = [await other.directory_version()]
    await store.create_client(client("app", "sk-app-key-0001"))
    seen.append(await other.directory_version())
    await store.update_client(client("app", "sk-app-key-0001", description="x"))
    seen.append(await other.directory_version())
    await store.rotate_client("app", digest("sk-app-key-0002"))
    seen.append(await other.directory_version())
    await store.delete_client("app")
    seen.append(await other.directory_version())
    assert len(set(seen)) == 5
    await store.delete_client("app")  # no change, no new version
    assert await other.directory_version() == seen[-1]


# --- usage ledger ----------------------------------------------------------------------------


def row(n: int, client_id: str = "c1", **kw: object) -> LedgerRow:
    base: dict[str, object] = dict(time=1_700_000_000.0 + n, request_id=f"req-{n}", client_id=client_id,
                                   provider="openai-prod", model="gpt-4o", key_label="openai-prod#1", status=200,
                                   tokens_in=10, tokens_out=5, cost_usd=0.01, latency_ms=100.0, overhead_ms=0.4)
    base.update(kw)
    return LedgerRow(**base)  # type: ignore[arg-type]


async def test_rows_are_buffered_until_flushed(store: Store, other: Store) -> None:
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


async def test_usage_totals_of_a_client_over_a_period(store: Store) -> None:
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


async def test_a_cache_hit_is_not_spend(store: Store) -> None:
    store.record(row(0, cost_usd=0.5))
    store.record(row(1, cost_usd=0.5, cache_hit=True))
    await store.flush()
    assert (await store.usage_totals("c1", 0, 2e9)).total_cost == pytest.approx(0.5)
    [group] = await store.usage_stats("client", 0, 2e9)
    assert (group.requests, group.cache_hits) == (2, 1)
    assert group.cost == pytest.approx(0.5) and group.saved_usd == pytest.approx(0.5)


async def test_usage_stats_group_by_provider_model_client_and_key(store: Store) -> None:
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


async def test_ledger_rows_keep_every_field(store: Store) -> None:
    """Stats and totals see each field (status, error, stream, cache, overhead) as recorded."""
    store.record(row(0, status=504, error_code="upstream_timeout", stream=True, cache_hit=True, overhead_ms=0.7,
                     tokens_in=7, tokens_out=3, cost_usd=0.003, latency_ms=30000.0))
    await store.flush()
    [group] = await store.usage_stats("client", 0, 2e9)
    assert (group.errors, group.tokens_in, group.tokens_out, group.avg_latency) == (1, 7, 3, 30000.0)
    assert (group.cost, group.cache_hits) == (0.0, 1) and group.saved_usd == pytest.approx(0.003)


async def test_mcp_tool_calls_are_rows_of_their_own_kind(store: Store, other: Store) -> None:
    """A tool call keeps its kind and sizes; stats of one kind leave the other out."""
    store.record(row(0))
    store.record(row(1, provider="github", model="search", key_label="", tokens_in=0, tokens_out=0, cost_usd=0.02,
                     kind="mcp", bytes_in=120, bytes_out=4567))
    store.record(row(2, client_id="c2", provider="github", model="search", key_label="", status=502,
                     error_code="unavailable", tokens_in=0, tokens_out=0, cost_usd=0.0, kind="mcp"))
    await store.flush()
    [recent] = [r for r in await other.recent_rows(10) if r.request_id == "req-1"]
    assert (recent.kind, recent.bytes_in, recent.bytes_out, recent.provider, recent.model) == \
        ("mcp", 120, 4567, "github", "search")
    assert [r.kind for r in await other.recent_rows(10) if r.request_id == "req-0"] == ["model"]
    calls = await other.usage_stats("client", 0, 2e9, kind="mcp")
    assert [(g.key, g.requests, g.errors) for g in calls] == [("c1", 1, 0), ("c2", 1, 1)]
    assert [g.key for g in await other.usage_stats("provider", 0, 2e9, kind="model")] == ["openai-prod"]
    assert [g.requests for g in await other.usage_stats("model", 0, 2e9, client_id="c1", kind="mcp")] == [1]


async def test_retention_deletes_old_rows(store: Store) -> None:
    for n in (0, 10, 20):
        store.record(row(n))
    await store.flush()
    assert await store.prune_ledger(1_700_000_010.0) == 1
    assert (await store.usage_totals("c1", 0, 2e9)).total_requests == 2


async def test_a_flush_marks_when_directory_clients_were_last_used(store: Store) -> None:
    await store.create_client(client("c1", "sk-c1-key-00001"))
    assert (await store.get_client("c1")).last_used is None  # type: ignore[union-attr]
    store.record(row(5))
    store.record(row(3))
    store.record(row(9, client_id="config-client"))  # not in the directory: ignored
    await store.flush()
    got = await store.get_client("c1")
    assert got is not None and got.last_used == pytest.approx(1_700_000_005.0)
    assert await store.get_client("config-client") is None


# --- lifecycle -------------------------------------------------------------------------------


async def test_ping_answers(store: Store) -> None:
    await store.ping()
    assert store.name in ("memory", "sqlite", "redis", "postgres")
