"""What the request path holds: the counters (windows, marks, spend) behind a guard that defines
what happens when the shared store is lost while serving (``storage.on_unavailable``).

``open``: the request is decided on a local in-memory store instead (counting in this process
only), the ``gateway_store_unavailable`` gauge is 1, an error is logged and readiness says
"degraded". ``closed``: decisions raise ``errors.StoreUnavailable`` (503 ``store_unavailable``);
give-backs (settle, spend, marks) are dropped with a log line (budget holds lapse with their window).
Either way a probe pings the store every ``probe_s`` and switches back when it answers: no
restart. While the store is down no request waits on it: calls go straight to the fallback.

``SplitCounters`` serves windows and marks from one store and spend from another: a single
process on SQLite keeps its hot windows in memory and only spend (which must survive a
restart) in the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

from ..errors import StoreUnavailable
from ..observability import metrics
from ..server.tasks import cancel_and_wait
from .base import Counters, StoreDown
from .common import reserve_in_turn
from .memory.counters import MemoryCounters
from .values import Ask, Batch, BudgetAsk, Reservation, Spend, WindowResult

log = logging.getLogger("gateway.store")
T = TypeVar("T")
Mode = Literal["open", "closed"]


class SplitCounters:
    """Windows and marks from ``fast``, spend from ``durable``."""

    def __init__(self, fast: Counters, durable: Counters) -> None:
        self.fast = fast
        self.durable = durable

    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        return await self.fast.check_and_reserve(window, limit, need, window_s)

    async def settle(self, reservation: Reservation, actual: float) -> None:
        await self.fast.settle(reservation, actual)

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        return await reserve_in_turn(self, asks, budget)  # spend from durable, windows from fast

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        await self.fast.settle_all(settles)

    async def set_mark(self, name: str, ttl_s: float) -> float:
        return await self.fast.set_mark(name, ttl_s)

    async def clear_mark(self, name: str) -> None:
        await self.fast.clear_mark(name)

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        return await self.fast.marks_remaining(names)

    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        await self.durable.add_spend(client_id, usd, at)

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        return await self.durable.spend(client_id, at)


class GuardedCounters:
    """``primary``'s counters, with the ``on_unavailable`` behaviour of the module docstring."""

    def __init__(self, primary: Counters, ping: Callable[[], Awaitable[None]], name: str,
                 mode: Mode = "open", probe_s: float = 0.5) -> None:
        self.primary = primary
        self.name = name
        self.mode = mode
        self.probe_s = probe_s
        self._ping = ping
        self._local = MemoryCounters()
        self.down_since: float | None = None
        self.last_error: str | None = None
        self._probe: asyncio.Task[None] | None = None
        metrics.STORE_UNAVAILABLE.labels(name).set(0)

    @property
    def degraded(self) -> bool:
        return self.down_since is not None

    def lost(self, exc: StoreDown) -> None:
        """Switch to the fallback until the probe sees the store again."""
        self.last_error = str(exc)
        if self.down_since is not None:
            return
        self.down_since = time.time()
        self._local = MemoryCounters()
        metrics.STORE_UNAVAILABLE.labels(self.name).set(1)
        log.error("STORE UNAVAILABLE: the shared store cannot be reached; " + (
            "serving with limits, cooldowns and spend counted in this process only (storage.on_unavailable: open)"
            if self.mode == "open" else "answering 503 store_unavailable (storage.on_unavailable: closed)"),
            extra={"store": self.name, "error": str(exc)})
        with contextlib.suppress(RuntimeError):
            self._probe = asyncio.get_running_loop().create_task(self._recover(), name="store-probe")

    async def _recover(self) -> None:
        while self.down_since is not None:
            await asyncio.sleep(self.probe_s)
            try:
                await self._ping()
            except StoreDown as exc:
                self.last_error = str(exc)
                continue
            down_s = time.time() - self.down_since
            self.down_since = None
            self.last_error = None
            metrics.STORE_UNAVAILABLE.labels(self.name).set(0)
            log.warning("store reachable again: shared counting resumed",
                        extra={"store": self.name, "down_s": round(down_s, 3)})

    async def _decide(self, op: Callable[[Counters], Awaitable[T]]) -> T:
        if self.down_since is None:
            try:
                return await op(self.primary)
            except StoreDown as exc:
                self.lost(exc)
        if self.mode == "closed":
            raise StoreUnavailable()
        return await op(self._local)

    async def _give_back(self, op: Callable[[Counters], Awaitable[None]]) -> None:
        if self.down_since is None:
            try:
                await op(self.primary)
                return
            except StoreDown as exc:
                self.lost(exc)
        if self.mode == "open":
            await op(self._local)

    async def check_and_reserve(self, window: str, limit: float, need: float, window_s: float) -> WindowResult:
        return await self._decide(lambda s: s.check_and_reserve(window, limit, need, window_s))

    async def settle(self, reservation: Reservation, actual: float) -> None:
        await self._give_back(lambda s: s.settle(reservation, actual))

    async def reserve_all(self, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
        return await self._decide(lambda s: s.reserve_all(asks, budget))

    async def settle_all(self, settles: Sequence[tuple[Reservation, float]]) -> None:
        await self._give_back(lambda s: s.settle_all(settles))

    async def set_mark(self, name: str, ttl_s: float) -> float:
        left = ttl_s

        async def run(s: Counters) -> None:
            nonlocal left
            left = await s.set_mark(name, ttl_s)
        await self._give_back(run)
        return left

    async def clear_mark(self, name: str) -> None:
        await self._give_back(lambda s: s.clear_mark(name))

    async def marks_remaining(self, names: Sequence[str]) -> list[float]:
        return await self._decide(lambda s: s.marks_remaining(names))

    async def add_spend(self, client_id: str, usd: float, at: float | None = None) -> None:
        await self._give_back(lambda s: s.add_spend(client_id, usd, at))

    async def spend(self, client_id: str, at: float | None = None) -> Spend:
        return await self._decide(lambda s: s.spend(client_id, at))

    async def close(self) -> None:
        self.down_since = None
        await cancel_and_wait(self._probe)
        self._probe = None
