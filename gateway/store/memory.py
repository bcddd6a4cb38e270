"""In-process store (``AsyncMemoryStore``): the async Store contract for one worker.

No operation awaits anything between its check and its write, so on one event loop a check
followed by a reservation is atomic. The store is bounded: windows exist only for configured
keys and clients and for the sign-in throttle's fixed set of buckets (``api/ui/throttle.py``), spend
is kept for the current day and month only, and spend held for requests in flight only while
they run.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace

from .base import (
    Ask,
    Batch,
    BudgetAsk,
    ClientExists,
    ClientNotFound,
    ClientRecord,
    GroupBy,
    Hold,
    LedgerRow,
    Reservation,
    SeriesPoint,
    Spend,
    UsageGroup,
    UsageTotals,
    WindowResult,
)
from .common import (
    LedgerBuffer,
    groups_of,
    int_cursor,
    last_used_of,
    new_id,
    newest_first,
    periods,
    reserve_in_turn,
    series_of,
    settle_in_turn,
    totals_of,
    window_wait,
)

FEED_ROWS = 10_000  # the live request log keeps this many rows for its readers
MAX_PINS = 100_000  # object pins kept at most (the least recently set go first)


# --- the async Store contract, in memory (tests, one process) -----------------------------------


class _Window:
    """A window's entries, oldest first, by id (so a reservation can be settled)."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: OrderedDict[str, list[float]] = OrderedDict()  # id -> [at, amount]
        self.total = 0.0

    def expire(self, cutoff: float) -> None:
        while self.entries:
            entry_id, (at, amount) = next(iter(self.entries.items()))
            if at > cutoff:
                break
            del self.entries[entry_id]
            self.total -= amount
        if not self.entries:
            self.total = 0.0


