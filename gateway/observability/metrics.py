"""Prometheus metric definitions (prefix ``gateway_``). Labels never carry a key.

With several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``gateway serve`` and
``render()`` aggregates every worker's files through the multiprocess collector.
"""

from __future__ import annotations

import contextlib
import os
from typing import Generic, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)

REQUESTS = Counter("gateway_requests_total", "Requests answered", ["client", "provider", "model", "status"])
REQUEST_DURATION = Histogram("gateway_request_duration_seconds", "Time from request to last byte",
                             ["provider"], buckets=_LATENCY_BUCKETS)
UPSTREAM_DURATION = Histogram("gateway_upstream_duration_seconds", "Time spent waiting on the upstream",
                              ["provider"], buckets=_LATENCY_BUCKETS)
OVERHEAD = Histogram("gateway_overhead_seconds", "Time the gateway itself added (non-streaming)",
                     buckets=_OVERHEAD_BUCKETS)
TOKENS = Counter("gateway_tokens_total", "Tokens counted", ["direction", "provider", "model"])
COST = Counter("gateway_cost_usd_total", "Cost in USD from configured pricing", ["provider", "model"])
KEY_COOLDOWNS = Counter("gateway_key_cooldowns_total", "Provider keys put in cooldown after a 429", ["provider"])
KEY_QUARANTINED = Counter("gateway_key_quarantined_total", "Provider keys rejected by the upstream (401/403)",
                          ["provider"])
UPSTREAM_ATTEMPTS = Counter("gateway_upstream_attempts_total", "Upstream attempts by outcome",
                            ["provider", "outcome"])
CONFIG_RELOADS = Counter("gateway_config_reloads_total", "Config reloads", ["result"])
CONFIG_INFO = Gauge("gateway_config_info", "The config version in force (value 1)", ["version"],
                    multiprocess_mode="liveall")
CLIENT_REQUESTS = Counter("gateway_client_requests_total", "Requests per client", ["client"])
CLIENT_ERRORS = Counter("gateway_client_errors_total", "Error answers per client", ["client", "code"])
CLIENT_COST = Counter("gateway_client_cost_total", "USD spent per client", ["client"])


class Children(Generic[M]):
    """Labelled children of one metric, cached: ``labels()`` takes a lock and builds keys on every call."""

    __slots__ = ("_metric", "_cache", "_limit")

    def __init__(self, metric: M, limit: int = 20_000) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], M] = {}
        self._limit = limit

    def __call__(self, *labels: str) -> M:
        child = self._cache.get(labels)
        if child is None:
            if len(self._cache) >= self._limit:
                self._cache.clear()
            child = self._cache[labels] = self._metric.labels(*labels)
        return child


requests_by = Children(REQUESTS)
client_requests_by = Children(CLIENT_REQUESTS)
client_errors_by = Children(CLIENT_ERRORS)
request_duration_by = Children(REQUEST_DURATION)
upstream_duration_by = Children(UPSTREAM_DURATION)
tokens_by = Children(TOKENS)
cost_by = Children(COST)
client_cost_by = Children(CLIENT_COST)
attempts_by = Children(UPSTREAM_ATTEMPTS)


def set_config_version(version: str, previous: str | None) -> None:
    if previous is not None and previous != version:
        with contextlib.suppress(KeyError):
            CONFIG_INFO.remove(previous)
    CONFIG_INFO.labels(version).set(1)


def render() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        # prometheus_client leaves MultiProcessCollector.__init__ unannotated.
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
