"""The store's contract: one small Protocol per role, composed into ``Store``, and its errors.

Callers hold the role they need (the key pool and the client limiter a ``Counters``, the pins a
``Pins``, authentication a ``Directory``, the admin API a ``Ledger``) and never know which
backend serves it; every backend passes the role's contract suite (``tests/store/``). How a
backend is put together from its roles: the package docstring (``store/__init__.py``).

Errors::

    StoreError
     ├── StoreDown             the backend cannot be reached or cannot answer (at start, or while serving)
     ├── ClientExists          create: the id or the key digest is taken
     └── ClientNotFound        update, rotate: no client has that id

``StoreDown`` is the backend's word; ``errors.StoreUnavailable`` is what a client is told (503).

Everything that decides (a window check and its reservation, the budget hold) is atomic inside
the backend: a Lua script in Redis, one transaction in SQLite and PostgreSQL, one synchronous
step on the event loop in memory. Ledger rows are buffered in the process and written in
batches (``record`` never waits for I/O); ``flush`` returns once the buffered rows are stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

from .values import (
    Ask,
    Batch,
    BudgetAsk,
    ClientRecord,
    GroupBy,
    LedgerRow,
    Reservation,
    SeriesPoint,
    Spend,
    UsageGroup,
    UsageTotals,
    WindowResult,
)

if TYPE_CHECKING:
    from ..cache.base import CacheBackend


class StoreError(Exception):
    """Base of the store's errors."""


class StoreDown(StoreError):
    """The backend cannot be reached. The message names the backend and its address, never a password."""


class ClientExists(StoreError):
    """A client with this id or this key digest already exists."""


class ClientNotFound(StoreError):
    """No client has this id."""


class Counters(Protocol):
    """What the request path decides with: limit windows, expiring marks and spend."""

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

    # --- expiring marks (cooldown, quarantine, circuit, dashboard sign-outs) --------------
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


class Pins(Protocol):
    """Object pins: which provider key holds a file, an assistant, a thread."""

    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        """Remember ``value`` for ``object_id`` for ``ttl_s`` seconds (replacing what it had).
        ``value`` is opaque to the store (``pipeline/affinity.py`` writes a provider id and a key's
        ident, never a key). Bounded: expired pins are dropped (memory also drops the oldest)."""
        ...

    async def get_pin(self, object_id: str) -> str | None:
        """The value set for ``object_id``, or None when unset or expired."""
        ...

    async def clear_pin(self, object_id: str) -> None: ...


class Directory(Protocol):
    """The clients created at runtime (the admin API writes them, authentication reads them)."""

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


class Ledger(Protocol):
    """The usage ledger: rows written in batches off the request path, what they add up to, and
    the live feed of rows as they are written."""

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

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        """Rows with ``start <= time <= end`` (of one client, if given) counted in buckets of ``bucket_s``
        seconds aligned to its multiples, per group if ``group_by`` is given. Only
        buckets that have rows; ordered by group, then time."""
        ...

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        """The ``limit`` latest rows by request time (of one client, if given), newest first."""
        ...

    async def prune_ledger(self, before: float) -> int:
        """Delete ledger rows older than ``before`` (epoch seconds). Returns how many."""
        ...

    async def ledger_cursor(self) -> str:
        """A position after every row written so far: ``rows_after`` it returns only rows written later."""
        ...

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        """Up to ``limit`` rows written after ``cursor``, in the order they were written, and the cursor
        after them (the live request log). Rows may be missed by a reader that falls too far behind."""
        ...

    async def close(self) -> None:
        """Stop the background writer and write what is buffered."""
        ...


class Lifecycle(Protocol):
    """The backend as a whole: its name, what it can do (callers decide by these flags, never by
    the name), and its connections."""

    name: ClassVar[str]  # "memory", "sqlite", "redis" or "postgres": for logs and readiness
    shared: ClassVar[bool]  # other processes and replicas see the same state (memory: no)
    durable: ClassVar[bool]  # the state outlives the gateway's process (memory: no)
    # several workers counting through it serve more than one worker alone. SQLite: no (every
    # write takes the file's lock), so one process keeps its windows and marks in memory and only
    # spend in the file, and ``serve`` refuses several workers on it
    scales_workers: ClassVar[bool]
    serves_cache: ClassVar[bool]  # the response cache can live on the same server (``response_cache``)

    def response_cache(self) -> CacheBackend:
        """A response-cache backend on the same server (only where ``serves_cache``)."""
        ...

    async def ping(self) -> None:
        """Raise StoreDown unless the backend answers."""
        ...

    async def close(self) -> None:
        """Flush the ledger and release connections and threads."""
        ...


class Store(Counters, Pins, Directory, Ledger, Lifecycle, Protocol):
    """State that changes while serving: every role, on one backend."""
