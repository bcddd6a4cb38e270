"""Prometheus metric definitions. Labels never carry a key.

The metrics are defined here with the prefix ``gateway_``; ``render()`` exposes them under the
namespace ``metrics.namespace`` (default ``gateway``), fixed for the life of the process by
``use_namespace`` (a change takes a restart). Other libraries' metrics (``process_``,
``python_``) keep their names.

With several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set by ``gateway serve`` and
``render()`` aggregates every worker's files through the multiprocess collector.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import Generic, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

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
# per client: ``client_id`` is a configured or directory client's id (a caller that did
# not authenticate is never counted). One label each, so errors / requests divide in PromQL.
CLIENT_REQUESTS = Counter("gateway_client_requests_total", "Finished requests per client", ["client_id"])
CLIENT_ERRORS = Counter("gateway_client_errors_total",
                        "Finished requests per client that failed (status >= 400, or an error after a 200 began)",
                        ["client_id"])
CLIENT_COST = Counter("gateway_client_cost_total", "USD spent per client (configured pricing)", ["client_id"])
# the shared store (gateway/store/guard.py): 1 while it cannot be reached
STORE_UNAVAILABLE = Gauge("gateway_store_unavailable", "1 while the shared store cannot be reached (served per "
                          "storage.on_unavailable)", ["store"], multiprocess_mode="livemax")
# the response cache (gateway/cache/): hit rate = hit / (hit + miss)
CACHE_LOOKUPS = Counter("gateway_cache_lookups_total", "Response cache lookups by result (hit, miss)", ["result"])
CACHE_SAVED = Counter("gateway_cache_saved_usd_total", "USD the answers served from the response cache cost when "
                      "they were fetched")
CACHE_BYTES = Gauge("gateway_cache_bytes", "Bytes held by the in-memory response cache (summed over workers)",
                    multiprocess_mode="livesum")
# guardrails (gateway/guardrails/): one count per guard action (block, mask, log, replace, error); the
# label is the guard's configured name, never what it matched
GUARDRAIL_ACTIONS = Counter("gateway_guardrail_actions_total", "Guardrail actions by guard and action",
                            ["guardrail", "action"])

# MCP (gateway/mcp/): tool calls by server, tool (``other`` for a name the server does not list) and
# status (ok, tool_error, denied, rate_limited, budget_exceeded, unavailable, timeout, too_large,
# cancelled, rpc_error)
MCP_CALLS = Counter("gateway_mcp_calls_total", "MCP tool calls", ["server", "tool", "status"])
MCP_CALL_DURATION = Histogram("gateway_mcp_call_duration_seconds", "MCP tool call duration",
                              ["server", "tool", "status"], buckets=_LATENCY_BUCKETS)
MCP_SERVER_UP = Gauge("gateway_mcp_server_up", "1 while an MCP server answers (per worker: the lowest)",
                      ["server"], multiprocess_mode="livemin")

# the sinks of observability.sinks (gateway/observability/sinks/): label ``sink`` is the sink's name
SINK_DELIVERED = Counter("gateway_sink_delivered_total", "Access records a sink delivered", ["sink"])
SINK_DROPPED = Counter("gateway_sink_dropped_total", "Access records a sink dropped: its queue was full, or "
                       "delivery failed past its retries", ["sink"])
SINK_ERRORS = Counter("gateway_sink_errors_total", "Failed delivery attempts of a sink", ["sink"])


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

    def forget(self, *labels: str) -> None:
        """Drop the child of ``labels`` (its series disappears from the exposition)."""
        self._cache.pop(labels, None)
        with contextlib.suppress(KeyError):
            self._metric.remove(*labels)


requests_by = Children(REQUESTS)
client_requests_by = Children(CLIENT_REQUESTS)
client_errors_by = Children(CLIENT_ERRORS)
request_duration_by = Children(REQUEST_DURATION)
upstream_duration_by = Children(UPSTREAM_DURATION)
tokens_by = Children(TOKENS)
cost_by = Children(COST)
client_cost_by = Children(CLIENT_COST)
attempts_by = Children(UPSTREAM_ATTEMPTS)
cache_lookups_by = Children(CACHE_LOOKUPS)
mcp_calls_by = Children(MCP_CALLS)
mcp_duration_by = Children(MCP_CALL_DURATION)
mcp_server_up_by = Children(MCP_SERVER_UP)
guardrail_actions_by = Children(GUARDRAIL_ACTIONS)
sink_delivered_by = Children(SINK_DELIVERED)
sink_dropped_by = Children(SINK_DROPPED)
sink_errors_by = Children(SINK_ERRORS)


def set_config_version(version: str, previous: str | None) -> None:
    if previous is not None and previous != version:
        with contextlib.suppress(KeyError):
            CONFIG_INFO.remove(previous)
    CONFIG_INFO.labels(version).set(1)


# --- the namespace (``metrics.namespace``) ------------------------------------------------------
DEFINED_NAMESPACE = "gateway"  # the prefix the metrics above are defined with
_namespace = DEFINED_NAMESPACE


def use_namespace(configured: str) -> None:
    """Expose the metrics under ``configured`` from now on (called once, when the worker starts;
    a reload that changes ``metrics.namespace`` is told it takes a restart: config/watcher.py)."""
    global _namespace
    _namespace = configured


def namespace() -> str:
    """The namespace the metrics are exposed under (``use_namespace``)."""
    return _namespace


class Renamed(Collector):
    """``source``'s metric families with the prefix ``gateway_`` replaced by ``namespace_``."""

    def __init__(self, source: Collector, namespace: str) -> None:
        self._source = source
        self._old = DEFINED_NAMESPACE + "_"
        self._new = namespace + "_"

    def collect(self) -> Iterable[Metric]:
        for family in self._source.collect():
            if family.name.startswith(self._old):
                yield self._rename(family)
            else:
                yield family

    def _rename(self, family: Metric) -> Metric:
        cut = len(self._old)
        renamed = Metric(self._new + family.name[cut:], family.documentation, family.type, family.unit)
        renamed.samples = [s._replace(name=self._new + s.name[cut:]) for s in family.samples]
        return renamed


