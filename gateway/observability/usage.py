"""Counting one finished request: metrics, one access log line, one usage ledger row, the same
record to the sinks of ``observability.sinks``, and the end of its span when tracing is on
(``traces.py``).

The ledger row goes to the store's ``record`` (``storage.ledger``), which only buffers it: a
background task writes the rows in batches, off the request path. The sinks get it the same way
(``SinkHub.put``: an append to each sink's bounded queue, never awaited).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..core.targets import Target
from ..core.usage import Usage
from ..guardrails.events import GuardEvent, ledger_text, merged
from ..store.base import Ledger
from ..store.values import LedgerRow
from . import metrics
from .sinks.hub import SinkHub
from .sinks.record import AccessRecord, Content
from .traces import RequestTrace

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
    trace: RequestTrace | None = None  # the request's span when tracing is on (ended by ``record``)
    content: Content | None = None  # the request and answer bodies, with observability.capture_content only
    extra: dict[str, Any] | None = None  # more fields for the sinks' record (a guardrail's action, ...)
    # what the guardrails did to the request (the guard stage's ``RequestGuard.events``, which grows
    # while an answer streams): None when no guard applies
    guardrails: list[GuardEvent] | None = None


def model_label(target: Target, status: int) -> str:
    """The model as a metric label, bounded: a model the provider lists, or one the upstream accepted.

    Clients choose ``provider:model`` strings freely; labelling every string they send would let
    one client grow the metrics without bound.
    """
    listed = target.provider.models
    if target.model in listed or (not listed and status == 200):
        return target.model
    return "other"


def ledger_row(outcome: Outcome, provider: str, duration: float, guarded: str = "") -> LedgerRow:
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
        reasoning_tokens=usage.reasoning_tokens if usage else 0, guardrails=guarded)


def failed(outcome: Outcome) -> bool:
    """An error for the per-client metrics: an error status (a client that left counts: 499), or an
    error code on a 200 (a stream that broke off after it began)."""
    return outcome.status >= 400 or outcome.error_code is not None


def count_guardrails(events: list[GuardEvent] | None) -> tuple[GuardEvent, ...]:
    """The guard actions of one request, added up and counted (``gateway_guardrail_actions_total``)."""
    if not events:
        return ()
    found = merged(events)
    for e in found:
        metrics.count_guardrail_action(e.guardrail, e.action, e.times)
    return found


def record(outcome: Outcome, log_requests: bool, ledger: Ledger | None = None, sinks: SinkHub | None = None) -> None:
    if outcome.trace is not None:
        outcome.trace.end(outcome)
    duration = time.perf_counter() - outcome.started
    guarded = count_guardrails(outcome.guardrails)
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
    if ledger is not None or (sinks is not None and sinks.sinks):
        row = ledger_row(outcome, provider, duration, ledger_text(guarded) if guarded else "")
        if ledger is not None:
            ledger.record(row)
        if sinks is not None and sinks.sinks:
            sinks.put(AccessRecord(row, outcome.endpoint, outcome.model, usage.exact if usage else None,
                                   outcome.content, outcome.extra))
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
            "guardrails": [e.as_record() for e in guarded] if guarded else None,
        })
