"""What the admin API answers about clients and ledger rows: never a key or a key's hash."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ...core.targets import ClientSpec
from ...server.runtime import Runtime
from ...store.base import StoreError
from ...store.values import ClientRecord, LedgerRow


def unix(at: float | None) -> int | None:
    return None if at is None or at <= 0 else int(at)


def config_clients(runtime: Runtime) -> dict[str, ClientSpec]:
    """The clients of config.yaml by id (read-only through the admin API)."""
    found: dict[str, ClientSpec] = {}
    for spec in runtime.snapshot.clients.values():
        found.setdefault(spec.id, spec)
    return found


async def _spend(runtime: Runtime, client_id: str) -> dict[str, float] | None:
    try:
        spent = await runtime.stores.runtime.spend(client_id)
    except StoreError:
        return None  # the store is unreachable: the view still answers
    return {"day_usd": round(spent.day, 6), "month_usd": round(spent.month, 6)}


async def _last_request(runtime: Runtime, client_id: str) -> float | None:
    try:
        return (await runtime.stores.ledger.usage_totals(client_id, 0.0, time.time())).last_request_time
    except StoreError:
        return None


def _names(values: frozenset[str] | tuple[str, ...] | None) -> list[str]:
    return ["*"] if values is None else sorted(values) if isinstance(values, frozenset) else list(values)


async def record_view(runtime: Runtime, record: ClientRecord) -> dict[str, Any]:
    return {
        "client_id": record.id, "description": record.description,
        "allowed_providers": _names(record.allowed_providers), "allowed_models": _names(record.allowed_models),
        "limits": record.limits.model_dump(), "budget": record.budget.model_dump(), "admin": record.admin,
        "source": "api", "created_at": unix(record.created_at), "last_used": unix(record.last_used),
        "spend": await _spend(runtime, record.id),
        # config.yaml holds this id too: its client wins, this one's key is refused (delete it here)
        "shadowed": record.id in runtime.snapshot.client_ids,
    }


async def config_view(runtime: Runtime, spec: ClientSpec) -> dict[str, Any]:
    last, spend = await asyncio.gather(_last_request(runtime, spec.id), _spend(runtime, spec.id))
    return {
        "client_id": spec.id, "description": "", "allowed_providers": _names(spec.allowed_providers),
        "allowed_models": _names(spec.allowed_models), "limits": spec.limits.model_dump(),
        "budget": spec.budget.model_dump(), "admin": spec.admin, "source": "config", "created_at": None,
        "last_used": unix(last), "spend": spend, "shadowed": False,
    }


def row_view(row: LedgerRow) -> dict[str, Any]:
    return {
        "time": row.time, "request_id": row.request_id, "client_id": row.client_id, "provider": row.provider,
        "model": row.model, "key_label": row.key_label, "status": row.status, "error_code": row.error_code,
        "tokens_in": row.tokens_in, "tokens_out": row.tokens_out, "cost": row.spent_usd,
        "saved_usd": row.cost_usd if row.cache_hit else 0.0,
        "latency_ms": round(row.latency_ms, 3), "overhead_ms": round(row.overhead_ms, 3), "stream": row.stream,
        "cache_hit": row.cache_hit, "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens, "reasoning_tokens": row.reasoning_tokens, "kind": row.kind,
        "bytes_in": row.bytes_in, "bytes_out": row.bytes_out,
    }
