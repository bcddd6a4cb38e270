"""The contract of the ``Counters`` role (limit windows, the batch of one request's windows and
budget hold, expiring marks, spend), run unchanged against every backend that serves it.

``store`` is the role of a fresh store of the backend; ``other`` the same role on a second handle
on the same state (another connection, as another worker or replica holds it; for memory the
same object). See conftest.py.
"""

from __future__ import annotations

import asyncio
import calendar
import time

import anyio
import pytest

from gateway.store.base import Counters
from gateway.store.values import Ask, BudgetAsk

pytestmark = pytest.mark.anyio
ROLE = "counters"


def utc(*parts: int) -> float:
    return float(calendar.timegm((*parts, 0, 0, 0)[:6]))


# --- limit windows ---------------------------------------------------------------------------


async def test_reserves_up_to_the_limit_then_says_how_long_to_wait(store: Counters) -> None:
    results = [await store.check_and_reserve("w", 3, 1, 30.0) for _ in range(4)]
    assert [r.ok for r in results] == [True, True, True, False]
    denied = results[3]
    assert denied.reservation is None
    assert denied.used == 3
    assert 25.0 < denied.wait_s <= 30.0
    assert 25.0 < denied.reset_s <= 30.0
    assert results[0].used == 1 and results[2].used == 3


async def test_windows_are_separate_by_name(store: Counters) -> None:
    assert (await store.check_and_reserve("a", 1, 1, 30.0)).ok
    assert not (await store.check_and_reserve("a", 1, 1, 30.0)).ok
    assert (await store.check_and_reserve("b", 1, 1, 30.0)).ok


async def test_amounts_count_against_the_limit(store: Counters) -> None:
    assert (await store.check_and_reserve("tok", 100, 70, 30.0)).ok
    assert not (await store.check_and_reserve("tok", 100, 40, 30.0)).ok
    third = await store.check_and_reserve("tok", 100, 30, 30.0)
    assert third.ok and third.used == 100


async def test_entries_slide_out_of_the_window(store: Counters) -> None:
    first = await store.check_and_reserve("slide", 1, 1, 0.6)
    denied = await store.check_and_reserve("slide", 1, 1, 0.6)
    assert first.ok and not denied.ok
    assert 0.0 < denied.wait_s <= 0.6
    await anyio.sleep(denied.wait_s + 0.15)
    assert (await store.check_and_reserve("slide", 1, 1, 0.6)).ok


async def test_settle_replaces_the_estimate_and_zero_withdraws_it(store: Counters) -> None:
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


async def test_settling_an_entry_that_slid_out_changes_nothing(store: Counters) -> None:
    old = await store.check_and_reserve("s", 10, 5, 0.3)
    assert old.reservation is not None
    await anyio.sleep(0.45)
    fresh = await store.check_and_reserve("s", 10, 10, 0.3)
    assert fresh.ok
    await store.settle(old.reservation, 0)  # must not give back room that fresh holds
    assert not (await store.check_and_reserve("s", 10, 1, 0.3)).ok


async def test_concurrent_reservations_never_exceed_the_limit(store: Counters, other: Counters) -> None:
    """200 requests at once from two handles (two workers/replicas) on a limit of 50: exactly 50 pass."""
    handles = [store, other]
    results = await asyncio.gather(*(handles[i % 2].check_and_reserve("hot", 50, 1, 30.0) for i in range(200)))
    assert sum(r.ok for r in results) == 50
    assert all(r.wait_s > 0 for r in results if not r.ok)


async def test_two_handles_share_one_window(store: Counters, other: Counters) -> None:
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


async def test_reserve_all_counts_in_every_window_or_in_none(store: Counters) -> None:
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


async def test_a_budget_hold_admits_what_the_budget_has_left(store: Counters) -> None:
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


