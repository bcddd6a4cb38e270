"""The async store contract, as one Protocol with swappable backends (memory, sqlite, redis, postgres).

Modelled on httpcore's ``_backends/base.py``: callers hold a ``Store`` and never know which
backend serves it; every backend passes the same contract suite (``tests/store/``).

Errors::

    StoreError
     ├── StoreUnavailable      the backend cannot be reached (at start, or lost while serving)
     ├── ClientExists          create: the id or the key digest is taken
     └── ClientNotFound        update, rotate: no client has that id

Everything that decides (a window check and its reservation, a spend hold) is atomic inside
the backend: a Lua script in Redis, one transaction in SQLite and PostgreSQL, one synchronous
step on the event loop in memory. Ledger rows are buffered in the process and written in
batches (``record`` never waits for I/O); ``flush`` returns once the buffered rows are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from ..core.policy import Budget, Limits

GroupBy = Literal["provider", "model", "client", "key"]
GROUP_COLUMNS: dict[GroupBy, str] = {"provider": "provider", "model": "model", "client": "client_id",
                                     "key": "key_label"}


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached. The message names the backend and its address, never a password."""


class ClientExists(StoreError):
    """A client with this id or this key digest already exists."""


class ClientNotFound(StoreError):
    """No client has this id."""


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
    """USD charged to a client in the current UTC day and month, and held by its requests in flight."""

    day: float
    month: float
    held: float


@dataclass(frozen=True, slots=True)
class Hold:
    """Spend held for one request in flight; ``release_spend`` gives it back. It lapses by itself
    after its ``ttl_s`` (a crashed process's holds do not block the budget for ever)."""

    client_id: str
    hold_id: str
    usd: float


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
    # what was called: "model" (a model request) or "mcp" (an MCP tool call: ``provider`` is the
    # MCP server's id, ``model`` the tool's own name, the sizes are of the JSON-RPC messages)
    kind: str = "model"
    bytes_in: int = 0
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


class Counters(Protocol):
    """The part of the store the request path decides with: windows, marks and spend (the key
    pools and the client limiter hold one; ``guard.GuardedCounters`` wraps a Store as one)."""

    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult: ...

    async def settle(self, reservation: Reservation, actual: float) -> None: ...

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch: ...

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None: ...

    async def set_mark(self, name: str, ttl_s: float) -> float: ...

    async def clear_mark(self, name: str) -> None: ...

    async def marks_remaining(self, names: Sequence[str]) -> list[float]: ...

    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None: ...

    async def spend(self, client_id: str, at: float | None = None) -> Spend: ...

    async def hold_spend(self, client_id: str, usd: float, ttl_s: float) -> Hold: ...

    async def release_spend(self, hold: Hold) -> None: ...


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


@runtime_checkable
class Store(Protocol):
    """State that changes while serving. Every backend implements all of it."""

    name: str  # "memory", "sqlite", "redis" or "postgres": for logs and readiness

    # --- limit windows -------------------------------------------------------------------
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        """Atomically: if the amounts counted in ``window`` over the last ``window_s`` seconds plus
        ``need`` stay within ``limit``, count ``need`` and return the reservation; else reserve
        nothing and return how long until it would fit (``window_s`` at most)."""
        ...

    async def settle(self, reservation: Reservation, actual: float) -> None:
        """Replace a reservation's amount by ``actual`` (0 withdraws it). A no-op once it slid out."""
        ...

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        """Read the client's spend (with ``budget``), then check the budget hold and ``asks`` in turn
        and reserve in every window, or in none (see ``Batch``). One round trip and atomic where the
        backend can (Redis: one script); else ``check_and_reserve`` in turn, withdrawn on refusal."""
        ...

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        """``settle`` each ``(reservation, actual)``, in one round trip where the backend can."""
        ...

    # --- expiring marks (cooldown, quarantine, circuit) ----------------------------------
    async def set_mark(self, name: str, ttl_s: float) -> float:
        """Set ``name`` until ``ttl_s`` from now, or keep a later expiry it has. Returns the seconds left."""
        ...

    async def clear_mark(self, name: str) -> None: ...

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        """Seconds left on each mark (0.0 where unset or expired), in the order asked."""
        ...

    # --- spend per client and UTC period --------------------------------------------------
    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        """Charge ``usd`` to the client's day and month (of ``at``, default now)."""
        ...

    async def spend(self, client_id: str, at: float | None = None) -> Spend: ...

    async def hold_spend(self, client_id: str, usd: float, ttl_s: float) -> Hold: ...

    async def release_spend(self, hold: Hold) -> None: ...

    # --- object pins (which provider key holds a file, an assistant, a thread) -------------
    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        """Remember ``value`` for ``object_id`` for ``ttl_s`` seconds (replacing what it had).
        ``value`` is opaque to the store (``pipeline/affinity.py`` writes a provider id and a key's
        ident, never a key). Bounded: expired pins are dropped (memory also drops the oldest)."""
        ...

    async def get_pin(self, object_id: str) -> str | None:
        """The value set for ``object_id``, or None when unset or expired."""
        ...

    async def clear_pin(self, object_id: str) -> None: ...

    # --- client directory -----------------------------------------------------------------
    async def create_client(self, record: ClientRecord) -> ClientRecord:
        """Add a client; ``created_at`` 0 becomes now. Raises ClientExists."""
        ...

    async def get_client(self, client_id: str) -> ClientRecord | None: ...

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None: ...

    async def list_clients(self) -> list[ClientRecord]:
        """Every client, ordered by id."""
        ...

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        """Replace the client with ``record.id`` (its key digest, created_at and last_used are kept).
        Raises ClientNotFound."""
        ...

    async def delete_client(self, client_id: str) -> bool: ...

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        """Give the client a new key digest; the old one stops matching at once. Raises
        ClientNotFound, or ClientExists if another client has that digest."""
        ...

    async def directory_version(self) -> int:
        """A number that changes whenever the directory does (cheap to poll from every process)."""
        ...

    # --- usage ledger ---------------------------------------------------------------------
    def record(self, row: LedgerRow) -> None:
        """Buffer a ledger row; a background task writes the buffer in batches. Never waits for I/O."""
        ...

    async def flush(self) -> int:
        """Write the buffered rows now (and the ``last_used`` of their clients). Returns how many."""
        ...

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        """Totals of the client's rows with ``start <= time <= end``."""
        ...

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        """Rows with ``start <= time <= end`` (of one client, of one ``kind``, if given) grouped, ordered by key."""
        ...

    async def prune_ledger(self, before: float) -> int:
        """Delete ledger rows older than ``before`` (epoch seconds). Returns how many."""
        ...

    # --- admin queries: time series, recent rows, the live feed (issue 10) -----------------
    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        """Rows with ``start <= time <= end`` (of one client, if given) counted in buckets of ``bucket_s``
        seconds aligned to its multiples, per group if ``group_by`` is given. Only
        buckets that have rows; ordered by group, then time."""
        ...

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        """The ``limit`` latest rows by request time (of one client, if given), newest first."""
        ...

    async def ledger_cursor(self) -> str:
        """A position after every row written so far: ``rows_after`` it returns only rows written later."""
        ...

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        """Up to ``limit`` rows written after ``cursor``, in the order they were written, and the cursor
        after them (the live request log). Rows may be missed by a reader that falls too far behind."""
        ...

    # --- lifecycle ------------------------------------------------------------------------
    async def ping(self) -> None:
        """Raise StoreUnavailable unless the backend answers."""
        ...

    async def close(self) -> None:
        """Flush the ledger and release connections and threads."""
        ...
