"""Windows, marks and spend in the SQLite file (``SqliteCounters``): each call one transaction."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..common import new_id, periods, reserve_in_turn, settle_in_turn, window_wait
from ..values import Ask, Batch, BudgetAsk, Reservation, Spend, WindowResult
from .connection import Conn, SqliteDb


class SqliteCounters:
    """The ``Counters`` role on a SQLite file."""

    def __init__(self, db: SqliteDb) -> None:
        self._db = db

    # windows
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        def run(conn: Conn) -> WindowResult:
            now = time.time()
            conn.execute("DELETE FROM windows WHERE win = ? AND at <= ?", (window, now - window_s))
            used, oldest = conn.execute("SELECT coalesce(sum(amount), 0), min(at) FROM windows WHERE win = ?",
                                        (window,)).fetchone()
            reset = window_s if oldest is None else max(0.0, oldest + window_s - now)
            if used + need <= limit:
                entry = new_id()
                conn.execute("INSERT INTO windows VALUES (?, ?, ?, ?)", (window, entry, now, need))
                return WindowResult(Reservation(window, entry, need, now, window_s), 0.0, used + need, reset)
            entries = conn.execute("SELECT at, amount FROM windows WHERE win = ? ORDER BY at", (window,))
            return WindowResult(None, window_wait(entries, used, now, window_s, limit, need), used, reset)
        return await self._db.call(run)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        key = (reservation.window, reservation.entry)
        if actual <= 0:
            await self._db.call(lambda c: c.execute("DELETE FROM windows WHERE win = ? AND entry = ?", key))
        else:
            await self._db.call(lambda c: c.execute("UPDATE windows SET amount = ? WHERE win = ? AND entry = ?",
                                                    (actual, *key)))

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        return await reserve_in_turn(self, asks, budget)

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        await settle_in_turn(self, settles)

    # marks
    async def set_mark(self, name: str, ttl_s: float) -> float:
        def run(conn: Conn) -> float:
            now = time.time()
            conn.execute("INSERT INTO marks VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                         "until = max(until, excluded.until)", (name, now + ttl_s))
            until: float = conn.execute("SELECT until FROM marks WHERE name = ?", (name,)).fetchone()[0]
            return until - now
        return await self._db.call(run)

    async def clear_mark(self, name: str) -> None:
        await self._db.call(lambda c: c.execute("DELETE FROM marks WHERE name = ?", (name,)))

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        def run(conn: Conn) -> list[float]:
            now = time.time()
            marks = {}
            for name in names:
                row = conn.execute("SELECT until FROM marks WHERE name = ?", (name,)).fetchone()
                marks[name] = 0.0 if row is None else max(0.0, row[0] - now)
            return [marks[n] for n in names]
        return await self._db.call(run, write=False)

    # spend
    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        def run(conn: Conn) -> None:
            for period in periods(time.time() if at is None else at):
                conn.execute("INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT (client_id, period) DO UPDATE SET "
                             "usd = usd + excluded.usd", (client_id, period, usd))
        await self._db.call(run)

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        day, month = periods(time.time() if at is None else at)

        def run(conn: Conn) -> Spend:
            found = dict(conn.execute("SELECT period, usd FROM spend WHERE client_id = ? AND period IN (?, ?)",
                                      (client_id, day, month)).fetchall())
            return Spend(found.get(day, 0.0), found.get(month, 0.0))
        return await self._db.call(run, write=False)
