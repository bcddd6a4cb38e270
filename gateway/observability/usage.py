"""Counting one finished request: metrics, one access log line, and one usage ledger row.

The ledger row goes to the store's ``record`` (``storage.ledger``), which only buffers it: a
background task writes the rows in batches, off the request path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..core.targets import Target
from ..core.usage import Usage
from ..store.base import Ledger
from ..store.values import LedgerRow
from . import metrics

access_log = logging.getLogger("gateway.access")
HIT = "hit"  # ``Outcome.cache`` of an answer served from the response cache


@dataclass(slots=True)
class Outcome:
    request_id: str
    client: str
    endpoint: str
    model: str
    status: int
    started: float  # perf_counter at arrival
    target: Target | None = None
    key_label: str | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0
    upstream_s: float | None = None
    stream: bool = False
    error_code: str | None = None
    # "hit" | "miss" when the response cache applies (the ``x-cache`` header). A hit's
    # ``cost_usd`` is what the answer cost when it was fetched: what the hit saved, not spent.
    cache: str | None = None
    arrived: float = field(default_factory=time.time)  # epoch seconds, for the ledger


def model_label(target: Target, status: int) -> str:
    """The model as a metric label, bounded: a model the provider lists, or one the upstream accepted.

    Clients choose ``provider:model`` strings freely; labelling every string they send would let
    one client grow the metrics without bound.
    """
    listed = target.provider.models
    if target.model in listed or (not listed and status == 200):
        return target.model
    return "other"


def ledger_row(outcome: Outcome, provider: str, duration: float) -> LedgerRow:
    usage = outcome.usage
    upstream = outcome.upstream_s
    overhead = 0.0 if upstream is None or outcome.stream else max(0.0, duration - upstream)
    return LedgerRow(
        time=outcome.arrived, request_id=outcome.request_id, client_id=outcome.client, provider=provider,
        model=outcome.target.model if outcome.target is not None else outcome.model,
        key_label=outcome.key_label or "", status=outcome.status, error_code=outcome.error_code,
        tokens_in=usage.prompt_tokens if usage else 0, tokens_out=usage.completion_tokens if usage else 0,
        cost_usd=outcome.cost_usd, latency_ms=duration * 1000.0, overhead_ms=overhead * 1000.0,
        stream=outcome.stream, cache_hit=outcome.cache == HIT,
        cache_read_tokens=usage.cache_read_tokens if usage else 0,
        cache_write_tokens=usage.cache_write_tokens if usage else 0,
        reasoning_tokens=usage.reasoning_tokens if usage else 0)


def failed(outcome: Outcome) -> bool:
    """An error for the per-client metrics: an error status (a client that left counts: 499), or an
    error code on a 200 (a stream that broke off after it began)."""
    return outcome.status >= 400 or outcome.error_code is not None


def record(outcome: Outcome, log_requests: bool, ledger: Ledger | None = None) -> None:
    duration = time.perf_counter() - outcome.started
    provider = outcome.target.provider.id if outcome.target is not None else ""
    model = model_label(outcome.target, outcome.status) if outcome.target is not None else ""
    status = str(outcome.status)
    hit = outcome.cache == HIT  # served from the response cache: no upstream, nothing spent
    metrics.requests_by(outcome.client, provider, model, status).inc()
    metrics.count_client(outcome.client, failed(outcome), 0.0 if hit else outcome.cost_usd)  # per client
    if provider:
        metrics.request_duration_by(provider).observe(duration)
        if outcome.upstream_s is not None:
            metrics.upstream_duration_by(provider).observe(outcome.upstream_s)
            if not outcome.stream:
                metrics.OVERHEAD.observe(max(0.0, duration - outcome.upstream_s))
    usage = outcome.usage
    if usage is not None and not hit:
        metrics.tokens_by("input", provider, model).inc(usage.prompt_tokens)
        metrics.tokens_by("output", provider, model).inc(usage.completion_tokens)
    if ledger is not None:
        ledger.record(ledger_row(outcome, provider, duration))
    if outcome.cost_usd > 0:
        if hit:
            metrics.CACHE_SAVED.inc(outcome.cost_usd)
        else:
            metrics.cost_by(provider, model).inc(outcome.cost_usd)
    if log_requests:
        access_log.info("request", extra={
            "request_id": outcome.request_id, "client": outcome.client, "endpoint": outcome.endpoint,
            "model": outcome.model, "provider": provider or None, "key": outcome.key_label,
            "status": outcome.status, "stream": outcome.stream, "duration_ms": round(duration * 1000, 3),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "usage_exact": usage.exact if usage else None,
            "cost_usd": round(outcome.cost_usd, 8), "error": outcome.error_code, "cache": outcome.cache,
        })
