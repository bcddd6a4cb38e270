"""Counting one finished request: metrics, client spend, and one access log line."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..config.snapshot import Target
from ..providers.base import Usage
from . import metrics

access_log = logging.getLogger("gateway.access")


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


def model_label(target: Target, status: int) -> str:
    """The model as a metric label, bounded: a model the provider lists, or one the upstream accepted.

    Clients choose ``provider:model`` strings freely; labelling every string they send would let
    one client grow the metrics without bound.
    """
    listed = target.provider.models
    if target.model in listed or (not listed and status == 200):
        return target.model
    return "other"


def record(outcome: Outcome, log_requests: bool) -> None:
    duration = time.perf_counter() - outcome.started
    provider = outcome.target.provider.id if outcome.target is not None else ""
    model = model_label(outcome.target, outcome.status) if outcome.target is not None else ""
    status = str(outcome.status)
    metrics.requests_by(outcome.client, provider, model, status).inc()
    metrics.client_requests_by(outcome.client).inc()
    if outcome.error_code is not None:
        metrics.client_errors_by(outcome.client, outcome.error_code).inc()
    if provider:
        metrics.request_duration_by(provider).observe(duration)
        if outcome.upstream_s is not None:
            metrics.upstream_duration_by(provider).observe(outcome.upstream_s)
            if not outcome.stream:
                metrics.OVERHEAD.observe(max(0.0, duration - outcome.upstream_s))
    usage = outcome.usage
    if usage is not None:
        metrics.tokens_by("input", provider, model).inc(usage.prompt_tokens)
        metrics.tokens_by("output", provider, model).inc(usage.completion_tokens)
    if outcome.cost_usd > 0:
        metrics.cost_by(provider, model).inc(outcome.cost_usd)
        metrics.client_cost_by(outcome.client).inc(outcome.cost_usd)
    if log_requests:
        access_log.info("request", extra={
            "request_id": outcome.request_id, "client": outcome.client, "endpoint": outcome.endpoint,
            "model": outcome.model, "provider": provider or None, "key": outcome.key_label,
            "status": outcome.status, "stream": outcome.stream, "duration_ms": round(duration * 1000, 3),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "usage_exact": usage.exact if usage else None,
            "cost_usd": round(outcome.cost_usd, 8), "error": outcome.error_code,
        })