def _every_worker() -> Collector:
    """This process's metrics, or every worker's when several run (prometheus multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        # prometheus_client leaves MultiProcessCollector.__init__ unannotated.
        return multiprocess.MultiProcessCollector(None)  # type: ignore[no-untyped-call]
    return REGISTRY


CACHE_LOOKUPS_FAMILY, GUARDRAIL_ACTIONS_FAMILY = "gateway_cache_lookups", "gateway_guardrail_actions"
Samples = dict[str, list[tuple[dict[str, str], int]]]  # family name -> (labels, count) of its ``_total`` samples


def counter_samples(*families: str) -> Samples:
    """The counts of the named counter families (names without ``_total``), every worker's, from one
    collection (in multiprocess mode each collection reads every worker's files)."""
    found: Samples = {name: [] for name in families}
    for family in _every_worker().collect():
        samples = found.get(family.name)
        if samples is not None:
            samples += [(s.labels, int(s.value)) for s in family.samples if s.name.endswith("_total")]
    return found


def cache_lookups(samples: Samples | None = None) -> dict[str, int]:
    """Response-cache lookups since start by result (``hit``, ``miss``), summed over the workers."""
    found = {"hit": 0, "miss": 0}
    for labels, count in (samples or counter_samples(CACHE_LOOKUPS_FAMILY))[CACHE_LOOKUPS_FAMILY]:
        if labels.get("result") in found:
            found[labels["result"]] += count
    return found


def guardrail_actions(samples: Samples | None = None) -> list[tuple[str, str, int]]:
    """Guardrail actions since start as (guardrail, action, count), summed over the workers."""
    found: dict[tuple[str, str], int] = {}
    for labels, count in (samples or counter_samples(GUARDRAIL_ACTIONS_FAMILY))[GUARDRAIL_ACTIONS_FAMILY]:
        key = (labels.get("guardrail", ""), labels.get("action", ""))
        found[key] = found.get(key, 0) + count
    return sorted((g, a, n) for (g, a), n in found.items() if n)


def render() -> tuple[bytes, str]:
    source = _every_worker()
    if _namespace != DEFINED_NAMESPACE:
        source = Renamed(source, _namespace)
    return generate_latest(source), CONTENT_TYPE_LATEST


def count_client(client_id: str, failed: bool, cost_usd: float) -> None:
    """One finished request of ``client_id``. Its three series exist from its first request (at
    0), so an error ratio reads 0 rather than nothing, and a first cost is not lost to ``rate()``."""
    client_requests_by(client_id).inc()
    errors, cost = client_errors_by(client_id), client_cost_by(client_id)
    if failed:
        errors.inc()
    if cost_usd > 0:
        cost.inc(cost_usd)


def count_guardrail_action(guardrail: str, action: str, times: int = 1) -> None:
    """``times`` actions of one guard (``GuardEvent.guardrail``, ``.action``, ``.times``)."""
    guardrail_actions_by(guardrail, action).inc(times)
