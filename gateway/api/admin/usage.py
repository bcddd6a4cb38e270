"""Usage from the ledger: one client's totals, grouped stats, time series, the latest requests,
and the first-steps document's summary (``GET /admin/metrics``). Times are unix seconds."""

from __future__ import annotations

import math
from typing import Any

import falcon.asgi

from ...errors import InvalidRequest, NotFound
from ...store.values import GroupBy, SeriesPoint, UsageGroup
from .base import AdminResource, reply, store_errors
from .params import choice, integer, number, period
from .views import config_clients, row_view

GROUPS: tuple[GroupBy, ...] = ("provider", "model", "client", "key")
MAX_BUCKETS = 10_000
MAX_POINTS = 100_000
HOUR_S = 3600.0


def _ms(value: float) -> float:
    return round(value, 3)


class ClientMetricsResource(AdminResource):
    """``GET /metrics/clients/{client_id}?start=&end=`` (the client-management document's answer)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, client_id: str) -> None:
        await self.caller(req)
        start, end = period(req, None)
        ledger = self.runtime.stores.ledger
        async with store_errors():
            totals = await ledger.usage_totals(client_id, start, end)
            known = client_id in config_clients(self.runtime) or await ledger.get_client(client_id) is not None
        if not known and totals.total_requests == 0:
            raise NotFound(f"No client '{client_id}' and no usage recorded for it.")
        reply(resp, {
            "client_id": client_id, "total_requests": totals.total_requests, "total_tokens": totals.total_tokens,
            "total_cost": round(totals.total_cost, 8), "success_rate": round(totals.success_rate, 6),
            "avg_latency": _ms(totals.avg_latency),
            "last_request_time": None if totals.last_request_time is None else int(totals.last_request_time),
            "start": start, "end": end,
        })


def group_view(group: UsageGroup) -> dict[str, Any]:
    return {"key": group.key, "requests": group.requests, "tokens": group.tokens_in + group.tokens_out,
            "tokens_in": group.tokens_in, "tokens_out": group.tokens_out, "cost": round(group.cost, 8),
            "errors": group.errors, "avg_latency_ms": _ms(group.avg_latency),
            "cache_hits": group.cache_hits, "saved_usd": round(group.saved_usd, 8)}


class StatsResource(AdminResource):
    """``GET /stats?group_by=provider|model|client|key&client_key=<client id>&start=&end=``."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        group_by = choice(req, "group_by", GROUPS, "provider")
        assert group_by in GROUPS
        client_id = req.get_param("client_key") or req.get_param("client_id") or None
        start, end = period(req, None)
        async with store_errors():
            groups = await self.runtime.stores.ledger.usage_stats(group_by, start, end, client_id)
        reply(resp, {"group_by": group_by, "client_id": client_id, "start": start, "end": end,
                     "groups": [group_view(g) for g in groups]})


def _point(p: SeriesPoint | None, t: float) -> dict[str, Any]:
    if p is None:
        return {"t": t, "requests": 0, "errors": 0, "tokens": 0, "cost": 0.0, "p50_ms": None, "p99_ms": None,
                "overhead_p50_ms": None}
    return {"t": t, "requests": p.requests, "errors": p.errors, "tokens": p.tokens, "cost": round(p.cost, 8),
            "p50_ms": _ms(p.p50_ms), "p99_ms": _ms(p.p99_ms), "overhead_p50_ms": _ms(p.overhead_p50_ms)}


def series_view(points: list[SeriesPoint], bucket_s: float, start: float, end: float,
                grouped: bool) -> list[dict[str, Any]]:
    """One series per group (one, keyed "all", ungrouped), a point for every bucket from ``start``
    to ``end`` (empty buckets count zero)."""
    first = math.floor(start / bucket_s) * bucket_s
    times = [first + i * bucket_s for i in range(int((end - first) // bucket_s) + 1)]
    by_key: dict[str, dict[float, SeriesPoint]] = {}
    for p in points:
        by_key.setdefault(p.key, {})[p.t] = p
    if not grouped:
        by_key = {"all": by_key.get("", {})}
    return [{"key": key, "points": [_point(found.get(t), t) for t in times]} for key, found in sorted(by_key.items())]


class TimeseriesResource(AdminResource):
    """``GET /timeseries?bucket_s=60&start=&end=&group_by=&client_id=`` (default: the last hour)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        bucket_s = number(req, "bucket_s", 60.0)
        if bucket_s < 1:
            raise InvalidRequest("Invalid 'bucket_s': must be at least 1 (seconds).", param="bucket_s")
        start, end = period(req, HOUR_S)
        if (end - start) / bucket_s > MAX_BUCKETS:
            raise InvalidRequest(f"Invalid 'bucket_s': the period holds more than {MAX_BUCKETS} buckets of it; "
                                 "choose wider buckets or a shorter period.", param="bucket_s")
        group_by = choice(req, "group_by", GROUPS, None)
        async with store_errors():
            points = await self.runtime.stores.ledger.usage_series(
                bucket_s, start, end, group_by if group_by in GROUPS else None, req.get_param("client_id") or None)
        series = series_view(points, bucket_s, start, end, group_by is not None)
        if sum(len(s["points"]) for s in series) > MAX_POINTS:
            raise InvalidRequest("Invalid 'bucket_s': the answer would hold too many points; choose wider buckets.",
                                 param="bucket_s")
        reply(resp, {"bucket_s": bucket_s, "start": start, "end": end, "group_by": group_by, "series": series})


class RecentResource(AdminResource):
    """``GET /requests/recent?limit=100&client_id=``: the latest requests, newest first."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        limit = integer(req, "limit", 100, 1, 1000)
        async with store_errors():
            rows = await self.runtime.stores.ledger.recent_rows(limit, req.get_param("client_id") or None)
        reply(resp, {"requests": [row_view(r) for r in rows]})


class SummaryResource(AdminResource):
    """``GET /admin/metrics`` (the first-steps document's path): requests, success rate, cost per
    provider, active clients and providers, over ``start``/``end`` (default: everything kept)."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        start, end = period(req, None)
        ledger = self.runtime.stores.ledger
        async with store_errors():
            providers = await ledger.usage_stats("provider", start, end)
            clients = await ledger.usage_stats("client", start, end)
            directory = await ledger.list_clients()
        total = sum(g.requests for g in providers)
        errors = sum(g.errors for g in providers)
        snapshot = self.runtime.snapshot
        reply(resp, {
            "total_requests": total, "successful_requests": total - errors, "failed_requests": errors,
            "success_rate": round((total - errors) / total, 6) if total else 0.0,
            "total_tokens": sum(g.tokens_in + g.tokens_out for g in providers),
            "total_cost": round(sum(g.cost for g in providers), 8),
            "cost_by_provider": {g.key: round(g.cost, 8) for g in providers if g.key},
            "requests_by_provider": {g.key: g.requests for g in providers if g.key},
            "active_clients": len(clients), "active_providers": len([g for g in providers if g.key]),
            "configured_providers": len(snapshot.providers),
            "configured_clients": len(config_clients(self.runtime)) + len(directory),
            "cache_hits": sum(g.cache_hits for g in providers),
            "cache_saved_usd": round(sum(g.saved_usd for g in providers), 8),
            "start": start, "end": end,
        })
