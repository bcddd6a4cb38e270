"""Windows, marks and spend in this process (``MemoryCounters``).

No operation awaits anything between its check and its write, so on one event loop a check
followed by a reservation is atomic. Bounded: windows exist only for configured keys and
clients and for the sign-in throttle's fixed set of buckets (``api/ui/throttle.py``), and spend
is kept for about two months.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ..common import new_id, periods, reserve_in_turn, settle_in_turn, window_wait
from ..values import Ask, Batch, BudgetAsk, Reservation, Spend, WindowResult


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


class MemoryCounters:
    """The ``Counters`` role for one process: each call runs to the end without awaiting."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._marks: dict[str, float] = {}
        self._spend: dict[tuple[str, str], float] = {}
        self._spend_day = ""

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
        return Spend(self._spend.get((client_id, day), 0.0), self._spend.get((client_id, month), 0.0))
