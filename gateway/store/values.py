"""The values the store's roles take and return: window reservations and their answers, spend,
client records, ledger rows and what the ledger's queries add up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..core.policy import Budget, Limits

GroupBy = Literal["provider", "model", "client", "key"]
GROUP_COLUMNS: dict[GroupBy, str] = {"provider": "provider", "model": "model", "client": "client_id",
                                     "key": "key_label"}


@dataclass(frozen=True, slots=True)
class Reservation:
    """An amount counted in a window until it slides out (or until ``settle`` changes it)."""

    window: str
    entry: str  # the entry's id inside the window
    amount: float
    at: float  # when it was counted (the backend's clock, epoch seconds)
    window_s: float


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The answer of ``check_and_reserve``: a reservation, or how long until ``need`` fits."""

    reservation: Reservation | None
    wait_s: float  # 0.0 when reserved
    used: float  # what the window holds now (the reservation included when there is one)
    reset_s: float  # seconds until the oldest entry slides out (window_s when the window is empty)

    @property
    def ok(self) -> bool:
        return self.reservation is not None


@dataclass(frozen=True, slots=True)
class Ask:
    """One window of ``reserve_all``: what ``check_and_reserve`` takes."""

    window: str
    limit: float
    need: float
    window_s: float


@dataclass(frozen=True, slots=True)
class BudgetAsk:
    """The budget hold of ``reserve_all``: hold ``need`` USD in ``window`` while what the window
    holds stays under what the tighter of the client's budgets has left after its spend of the UTC
    day and month of ``at`` (the window's limit is that, plus ``need``, less a hair)."""

    client_id: str
    at: float
    daily_usd: float | None
    monthly_usd: float | None
    window: str
    need: float
    window_s: float

    def limit(self, day: float, month: float) -> float:
        left = min(b - s for b, s in ((self.daily_usd, day), (self.monthly_usd, month)) if b is not None)
        return left + self.need - 1e-9


@dataclass(frozen=True, slots=True)
class Batch:
    """The answer of ``reserve_all``: one result per window checked, in order (the budget hold
    first when asked), up to the first that did not fit. All reserved, or (``refused``) none:
    the last result is then the one that did not fit, the others say what they would have held."""

    results: tuple[WindowResult, ...]
    refused: bool
    spend: Spend | None = None  # the client's spend (day, month) read in the same step, when a budget was asked

    @property
    def ok(self) -> bool:
        return not self.refused


@dataclass(frozen=True, slots=True)
class Spend:
    """USD charged to a client in one UTC day and month (what its requests in flight hold is a
    window of its own: ``BudgetAsk``)."""

    day: float
    month: float


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client of the directory. ``key_digest`` is the SHA-256 of its key; the key itself is never stored."""

    id: str
    key_digest: bytes = field(repr=False)
    description: str = ""
    allowed_providers: tuple[str, ...] = ("*",)
    allowed_models: tuple[str, ...] = ("*",)
    limits: Limits = Limits()
    budget: Budget = Budget()
    admin: bool = False
    created_at: float = 0.0
    last_used: float | None = None


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One request, as the usage ledger keeps it."""

    time: float  # epoch seconds, when the request arrived
    request_id: str
    client_id: str
    provider: str
    model: str
    key_label: str
    status: int
    error_code: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    overhead_ms: float = 0.0
    stream: bool = False
    cache_hit: bool = False
    # parts of tokens_in / tokens_out (core.usage.Usage): prompt-cache reads and writes, reasoning
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    kind: str = "model"  # "model": a request to a model; "tool": an MCP tool call (provider: server, model: tool)
    bytes_in: int = 0  # a tool call's argument and result sizes (model requests: 0)
    bytes_out: int = 0

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def spent_usd(self) -> float:
        """What the request cost: nothing for a response-cache hit (its ``cost_usd`` is what it saved)."""
        return 0.0 if self.cache_hit else self.cost_usd


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """One client's usage over a period (the client-management document's metrics answer)."""

    client_id: str
    total_requests: int
    total_tokens: int
    total_cost: float
    success_rate: float  # 0.0 when there were no requests
    avg_latency: float  # milliseconds
    last_request_time: float | None


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Usage of one provider, model, client or key over a period."""

    key: str
    requests: int
    tokens_in: int
    tokens_out: int
    cost: float  # spent: response-cache hits cost nothing
    errors: int
    avg_latency: float  # milliseconds
    cache_hits: int = 0  # requests answered from the response cache
    saved_usd: float = 0.0  # what those answers cost when they were fetched




@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """Usage of one group in one time bucket (the admin API's ``/timeseries``)."""

    key: str  # the group (provider, model or client); "" when not grouped
    t: float  # the bucket's start: a multiple of the bucket width, epoch seconds
    requests: int
    errors: int
    tokens: int
    cost: float
    p50_ms: float  # latency percentiles of the bucket's requests (nearest rank)
    p99_ms: float
    overhead_p50_ms: float
