"""Windows, marks and spend in PostgreSQL (``PostgresCounters``): each call one transaction.

A window check takes a transaction-scoped advisory lock on the window's name, so concurrent
reservations from every replica queue on it; time is the server's (``clock_timestamp()``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..common import new_id, periods, reserve_in_turn, settle_in_turn, window_wait
from ..values import Ask, Batch, BudgetAsk, Reservation, Spend, WindowResult
from .connection import Conn, PostgresPool, server_now


class PostgresCounters:
    """The ``Counters`` role on PostgreSQL."""

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    # windows
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        async def run(conn: Conn) -> WindowResult:
            # the lock first (in FROM), then the time: reservations on one window queue here
            cur = await conn.execute("SELECT extract(epoch from clock_timestamp())::float8 FROM "
                                     "(SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))) AS locked", (window,))
            row = await cur.fetchone()
            assert row is not None
            now = float(row[0])
            await conn.execute("DELETE FROM windows WHERE win = %s AND at <= %s", (window, now - window_s))
            cur = await conn.execute("SELECT coalesce(sum(amount), 0), min(at) FROM windows WHERE win = %s",
                                     (window,))
            found = await cur.fetchone()
            assert found is not None
            used, oldest = float(found[0]), found[1]
            reset = window_s if oldest is None else max(0.0, float(oldest) + window_s - now)
            if used + need <= limit:
                entry = new_id()
                await conn.execute("INSERT INTO windows VALUES (%s, %s, %s, %s)", (window, entry, now, need))
                return WindowResult(Reservation(window, entry, need, now, window_s), 0.0, used + need, reset)
            cur = await conn.execute("SELECT at, amount FROM windows WHERE win = %s ORDER BY at", (window,))
            entries = [(float(at), float(amount)) for at, amount in await cur.fetchall()]
            return WindowResult(None, window_wait(entries, used, now, window_s, limit, need), used, reset)
        return await self._pool.tx(run)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        key = (reservation.window, reservation.entry)
        async with self._pool.conn() as conn:
            if actual <= 0:
                await conn.execute("DELETE FROM windows WHERE win = %s AND entry = %s", key)
            else:
                await conn.execute("UPDATE windows SET amount = %s WHERE win = %s AND entry = %s", (actual, *key))

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        return await reserve_in_turn(self, asks, budget)

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        await settle_in_turn(self, settles)

    # marks
    async def set_mark(self, name: str, ttl_s: float) -> float:
        async def run(conn: Conn) -> float:
            now = await server_now(conn)
            cur = await conn.execute("INSERT INTO marks VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET "
                                     "until = greatest(marks.until, excluded.until) RETURNING until",
                                     (name, now + ttl_s))
            row = await cur.fetchone()
            assert row is not None
            return float(row[0]) - now
        return await self._pool.tx(run)

    async def clear_mark(self, name: str) -> None:
        async with self._pool.conn() as conn:
            await conn.execute("DELETE FROM marks WHERE name = %s", (name,))

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        async def run(conn: Conn) -> list[float]:
            now = await server_now(conn)
            cur = await conn.execute("SELECT name, until FROM marks WHERE name = ANY(%s)", (list(names),))
            found = {name: float(until) for name, until in await cur.fetchall()}
            return [max(0.0, found.get(n, 0.0) - now) for n in names]
        return await self._pool.tx(run)

    # spend
    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        rows = [(client_id, period, usd) for period in periods(time.time() if at is None else at)]
        async with self._pool.conn() as conn:
            await conn.cursor().executemany(
                "INSERT INTO spend VALUES (%s, %s, %s) ON CONFLICT (client_id, period) DO UPDATE SET "
                "usd = spend.usd + excluded.usd", rows)

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        day, month = periods(time.time() if at is None else at)

        async def run(conn: Conn) -> Spend:
            cur = await conn.execute("SELECT period, usd FROM spend WHERE client_id = %s AND period IN (%s, %s)",
                                     (client_id, day, month))
            found = {period: float(usd) for period, usd in await cur.fetchall()}
            return Spend(found.get(day, 0.0), found.get(month, 0.0))
        return await self._pool.tx(run)