class AsyncMemoryStore:
    """The ``Store`` contract for one process: each call runs to the end without awaiting, so it
    is atomic on the event loop. Nothing survives a restart."""

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time, ledger_interval_s: float = 0.5) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._marks: dict[str, float] = {}
        self._spend: dict[tuple[str, str], float] = {}
        self._spend_day = ""
        self._holds: dict[str, dict[str, tuple[float, float]]] = {}  # client -> hold id -> (usd, expires)
        self._clients: dict[str, ClientRecord] = {}
        self._digests: dict[bytes, str] = {}
        self._version = 0
        self._ledger: list[LedgerRow] = []
        self._buffer = LedgerBuffer(self._write_rows, interval_s=ledger_interval_s)
        self._feed: deque[tuple[int, LedgerRow]] = deque(maxlen=FEED_ROWS)  # the live request log
        self._feed_seq = 0
        self._pins: OrderedDict[str, tuple[str, float]] = OrderedDict()  # id -> (value, expires), oldest first

    # windows
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        now = self._clock()
        win = self._windows.get(window)
        if win is None:
            win = self._windows[window] = _Window()
        win.expire(now - window_s)
        if win.total + need <= limit:
            entry = new_id()
            win.entries[entry] = [now, need]
            win.total += need
            oldest = next(iter(win.entries.values()))[0]
            return WindowResult(Reservation(window, entry, need, now, window_s), 0.0, win.total,
                                max(0.0, oldest + window_s - now))
        wait = window_wait(((e[0], e[1]) for e in win.entries.values()), win.total, now, window_s, limit, need)
        reset = next(iter(win.entries.values()))[0] + window_s - now if win.entries else window_s
        if not win.entries:
            del self._windows[window]
        return WindowResult(None, wait, win.total, max(0.0, reset))

    async def settle(self, reservation: Reservation, actual: float) -> None:
        win = self._windows.get(reservation.window)
        entry = None if win is None else win.entries.get(reservation.entry)
        if win is None or entry is None:
            return
        win.total += actual - entry[1]
        if actual <= 0:
            del win.entries[reservation.entry]
        else:
            entry[1] = actual

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        return await reserve_in_turn(self, asks, budget)

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        await settle_in_turn(self, settles)

    # marks
    async def set_mark(self, name: str, ttl_s: float) -> float:
        now = self._clock()
        until = max(self._marks.get(name, 0.0), now + ttl_s)
        self._marks[name] = until
        return until - now

    async def clear_mark(self, name: str) -> None:
        self._marks.pop(name, None)

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        now = self._clock()
        out = []
        for name in names:
            left = self._marks.get(name, 0.0) - now
            if left <= 0:
                self._marks.pop(name, None)
            out.append(max(0.0, left))
        return out

    # spend
    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        self._prune_spend()
        for period in periods(self._clock() if at is None else at):
            self._spend[client_id, period] = self._spend.get((client_id, period), 0.0) + usd

    def _prune_spend(self) -> None:
        """Keep about two months of periods: past ones are never read."""
        today = periods(self._clock())[0]
        if today == self._spend_day:
            return
        self._spend_day = today
        old_day, old_month = periods(self._clock() - 62 * 86400)
        for key in [k for k in self._spend if k[1] < (old_day if len(k[1]) == 10 else old_month)]:
            del self._spend[key]

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        day, month = periods(self._clock() if at is None else at)
        return Spend(self._spend.get((client_id, day), 0.0), self._spend.get((client_id, month), 0.0),
                     self._held(client_id))

    def _held(self, client_id: str) -> float:
        holds = self._holds.get(client_id)
        if not holds:
            return 0.0
        now = self._clock()
        for hold_id in [h for h, (_, expires) in holds.items() if expires <= now]:
            del holds[hold_id]
        if not holds:
            del self._holds[client_id]
        return sum(usd for usd, _ in holds.values())

    async def hold_spend(self, client_id: str, usd: float, ttl_s: float) -> Hold:
        hold = Hold(client_id, new_id(), usd)
        self._holds.setdefault(client_id, {})[hold.hold_id] = (usd, self._clock() + ttl_s)
        return hold

    async def release_spend(self, hold: Hold) -> None:
        holds = self._holds.get(hold.client_id)
        if holds is not None:
            holds.pop(hold.hold_id, None)
            if not holds:
                del self._holds[hold.client_id]

    # object pins
    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        pins = self._pins
        pins[object_id] = (value, self._clock() + ttl_s)
        pins.move_to_end(object_id)
        while len(pins) > MAX_PINS:
            pins.popitem(last=False)

    async def get_pin(self, object_id: str) -> str | None:
        found = self._pins.get(object_id)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._pins[object_id]
            return None
        return found[0]

    async def clear_pin(self, object_id: str) -> None:
        self._pins.pop(object_id, None)

    # client directory
    async def create_client(self, record: ClientRecord) -> ClientRecord:
        if record.id in self._clients or record.key_digest in self._digests:
            raise ClientExists(f"a client with id {record.id!r} or the same key already exists")
        if not record.created_at:
            record = replace(record, created_at=self._clock())
        self._put(record)
        return record

    def _put(self, record: ClientRecord) -> None:
        self._clients[record.id] = record
        self._digests[record.key_digest] = record.id
        self._version += 1

    async def get_client(self, client_id: str) -> ClientRecord | None:
        return self._clients.get(client_id)

    async def client_by_digest(self, digest: bytes) -> ClientRecord | None:
        client_id = self._digests.get(digest)
        return None if client_id is None else self._clients.get(client_id)

    async def list_clients(self) -> list[ClientRecord]:
        return [self._clients[k] for k in sorted(self._clients)]

    async def update_client(self, record: ClientRecord) -> ClientRecord:
        old = self._clients.get(record.id)
        if old is None:
            raise ClientNotFound(f"no client with id {record.id!r}")
        new = replace(record, key_digest=old.key_digest, created_at=old.created_at, last_used=old.last_used)
        self._put(new)
        return new

    async def delete_client(self, client_id: str) -> bool:
        old = self._clients.pop(client_id, None)
        if old is None:
            return False
        del self._digests[old.key_digest]
        self._version += 1
        return True

    async def rotate_client(self, client_id: str, new_digest: bytes) -> ClientRecord:
        old = self._clients.get(client_id)
        if old is None:
            raise ClientNotFound(f"no client with id {client_id!r}")
        if self._digests.get(new_digest, client_id) != client_id:
            raise ClientExists("another client has this key")
        del self._digests[old.key_digest]
        new = replace(old, key_digest=new_digest)
        self._put(new)
        return new

    async def directory_version(self) -> int:
        return self._version

    # ledger
    def record(self, row: LedgerRow) -> None:
        self._buffer.record(row)

    async def flush(self) -> int:
        return await self._buffer.flush()

    async def _write_rows(self, rows: list[LedgerRow]) -> None:
        self._ledger.extend(rows)
        self._feed_rows(rows)
        for client_id, last in last_used_of(rows).items():
            old = self._clients.get(client_id)
            if old is not None and (old.last_used or 0.0) < last:
                self._clients[client_id] = replace(old, last_used=last)

    def _rows(self, start: float, end: float) -> list[LedgerRow]:
        return [r for r in self._ledger if start <= r.time <= end]

    async def usage_totals(self, client_id: str, start: float, end: float) -> UsageTotals:
        return totals_of(client_id, (r for r in self._rows(start, end) if r.client_id == client_id))

    async def usage_stats(self, group_by: GroupBy, start: float, end: float,
                          client_id: str | None = None, kind: str | None = None) -> list[UsageGroup]:
        rows = self._rows(start, end)
        return groups_of(group_by, (r for r in rows if (client_id is None or r.client_id == client_id)
                                    and (kind is None or r.kind == kind)))

    async def prune_ledger(self, before: float) -> int:
        kept = [r for r in self._ledger if r.time >= before]
        removed = len(self._ledger) - len(kept)
        self._ledger = kept
        return removed

    # admin queries (issue 10)
    def _feed_rows(self, rows: list[LedgerRow]) -> None:
        for row in rows:
            self._feed_seq += 1
            self._feed.append((self._feed_seq, row))

    async def usage_series(self, bucket_s: float, start: float, end: float, group_by: GroupBy | None = None,
                           client_id: str | None = None) -> list[SeriesPoint]:
        rows = self._rows(start, end)
        return series_of((r for r in rows if client_id is None or r.client_id == client_id), bucket_s, group_by)

    async def recent_rows(self, limit: int, client_id: str | None = None) -> list[LedgerRow]:
        return newest_first(self._ledger, limit, client_id)

    async def ledger_cursor(self) -> str:
        return str(self._feed_seq)

    async def rows_after(self, cursor: str, limit: int = 500) -> tuple[list[LedgerRow], str]:
        after = min(int_cursor(cursor), self._feed_seq)  # a cursor from before a restart: from now on
        found = [(seq, row) for seq, row in self._feed if seq > after][:limit]
        return [row for _, row in found], str(found[-1][0] if found else max(after, 0))

    # lifecycle
    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        await self._buffer.close()
