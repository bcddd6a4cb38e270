"""Client limits (requests and tokens per window) and budgets (USD per UTC day and month).

Tokens are estimated before the call (prompt estimate plus ``max_tokens``) and settled with
the real usage afterwards; cost comes from the serving provider's ``pricing`` (USD per 1K
tokens) and the real usage, streamed answers included.

Budgets count requests in flight: admission holds the request's estimated cost
(``estimated_cost``) and ``settle`` swaps it for the real cost when the request ends, however it
ends. A request is admitted while spent plus held is under the budget, so the spend can pass the
budget by at most about one request, however many arrive at once.
"""

from __future__ import annotations

import calendar
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .config.schema import Pricing
from .config.snapshot import ClientSpec
from .errors import BudgetExceeded, RateLimited
from .providers.base import Usage
from .store.memory import MemoryStore, SlidingWindow, WindowEntry

# Output tokens assumed for a request that names no max_tokens, when its cost is held (see estimated_cost).
DEFAULT_OUTPUT_TOKENS = 4096
# Retry-After when the budget is only held by requests in flight: they end (and settle) soon.
HELD_RETRY_AFTER_S = 1.0


def cost_usd(pricing: Pricing, usage: Usage) -> float:
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    return (prompt * pricing.input_token_cost + completion * pricing.output_token_cost) / 1000.0


def estimated_cost(pricings: Iterable[Pricing], prompt_tokens: int, output_tokens: int) -> float:
    """What a request may cost before it is sent: the estimated prompt and ``output_tokens`` (its
    ``max_tokens``, else ``DEFAULT_OUTPUT_TOKENS``) at the dearest pricing among the targets it
    may be served by. The dearest, because failover or a strategy may serve it from any of them:
    the hold must cover whichever does, or the budget's bound would not hold."""
    return max((cost_usd(p, Usage(prompt_tokens, output_tokens)) for p in pricings), default=0.0)


@dataclass(slots=True)
class Admission:
    client: ClientSpec
    tokens: WindowEntry | None = None
    headers: dict[str, str] = field(default_factory=dict)
    held_usd: float = 0.0  # the estimated cost held against the budget until settle


def current_periods(now_wall: float) -> tuple[str, str]:
    t = time.gmtime(now_wall)
    return time.strftime("%Y-%m-%d", t), time.strftime("%Y-%m", t)


def _seconds_to_next_day(now_wall: float) -> float:
    return 86400 - (now_wall % 86400)


def _seconds_to_next_month(now_wall: float) -> float:
    t = time.gmtime(now_wall)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) - now_wall


class ClientLimiter:
    def __init__(self, store: MemoryStore, clock: Callable[[], float], window_s: float = 60.0,
                 wall_clock: Callable[[], float] = time.time):
        self.store = store
        self.clock = clock
        self.wall_clock = wall_clock
        self.window_s = window_s

    def admit(self, client: ClientSpec, est_tokens: float, est_usd: float = 0.0) -> Admission:
        """Check the client's budget and limits; count the request, hold its tokens and cost."""
        admission = self._admit_limits(client, est_tokens)
        budget = client.budget
        if budget.daily_usd is not None or budget.monthly_usd is not None:
            self.store.hold_spend(f"client:{client.id}", est_usd)
            admission.held_usd = est_usd
        return admission

    def _admit_limits(self, client: ClientSpec, est_tokens: float) -> Admission:
        limits, budget = client.limits, client.budget
        admission = Admission(client)
        if budget.daily_usd is not None or budget.monthly_usd is not None:
            self._check_budget(client)
        if limits.req_per_min is None and limits.tokens_per_min is None:
            return admission
        now = self.clock()
        requests = self.store.window(f"client:{client.id}:req")
        tokens = self.store.window(f"client:{client.id}:tok")
        headers = admission.headers
        if limits.req_per_min is not None:
            wait = requests.wait_until_fits(now, self.window_s, limits.req_per_min, 1, True)
            used = requests.count(now, self.window_s)
            headers.update(_headers("requests", limits.req_per_min, limits.req_per_min - used - (wait == 0),
                                    self._reset(requests, now)))
            if wait > 0:
                raise RateLimited(f"This key is limited to {limits.req_per_min} requests per "
                                  f"{self._window_words()}.", retry_after=wait, headers=headers)
        if limits.tokens_per_min is not None:
            need = min(est_tokens, limits.tokens_per_min)
            wait = tokens.wait_until_fits(now, self.window_s, limits.tokens_per_min, need, False)
            used_tokens = tokens.total(now, self.window_s)
            headers.update(_headers("tokens", limits.tokens_per_min,
                                    limits.tokens_per_min - used_tokens - (need if wait == 0 else 0),
                                    self._reset(tokens, now)))
            if wait > 0:
                raise RateLimited(f"This key is limited to {limits.tokens_per_min} tokens per "
                                  f"{self._window_words()}.", retry_after=wait, headers=headers)
        if limits.req_per_min is not None:
            requests.add(now)
        if limits.tokens_per_min is not None:
            # at most the whole limit: what a request bigger than the window may hold while it runs
            admission.tokens = tokens.add(now, min(est_tokens, limits.tokens_per_min))
        return admission

    def settle(self, admission: Admission, usage: Usage | None, pricing: Pricing | None) -> float:
        """Replace the token estimate with the real usage; release the held cost and charge the
        real one (none when ``usage`` is None: the request failed). Returns USD."""
        client = admission.client
        if admission.held_usd:
            self.store.release_spend(f"client:{client.id}", admission.held_usd)
            admission.held_usd = 0.0
        real = usage.total_tokens if usage is not None else 0
        if admission.tokens is not None:
            self.store.window(f"client:{client.id}:tok").adjust(admission.tokens, real - admission.tokens.amount)
            admission.tokens = None
        if usage is None or pricing is None:
            return 0.0
        usd = cost_usd(pricing, usage)
        if usd > 0:
            self.store.add_spend(f"client:{client.id}", usd, current_periods(self.wall_clock()))
        return usd

    def spent(self, client: ClientSpec) -> tuple[float, float]:
        day, month = current_periods(self.wall_clock())
        name = f"client:{client.id}"
        return self.store.spend(f"{name}@{day}"), self.store.spend(f"{name}@{month}")

    def _check_budget(self, client: ClientSpec) -> None:
        budget = client.budget
        now_wall = self.wall_clock()
        day, month = self.spent(client)
        held = self.store.held(f"client:{client.id}")
        if budget.daily_usd is not None:
            _check_period("daily", budget.daily_usd, day, held, _seconds_to_next_day(now_wall))
        if budget.monthly_usd is not None:
            _check_period("monthly", budget.monthly_usd, month, held, _seconds_to_next_month(now_wall))

    def _reset(self, window: SlidingWindow, now: float) -> float:
        oldest = window.oldest(now, self.window_s)
        return self.window_s if oldest is None else max(0.0, oldest + self.window_s - now)

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
