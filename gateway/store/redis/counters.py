"""Windows, marks and spend in Redis (``RedisCounters``): every decision one Lua script.

A request's admission is one script (the budget hold and every window, all or none:
``reserve_all``), its settle another. Time is the server's (``TIME``). The keys of one window
carry a hash tag (``{name}``), so a Redis Cluster would keep them on one slot; the admission
script spans a client's several windows and its spend, so it needs one Redis (or a primary with
replicas), not a Cluster. Idle keys expire by themselves (windows after their span, spend after
its period).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..common import new_id, period_ends, periods
from ..values import Ask, Batch, BudgetAsk, Reservation, Spend, WindowResult
from .connection import RedisLink

DAY_KEEP_S = 40 * 86400  # a day's spend is kept this long after the day ends; a month's:
MONTH_KEEP_S = 400 * 86400


class RedisCounters:
    """The ``Counters`` role on Redis."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    def _window_keys(self, window: str) -> list[str]:
        tag = "{" + window + "}"
        k = self._link.key
        return [k("win", tag, "at"), k("win", tag, "amt"), k("win", tag, "total")]

    def _spend_key(self, client_id: str, period: str) -> str:
        return self._link.key("spend", "{" + client_id + "}", period)

    # windows
    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        entry = new_id()
        ok, now, wait, used, reset = await self._link.script("reserve", self._window_keys(window),
                                                             [repr(limit), repr(need), repr(window_s), entry])
        reservation = Reservation(window, entry, need, float(now), window_s) if int(ok) else None
        return WindowResult(reservation, float(wait), float(used), float(reset))

    async def settle(self, reservation: Reservation, actual: float) -> None:
        await self._link.script("settle", self._window_keys(reservation.window), [reservation.entry, repr(actual)])

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        keys: list[str] = []
        args: list[Any] = ["0", "", ""]
        todo = list(asks)
        if budget is not None:
            day, month = periods(budget.at)
            keys += [self._spend_key(budget.client_id, day), self._spend_key(budget.client_id, month)]
            args = ["1", "" if budget.daily_usd is None else repr(budget.daily_usd),
                    "" if budget.monthly_usd is None else repr(budget.monthly_usd)]
            todo.insert(0, Ask(budget.window, 0.0, budget.need, budget.window_s))  # its limit: from the spend
        entries = [new_id() for _ in todo]
        for ask, entry in zip(todo, entries, strict=True):
            keys += self._window_keys(ask.window)
            args += [repr(ask.limit), repr(ask.need), repr(ask.window_s), entry]
        found = await self._link.script("reserve_all", keys, args)
        refused, now = int(found[0]), float(found[1])
        results = []
        for i, ask in enumerate(todo[:(len(found) - 4) // 3]):
            wait, used, reset = found[4 + 3 * i:7 + 3 * i]
            held = None if refused else Reservation(ask.window, entries[i], ask.need, now, ask.window_s)
            results.append(WindowResult(held, float(wait), float(used), float(reset)))
        spend = Spend(float(found[2]), float(found[3])) if budget is not None else None
        return Batch(tuple(results), bool(refused), spend)

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        if not settles:
            return
        keys: list[str] = []
        args: list[str] = []
        for reservation, actual in settles:
            keys += self._window_keys(reservation.window)
            args += [reservation.entry, repr(actual)]
        await self._link.script("settle_all", keys, args)

    # marks
    async def set_mark(self, name: str, ttl_s: float) -> float:
        return float(await self._link.script("set_mark", [self._link.key("mark", name)], [repr(ttl_s)]))

    async def clear_mark(self, name: str) -> None:
        await self._link.call("DEL", self._link.key("mark", name))

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        if not names:
            return []
        left = await self._link.script("marks_left", [self._link.key("mark", n) for n in names], [])
        return [float(x) for x in left]

    # spend
    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        when = await self._link.now() if at is None else at
        day, month = periods(when)
        day_end, month_end = period_ends(when)
        await self._link.script("add_spend", [self._spend_key(client_id, day), self._spend_key(client_id, month)],
                                [repr(usd), int(day_end + DAY_KEEP_S), int(month_end + MONTH_KEEP_S)])

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        day, month = periods(await self._link.now() if at is None else at)
        day_usd, month_usd = await self._link.call("MGET", self._spend_key(client_id, day),
                                                   self._spend_key(client_id, month))
        return Spend(float(day_usd or 0.0), float(month_usd or 0.0))
