"""In-process store: sliding windows and spend counters for one worker.

Every operation is synchronous and completes without awaiting, so on one event loop a check
followed by a reservation is atomic. The store is bounded: windows exist only for configured
keys and clients, spend is kept for the current day and month only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class WindowEntry:
    at: float
    amount: float


class SlidingWindow:
    """Amounts added over the last ``span`` seconds (a log, exact, bounded by the limit)."""

    __slots__ = ("_entries", "_total")

    def __init__(self) -> None:
        self._entries: deque[WindowEntry] = deque()
        self._total = 0.0

    def _expire(self, now: float, span: float) -> None:
        entries = self._entries
        cutoff = now - span
        while entries and entries[0].at <= cutoff:
            self._total -= entries.popleft().amount
        if not entries:
            self._total = 0.0

    def total(self, now: float, span: float) -> float:
        self._expire(now, span)
        return self._total

    def count(self, now: float, span: float) -> int:
        self._expire(now, span)
        return len(self._entries)

    def oldest(self, now: float, span: float) -> float | None:
        self._expire(now, span)
        return self._entries[0].at if self._entries else None

    def add(self, now: float, amount: float = 1.0) -> WindowEntry:
        entry = WindowEntry(now, amount)
        self._entries.append(entry)
        self._total += amount
        return entry

    def adjust(self, entry: WindowEntry, delta: float) -> None:
        """Settle an estimate with the real amount (only while the entry is still counted)."""
        if self._entries and entry.at >= self._entries[0].at:
            entry.amount += delta
            self._total += delta

    def wait_until_fits(self, now: float, span: float, limit: float, need: float, by_count: bool) -> float:
        """Seconds until adding ``need`` keeps the window within ``limit`` (0 if it fits now)."""
        self._expire(now, span)
        used = len(self._entries) if by_count else self._total
        if used + need <= limit:
            return 0.0
        excess = used + need - limit
        for entry in self._entries:
            excess -= 1 if by_count else entry.amount
            if excess <= 0:
                return max(0.0, entry.at + span - now)
        return span


class MemoryStore:
    def __init__(self) -> None:
        self._windows: dict[str, SlidingWindow] = {}
        self._spend: dict[str, float] = {}
        self._periods: tuple[str, ...] = ()

    def window(self, name: str) -> SlidingWindow:
        window = self._windows.get(name)
        if window is None:
            window = self._windows[name] = SlidingWindow()
        return window

    def drop_window(self, name: str) -> None:
        """Forget one window (its key or client is no longer configured)."""
        self._windows.pop(name, None)

    def spend(self, name: str) -> float:
        return self._spend.get(name, 0.0)

    def add_spend(self, name: str, usd: float, current_periods: tuple[str, ...]) -> None:
        """Add to the counters of the current periods; drop counters of past periods."""
        if current_periods != self._periods:
            self._periods = current_periods
            for key in [k for k in self._spend if k.rpartition("@")[2] not in current_periods]:
                del self._spend[key]
        for period in current_periods:
            key = f"{name}@{period}"
            self._spend[key] = self._spend.get(key, 0.0) + usd
