"""Client limits (requests and tokens per window) and budgets (USD per UTC day and month).

Tokens are estimated before the call (prompt estimate plus ``max_tokens``) and settled with
the real usage afterwards; cost comes from the served model's price (``Target.pricing``: the
model's own ``pricing`` where the provider gives one, else the provider's; USD per 1K tokens) and
the real usage, streamed answers included.

Budgets count requests in flight: admission holds the request's estimated cost
(``estimated_cost``) and ``settle`` swaps it for the real cost when the request ends, however it
ends. A request is admitted while spent plus held is under the budget, so the spend can pass the
budget by at most about one request, however many arrive at once.
"""

from __future__ import annotations

import calendar
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..core.pricing import Pricing, cost_usd
from ..core.targets import ClientSpec
from ..core.usage import Usage
from ..errors import BudgetExceeded, RateLimited
from ..store.base import Counters
from ..store.values import Ask, BudgetAsk, Reservation, Spend

# Retry-After when the budget is only held by requests in flight: they end (and settle) soon.
HELD_RETRY_AFTER_S = 1.0
# A request's cost hold lapses by itself after this long (a crashed process's holds do not block for ever).
HOLD_TTL_S = 900.0


@dataclass(slots=True)
class Admission:
    client: ClientSpec
    tokens: Reservation | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: Reservation | None = None  # the estimated cost held against the budget until settle


def _seconds_to_next_day(now_wall: float) -> float:
    return 86400 - (now_wall % 86400)


def _seconds_to_next_month(now_wall: float) -> float:
    t = time.gmtime(now_wall)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) - now_wall


