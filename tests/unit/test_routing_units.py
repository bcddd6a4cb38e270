"""Pure routing pieces: upstream rate-limit headers, target order, key state."""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random

import httpx
import pytest

from gateway.config.schema import Routing
from gateway.core.policy import Budget, Limits
from gateway.core.pricing import Pricing, estimated_cost
from gateway.core.ratelimit import parse_duration, retry_after_seconds
from gateway.core.targets import ClientSpec, ProviderKey, ProviderSpec, Route, Target
from gateway.core.usage import Usage
from gateway.errors import AllKeysRateLimited, BudgetExceeded, ProviderError, ProviderUnavailable, RateLimited
from gateway.limits.admission import HOLD_TTL_S, ClientLimiter
from gateway.routing.deadline import request_budget
from gateway.routing.key_pool import MAX_WINDOW_SHARE, Blocked, KeyPool, Reservation
from gateway.routing.progress import AttemptFailure, give_up
from gateway.routing.strategies import TargetStats, order_targets
from gateway.store.memory import AsyncMemoryStore


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ------------------------------------------------------------------- retry-after parsing
@pytest.mark.parametrize("text, seconds", [
    ("2", 2.0), ("1.5", 1.5), ("0", 0.0), ("-3", 0.0), ("2s", 2.0), ("1.5s", 1.5), ("20ms", 0.02),
    ("6m0s", 360.0), ("1h2m3s", 3723.0), (" 3s ", 3.0), ("", None), ("soon", None), ("2x", None),
    ("s", None), ("inf", None), ("nan", None), ("2s junk", None),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_retry_after_in_seconds():
    assert retry_after_seconds(httpx.Headers({"Retry-After": "7"})) == 7.0
    assert retry_after_seconds(httpx.Headers({"retry-after": "0.5"})) == 0.5
    assert retry_after_seconds(httpx.Headers({"Retry-After": "-1"})) == 0.0


def test_retry_after_as_an_http_date():
    now = 1_700_000_000.0
    gmt = email.utils.formatdate(now + 30, usegmt=True)  # "..., 14 Nov 2023 22:13:50 GMT"
    assert retry_after_seconds(httpx.Headers({"Retry-After": gmt}), now=now) == pytest.approx(30.0)
    naive = email.utils.formatdate(now + 30).replace("+0000", "-0000")  # "-0000": no zone, i.e. UTC
    assert retry_after_seconds(httpx.Headers({"Retry-After": naive}), now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": past}), now=now) == 0.0


def test_retry_after_from_the_reset_headers():
    assert retry_after_seconds(httpx.Headers({"x-ratelimit-reset-requests": "2s"})) == 2.0
    both = httpx.Headers({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"})
    assert retry_after_seconds(both) == 360.0  # the longer one: either limit may be the one hit
    assert retry_after_seconds(httpx.Headers({"x-ratelimit-reset-tokens": "20ms"})) == pytest.approx(0.02)


def test_retry_after_garbage_falls_back_or_gives_none():
    assert retry_after_seconds(httpx.Headers({})) is None
    assert retry_after_seconds(httpx.Headers({"Retry-After": "whenever"})) is None
    assert retry_after_seconds(httpx.Headers({"Retry-After": "inf"})) is None
    fallback = httpx.Headers({"Retry-After": "whenever", "x-ratelimit-reset-requests": "3s"})
    assert retry_after_seconds(fallback) == 3.0
    assert retry_after_seconds(httpx.Headers({"x-ratelimit-reset-requests": "later"})) is None


# ------------------------------------------------------------------------- order_targets
NO_LIMITS = Limits()


def spec(pid: str, *, cost: float = 0.0, limits: Limits = NO_LIMITS, keys: int = 1) -> ProviderSpec:
    return ProviderSpec(
        id=pid, type="openai-compatible", protocol="openai", api_root="http://127.0.0.1:1/v1",
        keys=tuple(ProviderKey(pid, n, f"secret-{pid}-{n}") for n in range(1, keys + 1)),
        models=frozenset({"m"}), pricing=Pricing(input_token_cost=cost, output_token_cost=cost),
        limits=limits, weight=1.0, headers=(), timeout_s=5.0, cooldown_s=60.0, stream_usage=True,
        needs_key=True, api_version=None)


A, B, C = Target(spec("a", cost=3), "m"), Target(spec("b", cost=1), "m"), Target(spec("c", cost=2), "m")


def route(strategy: str, weights: tuple[float, ...] = (1.0, 1.0, 1.0)) -> Route:
    return Route(strategy, (A, B, C), weights)


def names(targets: list[Target]) -> list[str]:
    return [t.provider.id for t in targets]


def test_fallback_keeps_the_configured_order():
    assert names(order_targets(route("fallback"), "r", TargetStats())) == ["a", "b", "c"]


def test_round_robin_rotates_per_route():
    stats = TargetStats()
    firsts = [names(order_targets(route("round_robin"), "r", stats))[0] for _ in range(4)]
    assert firsts == ["a", "b", "c", "a"]
    assert names(order_targets(route("round_robin"), "other", stats)) == ["a", "b", "c"]


def test_least_busy_orders_by_requests_in_flight():
    stats = TargetStats()
    stats.started(A)
    stats.started(A)
    stats.started(C)
    assert names(order_targets(route("least_busy"), "r", stats)) == ["b", "c", "a"]
    stats.finished(A)
    stats.finished(A)
    assert names(order_targets(route("least_busy"), "r", stats)) == ["a", "b", "c"]


def test_latency_prefers_fast_and_measures_the_unmeasured_first():
    stats = TargetStats()
    stats.observe_latency(A, 0.5)
    stats.observe_latency(B, 0.1)
    assert names(order_targets(route("latency"), "r", stats)) == ["c", "b", "a"]
    stats.observe_latency(C, 0.3)
    assert names(order_targets(route("latency"), "r", stats)) == ["b", "c", "a"]


def test_cost_orders_by_pricing():
    assert names(order_targets(route("cost"), "r", TargetStats())) == ["b", "c", "a"]


def test_weighted_follows_the_weights():
    random.seed(7)
    firsts = [names(order_targets(route("weighted", (8.0, 1.0, 1.0)), "r", TargetStats()))[0]
              for _ in range(1000)]
    assert 700 < firsts.count("a") < 900
    assert all(len(set(order_targets(route("weighted"), "r", TargetStats()))) == 3 for _ in range(20))


def test_weighted_puts_zero_weights_last_and_tolerates_a_weight_mismatch():
    for _ in range(50):
        assert names(order_targets(route("weighted", (0.0, 1.0, 0.0)), "r", TargetStats())) == ["b", "a", "c"]
    assert sorted(names(order_targets(route("weighted", (1.0,)), "r", TargetStats()))) == ["a", "b", "c"]


# ----------------------------------------------------------------------------- key state
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def waits(got: Blocked | None) -> tuple[float, bool] | None:
    return None if got is None else (round(got.wait_s, 6), got.by_limit)


def board_on(clock: Clock, window_s: float = 60.0) -> tuple[KeyPool, AsyncMemoryStore]:
    store = AsyncMemoryStore(clock=clock)
    return KeyPool(store, clock, window_s=window_s), store


async def window_total(store: AsyncMemoryStore, name: str, window_s: float = 60.0) -> float:
    """What ``name`` holds now (a zero-sized probe: it never counts)."""
    return (await store.check_and_reserve(name, math.inf, 0, window_s)).used


@pytest.mark.anyio
async def test_key_windows_are_written_only_for_configured_limits():
    clock = Clock()
    board, store = board_on(clock, window_s=10.0)
    free, limited = spec("free"), spec("lim", limits=Limits(req_per_min=1, tokens_per_min=100))
    for provider in (free, limited):
        state = board.state(provider.keys[0], provider)
        reservation = await board.acquire(state, provider, 40)
        assert isinstance(reservation, Reservation)
        await board.settle(reservation, 60)
        board.release(reservation)
    free_state, lim_state = board.state(free.keys[0], free), board.state(limited.keys[0], limited)
    assert "key:" + free_state.ident + ":req" not in store.counters._windows
    assert await window_total(store, f"key:{lim_state.ident}:req", 10.0) == 1
    assert await window_total(store, f"key:{lim_state.ident}:tok", 10.0) == 60
    blocked = await board.acquire(lim_state, limited, 1)
    assert isinstance(blocked, Blocked) and blocked.wait_s == pytest.approx(10.0)
    clock.now += 10.0
    assert isinstance(await board.acquire(lim_state, limited, 1), Reservation)


@pytest.mark.anyio
async def test_cooldown_quarantine_and_circuit():
    clock = Clock()
    board, _ = board_on(clock)
    provider = spec("p", keys=2)
    cooled, broken = (board.state(k, provider) for k in provider.keys)
    assert await board.rate_limited(cooled, None, 60.0) == 60.0  # no header: the configured cooldown
    assert await board.rate_limited(cooled, 5.0, 60.0) == 5.0
    assert waits(await board.blocked(cooled, 1)) == (60.0, True)  # never shortened by a later 429
    routing = Routing(circuit_breaker_failures=2, circuit_breaker_open_s=30)
    await board.failed(broken, routing)
    assert await board.blocked(broken, 1) is None
    await board.failed(broken, routing)
    assert waits(await board.blocked(broken, 1)) == (30.0, False)  # only the circuit
    clock.now += 30.0
    assert await board.blocked(broken, 1) is None
    await board.failed(broken, routing)  # half-open: one more failure reopens it
    assert waits(await board.blocked(broken, 1)) == (30.0, False)
    await board.rejected(broken, 600.0)
    assert (await board.blocked(broken, 1)) == Blocked(math.inf, True)
    clock.now += 599.0
    assert (await board.blocked(broken, 1)) == Blocked(math.inf, True)
    clock.now += 31.0  # quarantine (and the circuit) over: the key is tried again
    assert await board.blocked(broken, 1) is None


@pytest.mark.anyio
async def test_a_key_cooled_through_one_board_is_skipped_by_another_on_the_same_store():
    clock = Clock()
    one, store = board_on(clock)
    other = KeyPool(store, clock)  # another worker or replica: its own KeyPool, the same store
    provider = spec("p")
    await one.rate_limited(one.state(provider.keys[0], provider), 7.0, 60.0)
    assert waits(await other.blocked(other.state(provider.keys[0], provider), 1)) == (7.0, True)


@pytest.mark.anyio
async def test_retry_after_zero_is_a_short_rest_and_ms_header_counts():
    board, _ = board_on(Clock())
    provider = spec("p")
    state = board.state(provider.keys[0], provider)
    assert await board.rate_limited(state, 0.0, 60.0) == 0.5
    assert retry_after_seconds({"retry-after-ms": "200"}) == pytest.approx(0.2)
    assert retry_after_seconds({"retry-after": "0", "retry-after-ms": "200"}) == 0.0


@pytest.mark.anyio
async def test_headroom_from_remaining_headers():
    clock = Clock()
    board, _ = board_on(clock)
    provider = spec("p")
    state = board.state(provider.keys[0], provider)
    await board.succeeded(state, httpx.Headers({"x-ratelimit-remaining-requests": "0",
                                                "x-ratelimit-reset-requests": "3s"}))
    assert waits(await board.blocked(state, 1)) == (3.0, True)
    clock.now += 3.0
    assert await board.blocked(state, 1) is None


# --------------------------------------------------------------------- a request's deadline
def timed(pid: str, timeout_s: float, keys: int) -> Target:
    return Target(dataclasses.replace(spec(pid, keys=keys), timeout_s=timeout_s, needs_key=keys > 0), "m")


def budget(*targets: Target, max_attempts: int = 4, request_timeout_s: float = 600.0,
           total_timeout_s: float | None = None) -> float:
    routing = Routing(max_attempts=max_attempts, total_timeout_s=total_timeout_s)
    return request_budget(routing, request_timeout_s, Route("fallback", targets, ()))


def test_the_default_deadline_leaves_each_attempt_its_timeout():
    assert budget(timed("a", 1.5, keys=2)) == 3.0  # a key that times out leaves the next its 1.5 s
    assert budget(timed("a", 1.5, keys=9)) == 6.0  # max_attempts (4) of them
    assert budget(timed("a", 1.0, keys=3), timed("b", 2.0, keys=2)) == 6.0  # the longest first: 2+2+1+1
    assert budget(timed("a", 1.0, keys=3), max_attempts=2) == 2.0
    assert budget(timed("local", 1.0, keys=0), timed("b", 2.0, keys=1)) == 3.0  # a keyless provider: one attempt


def test_the_default_deadline_is_capped_at_request_timeout_s_but_not_below_a_provider_timeout():
    assert budget(timed("a", 1.5, keys=4), request_timeout_s=5) == 5.0
    assert budget(timed("a", 600, keys=4)) == 600.0  # default timeouts: one attempt's worth, as before
    assert budget(timed("a", 900, keys=2), request_timeout_s=600) == 900.0  # the first attempt keeps its time


def test_routing_total_timeout_s_overrides_the_default_deadline():
    assert budget(timed("a", 1.5, keys=4), total_timeout_s=2.5) == 2.5
    assert budget(timed("a", 1.5, keys=4), total_timeout_s=100) == 100.0


# ------------------------------------------------------------------------------ giving up
def test_give_up_tells_waiting_from_failing():
    limited = AttemptFailure(ProviderUnavailable("x"), rate_limited_s=2.0)
    assert isinstance(give_up(None, 2.5, True), AllKeysRateLimited)
    assert give_up(limited, 2.5, True).headers["Retry-After"] == "3"
    circuit = give_up(None, 1.2, False)  # only open circuits in the way
    assert type(circuit) is ProviderUnavailable and circuit.headers["Retry-After"] == "2"
    failed = ProviderError("boom")
    assert give_up(AttemptFailure(failed), 2.5, True) is failed
    assert type(give_up(None, math.inf, False)) is ProviderUnavailable  # e.g. every key quarantined
    assert type(give_up(limited, math.inf, True)) is ProviderUnavailable


def test_latency_strategy_probes_the_slow_target_again_now_and_then():
    from gateway.routing.strategies import LATENCY_PROBE_EVERY, TargetStats, order_targets

    fast, slow = A, B
    route = Route("latency", (fast, slow), (1.0, 1.0))
    stats = TargetStats()
    stats.observe_latency(slow, 2.0)
    stats.observe_latency(fast, 0.1)
    firsts = [order_targets(route, "probe-test", stats)[0].name for _ in range(LATENCY_PROBE_EVERY * 3)]
    assert firsts.count(slow.name) == 3  # one probe per LATENCY_PROBE_EVERY requests, the rest to the fast one
    for _ in range(10):  # probes keep finding it fast again: its average falls and it wins traffic back
        stats.observe_latency(slow, 0.01)
    assert order_targets(route, "probe-test", stats)[0].name == slow.name


# ------------------------------------------------------------------------- fair reservations
@pytest.mark.anyio
async def test_a_huge_estimate_holds_at_most_a_share_of_the_key_window_and_settles_to_the_real_usage():
    clock = Clock()
    board, store = board_on(clock)
    provider = spec("fair", limits=Limits(tokens_per_min=1000))
    state = board.state(provider.keys[0], provider)
    tokens = f"key:{state.ident}:tok"
    huge = await board.acquire(state, provider, 10**9)  # a request bigger than the window may start
    assert isinstance(huge, Reservation)
    assert await window_total(store, tokens) == 1000 * MAX_WINDOW_SHARE
    await board.settle(huge, 12)
    assert await window_total(store, tokens) == 12
    for _ in range(3):  # others still fit beside it: the cap bounds a request, not the limit
        assert isinstance(await board.acquire(state, provider, 10**9), Reservation)
    assert isinstance(await board.acquire(state, provider, 500), Blocked)


def limiter_on(clock: Clock) -> tuple[ClientLimiter, AsyncMemoryStore]:
    store = AsyncMemoryStore(clock=clock)
    return ClientLimiter(store, clock, 60.0, wall_clock=clock), store


@pytest.mark.anyio
async def test_budget_holds_the_estimated_cost_until_settled_with_the_real_one():
    clock = Clock()
    clock.now = 1_700_000_000.0
    limiter, store = limiter_on(clock)
    client = ClientSpec("c", b"", None, None, Limits(), Budget(daily_usd=1.0), False)
    pricing = Pricing(input_token_cost=0.0, output_token_cost=1000.0)
    first = await limiter.admit(client, 10, est_usd=2.0)  # nothing spent or held yet: admitted
    with pytest.raises(BudgetExceeded) as refused:
        await limiter.admit(client, 10, est_usd=0.01)
    assert refused.value.headers["Retry-After"] == "1"  # only held: it ends soon
    # the refused one gave its hold back
    assert await window_total(store, "client:c:held", HOLD_TTL_S) == pytest.approx(2.0)
    assert await limiter.settle(first, Usage(0, 2), pricing) == pytest.approx(2.0)
    assert await window_total(store, "client:c:held", HOLD_TTL_S) == 0.0
    assert (await limiter.spent(client))[0] == pytest.approx(2.0)
    with pytest.raises(BudgetExceeded) as spent:
        await limiter.admit(client, 10, est_usd=0.01)
    assert int(spent.value.headers["Retry-After"]) > 1  # really spent: until the next day


@pytest.mark.anyio
async def test_a_failed_request_gives_its_hold_back_once():
    limiter, store = limiter_on(Clock())
    client = ClientSpec("c", b"", None, None, Limits(tokens_per_min=100), Budget(monthly_usd=5.0), False)
    admission = await limiter.admit(client, 10**6, est_usd=7.0)
    assert await window_total(store, "client:c:tok") == 100  # at most the client's whole limit
    assert await limiter.settle(admission, None, None) == 0.0
    assert await limiter.settle(admission, None, None) == 0.0  # a second settle does not release twice
    assert await window_total(store, "client:c:held", HOLD_TTL_S) == 0.0
    assert await window_total(store, "client:c:tok") == 0


@pytest.mark.anyio
async def test_a_request_refused_by_its_rate_limit_gives_its_budget_hold_back():
    limiter, store = limiter_on(Clock())
    client = ClientSpec("c", b"", None, None, Limits(req_per_min=1), Budget(daily_usd=5.0), False)
    await limiter.admit(client, 10, est_usd=1.0)
    with pytest.raises(RateLimited):
        await limiter.admit(client, 10, est_usd=1.0)
    assert await window_total(store, "client:c:held", HOLD_TTL_S) == pytest.approx(1.0)  # the admitted one's hold only


def test_the_estimated_cost_is_the_dearest_target_s():
    cheap = Pricing(input_token_cost=1.0, output_token_cost=2.0)
    dear = Pricing(input_token_cost=3.0, output_token_cost=1.0)
    assert estimated_cost([cheap, dear], 1000, 1000) == pytest.approx(4.0)
    assert estimated_cost([cheap, dear], 0, 1000) == pytest.approx(2.0)
    assert estimated_cost([], 1000, 1000) == 0.0