async def test_the_tighter_budget_decides_and_a_spent_one_refuses_everything(store: Counters) -> None:
    await store.add_spend("c", 9.0, at=this_month(1, 9))  # the day before
    await store.add_spend("c", 0.5, at=this_month(2, 9))
    both = await store.reserve_all([Ask("c:req", 10, 1, 30.0)], budget_ask(1.0, daily=10.0, monthly=9.6))
    assert both.ok and both.spend is not None and (both.spend.day, both.spend.month) == pytest.approx((0.5, 9.5))
    assert (await store.reserve_all([], budget_ask(1.0, daily=10.0, monthly=9.6))).refused  # 1.0 held, 0.1 left
    assert (await store.reserve_all([], budget_ask(1.0, daily=10.0, monthly=None))).ok  # the day has room
    spent = await store.reserve_all([Ask("c:req", 10, 1, 30.0)], budget_ask(0.0, daily=None, monthly=9.5))
    assert spent.refused and len(spent.results) == 1


async def test_settle_all_settles_each_reservation(store: Counters) -> None:
    got = await store.reserve_all([Ask("x", 100, 80, 30.0), Ask("y", 100, 50, 30.0)])
    x, y = (r.reservation for r in got.results)
    assert x is not None and y is not None
    await store.settle_all([(x, 10.0), (y, 0.0)])
    assert (await store.check_and_reserve("x", 100, 90, 30.0)).used == 100
    assert (await store.check_and_reserve("y", 100, 100, 30.0)).ok


async def test_concurrent_admissions_never_exceed_a_limit_or_a_budget(store: Counters, other: Counters) -> None:
    """200 admissions at once from two handles: a request limit of 50 and a budget with room for 40."""
    handles = [store, other]
    await store.add_spend("c", 6.0, at=this_month(2, 9))
    batches = await asyncio.gather(*(handles[i % 2].reserve_all([Ask("c:req", 50, 1, 30.0)], budget_ask(0.1))
                                     for i in range(200)))
    assert sum(b.ok for b in batches) == 40  # admitted while under the 4 left: 40 holds of 0.1
    assert (await store.reserve_all([Ask("c:req", 50, 10, 30.0)])).ok  # only the 40 were counted


# --- expiring marks --------------------------------------------------------------------------


async def test_marks_expire(store: Counters) -> None:
    assert await store.marks_remaining(["cooldown:k1"]) == [0.0]
    left = await store.set_mark("cooldown:k1", 0.4)
    assert 0.3 < left <= 0.4 + 1e-3
    remaining = await store.marks_remaining(["cooldown:k1", "quarantine:k1"])
    assert 0.2 < remaining[0] <= 0.4 + 1e-3 and remaining[1] == 0.0
    await anyio.sleep(0.55)
    assert await store.marks_remaining(["cooldown:k1"]) == [0.0]


async def test_a_mark_keeps_its_later_expiry_and_clears(store: Counters) -> None:
    await store.set_mark("circuit:k", 30.0)
    left = await store.set_mark("circuit:k", 1.0)  # a shorter cooldown does not shorten a longer one
    assert left > 25.0
    await store.clear_mark("circuit:k")
    assert await store.marks_remaining(["circuit:k"]) == [0.0]
    await store.clear_mark("never-set")


async def test_a_mark_set_by_one_handle_is_seen_by_the_other_at_once(store: Counters, other: Counters) -> None:
    await store.set_mark("cooldown:openai#1", 20.0)
    [left] = await other.marks_remaining(["cooldown:openai#1"])
    assert 15.0 < left <= 20.0 + 1e-3


# --- spend -----------------------------------------------------------------------------------


async def test_spend_counts_per_utc_day_and_month(store: Counters) -> None:
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


async def test_spend_now_uses_the_current_period(store: Counters) -> None:
    await store.add_spend("c", 3.0)
    now = await store.spend("c")
    assert now.day == pytest.approx(3.0) and now.month == pytest.approx(3.0)


async def test_concurrent_spend_adds_up_exactly(store: Counters, other: Counters) -> None:
    handles = [store, other]
    await asyncio.gather(*(handles[i % 2].add_spend("c", 0.125) for i in range(80)))
    assert (await other.spend("c")).day == pytest.approx(10.0)