class ClientLimiter:
    """Client limits and budgets, counted in the store (``storage.runtime``): shared exactly by
    every worker and replica on it. Windows are ``client:<id>:req`` and ``:tok``; spend and holds
    are kept per client id."""

    def __init__(self, store: Counters, clock: Callable[[], float], window_s: float = 60.0,
                 wall_clock: Callable[[], float] = time.time):
        self.store = store
        self.clock = clock
        self.wall_clock = wall_clock
        self.window_s = window_s

    async def admit(self, client: ClientSpec, est_tokens: float, est_usd: float = 0.0) -> Admission:
        """Check the client's budget and limits; count the request, hold its tokens and cost: all in
        one step of the store (``reserve_all``), or nothing when any of them refuses.

        The budget hold is an entry of the window ``client:<id>:held`` (it lapses after
        ``HOLD_TTL_S`` if a process dies with it). The window admits ``est_usd`` while what it
        holds stays under what the budget has left after the spend (``BudgetAsk``): many requests
        at once on many replicas cannot all slip under the budget's last cent, and one always can."""
        admission = Admission(client)
        budget, limits, name = client.budget, client.limits, client.id
        hold = None
        if budget.daily_usd is not None or budget.monthly_usd is not None:
            hold = BudgetAsk(name, self.wall_clock(), budget.daily_usd, budget.monthly_usd, f"client:{name}:held",
                             est_usd, HOLD_TTL_S)
        asks: list[tuple[str, float, Ask]] = []
        if limits.req_per_min is not None:
            asks.append(("requests", limits.req_per_min,
                         Ask(f"client:{name}:req", limits.req_per_min, 1, self.window_s)))
        if limits.tokens_per_min is not None:
            # at most the whole limit: what a request bigger than the window may hold while it runs
            asks.append(("tokens", limits.tokens_per_min, Ask(f"client:{name}:tok", limits.tokens_per_min,
                                                              min(est_tokens, limits.tokens_per_min), self.window_s)))
        if hold is None and not asks:
            return admission
        return await self._reserve(admission, asks, hold)

    async def admit_tool_call(self, client: ClientSpec, price_usd: float) -> Admission:
        """An MCP tool call: the client's ``tool_calls_per_min`` window and, when the call has a price
        and the client a budget, the price held against the budget (``settle_charge`` ends it)."""
        admission = Admission(client)
        budget, per_min = client.budget, client.tool_calls_per_min
        hold = None
        if price_usd > 0 and (budget.daily_usd is not None or budget.monthly_usd is not None):
            hold = BudgetAsk(client.id, self.wall_clock(), budget.daily_usd, budget.monthly_usd,
                             f"client:{client.id}:held", price_usd, HOLD_TTL_S)
        asks = [("tool calls", per_min, Ask(f"client:{client.id}:tool", per_min, 1, self.window_s))] \
            if per_min is not None else []
        if hold is None and not asks:
            return admission
        return await self._reserve(admission, asks, hold, headers=False)

    async def _reserve(self, admission: Admission, asks: Sequence[tuple[str, float, Ask]], hold: BudgetAsk | None,
                       headers: bool = True) -> Admission:
        """Reserve ``asks`` and the budget ``hold`` in one step; raise the refusal of the one that did not fit."""
        batch = await self.store.reserve_all([a for _, _, a in asks], hold)
        results = list(batch.results)
        if hold is not None:
            held = results.pop(0)
            if batch.refused and not results:
                self._refuse_budget(hold, batch.spend, held.used)
            admission.hold = held.reservation
        for (kind, limit, _), got in zip(asks, results, strict=False):
            if headers:
                admission.headers.update(_headers(kind, limit, limit - got.used, got.reset_s))
            if batch.refused and got is results[-1]:
                raise RateLimited(f"This key is limited to {limit} {kind} per {self._window_words()}.",
                                  retry_after=got.wait_s, headers=admission.headers)
            if kind == "tokens":
                admission.tokens = got.reservation
        return admission

    async def settle_charge(self, admission: Admission, usd: float) -> None:
        """Charge ``usd`` (an MCP call's price) and release what was held for it."""
        if usd > 0:
            await self.store.add_spend(admission.client.id, usd, self.wall_clock())
        if admission.hold is not None:
            await self.store.settle_all([(admission.hold, 0.0)])
            admission.hold = None

    def _refuse_budget(self, hold: BudgetAsk, spend: Spend | None, held: float) -> None:
        """Raise the BudgetExceeded that a refused budget hold means (the tighter period's)."""
        now_wall = hold.at
        day, month = (spend.day, spend.month) if spend is not None else (0.0, 0.0)
        periods = [("daily", hold.daily_usd, day, _seconds_to_next_day(now_wall)),
                   ("monthly", hold.monthly_usd, month, _seconds_to_next_month(now_wall))]
        period, budget_usd, spent, left_s = min(((p, b, s, t) for p, b, s, t in periods if b is not None),
                                                key=lambda p: p[1] - p[2])
        _check_period(period, budget_usd, spent, 0.0, left_s)
        _check_period(period, budget_usd, spent, held, left_s)
        raise BudgetExceeded(f"This key's {period} budget is held by its requests in flight.",
                             retry_after=HELD_RETRY_AFTER_S)

    async def settle(self, admission: Admission, usage: Usage | None, pricing: Pricing | None) -> float:
        """Replace the token estimate with the real usage; charge the real cost and release the
        held one (none when ``usage`` is None: the request failed). Returns USD.

        The charge is made before the hold is released: for a moment both count (the budget
        errs on the safe side), never neither."""
        usd = 0.0 if usage is None or pricing is None else cost_usd(pricing, usage)
        if usd > 0:
            await self.store.add_spend(admission.client.id, usd, self.wall_clock())
        settles: list[tuple[Reservation, float]] = []
        if admission.hold is not None:
            settles.append((admission.hold, 0.0))
            admission.hold = None
        if admission.tokens is not None:
            settles.append((admission.tokens, usage.total_tokens if usage is not None else 0.0))
            admission.tokens = None
        if settles:
            await self.store.settle_all(settles)
        return usd

    async def spent(self, client: ClientSpec) -> tuple[float, float]:
        """USD the client spent today and this month (UTC), holds not included."""
        spend = await self.store.spend(client.id, self.wall_clock())
        return spend.day, spend.month

    def _window_words(self) -> str:
        return "minute" if self.window_s == 60 else f"{self.window_s:g} seconds"


def _check_period(period: str, budget_usd: float, spent: float, held: float, period_left_s: float) -> None:
    if spent >= budget_usd:
        raise BudgetExceeded(f"This key's {period} budget of ${budget_usd:g} is spent.", retry_after=period_left_s)
    if spent + held >= budget_usd:
        raise BudgetExceeded(f"This key's {period} budget of ${budget_usd:g} is spent or held by its "
                             "requests in flight; retry when they end.", retry_after=HELD_RETRY_AFTER_S)


def _headers(kind: str, limit: float, remaining: float, reset_s: float) -> dict[str, str]:
    remaining = max(0, int(remaining))
    reset = str(max(0, math.ceil(reset_s)))
    out = {f"x-ratelimit-limit-{kind}": str(int(limit)), f"x-ratelimit-remaining-{kind}": str(remaining),
           f"x-ratelimit-reset-{kind}": reset + "s"}
    if kind == "requests":
        out.update({"x-ratelimit-limit": str(int(limit)), "x-ratelimit-remaining": str(remaining),
                    "x-ratelimit-reset": reset})
    return out
