"""What every backend's counters and directory share: ids, UTC periods, the window arithmetic,
``reserve_all`` made of single steps, and how a client record is written down."""

from __future__ import annotations

import calendar
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..core.policy import Budget, Limits
from .base import Counters
from .values import Ask, Batch, BudgetAsk, ClientRecord, Reservation, WindowResult


def new_id() -> str:
    return secrets.token_hex(8)


def periods(at: float) -> tuple[str, str]:
    """The UTC day (``2025-01-31``) and month (``2025-01``) of an epoch time."""
    t = time.gmtime(at)
    return time.strftime("%Y-%m-%d", t), time.strftime("%Y-%m", t)


def period_ends(at: float) -> tuple[float, float]:
    """Epoch seconds when the UTC day and month of ``at`` end."""
    t = time.gmtime(at)
    day_end = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)) + 86400
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(day_end), float(calendar.timegm((year, month, 1, 0, 0, 0)))


def window_wait(entries: Iterable[tuple[float, float]], used: float, now: float, window_s: float,
                limit: float, need: float) -> float:
    """Seconds until ``need`` fits beside ``used`` in a window of ``(at, amount)`` entries (oldest first)."""
    excess = used + need - limit
    if excess <= 0:
        return 0.0
    for at, amount in entries:
        excess -= amount
        if excess <= 1e-9:
            return max(0.0, at + window_s - now)
    return window_s


async def reserve_in_turn(counters: Counters, asks: Sequence[Ask], budget: BudgetAsk | None = None) -> Batch:
    """``reserve_all`` made of ``spend`` and ``check_and_reserve`` calls (each one atomic), a
    refusal withdrawing what was reserved before it. Atomic as a whole on the memory store (no
    await in it yields); on SQLite and PostgreSQL each window is decided in its own transaction."""
    todo = list(asks)
    spend = None
    if budget is not None:
        spend = await counters.spend(budget.client_id, budget.at)
        todo.insert(0, Ask(budget.window, budget.limit(spend.day, spend.month), budget.need, budget.window_s))
    results: list[WindowResult] = []
    for ask in todo:
        got = await counters.check_and_reserve(ask.window, ask.limit, ask.need, ask.window_s)
        results.append(got)
        if got.reservation is None:
            await counters.settle_all([(r.reservation, 0.0) for r in results if r.reservation is not None])
            return Batch(tuple(replace(r, reservation=None) for r in results), True, spend)
    return Batch(tuple(results), False, spend)


async def settle_in_turn(counters: Counters, settles: Sequence[tuple[Reservation, float]]) -> None:
    for reservation, actual in settles:
        await counters.settle(reservation, actual)


def client_to_dict(record: ClientRecord) -> dict[str, Any]:
    return {"id": record.id, "key_digest": record.key_digest.hex(), "description": record.description,
            "allowed_providers": list(record.allowed_providers), "allowed_models": list(record.allowed_models),
            "limits": record.limits.model_dump(), "budget": record.budget.model_dump(), "admin": record.admin,
            "created_at": record.created_at, "last_used": record.last_used}


def client_from_dict(data: Mapping[str, Any]) -> ClientRecord:
    last_used = data.get("last_used")
    return ClientRecord(
        id=str(data["id"]), key_digest=bytes.fromhex(str(data["key_digest"])),
        description=str(data.get("description") or ""),
        allowed_providers=tuple(data.get("allowed_providers", ("*",))),
        allowed_models=tuple(data.get("allowed_models", ("*",))),
        limits=Limits.model_validate(data.get("limits") or {}), budget=Budget.model_validate(data.get("budget") or {}),
        admin=bool(data.get("admin")), created_at=float(data.get("created_at") or 0.0),
        last_used=None if last_used is None else float(last_used))
