"""Counting one MCP tool call: a usage ledger row, the Prometheus counter and duration histogram,
and an audit line (``gateway.audit``, written while ``server.log_requests`` is on, as the request
log is); what the guardrails did goes into all three (their counter, the row's and the line's
``guardrails``), without the content. Arguments and results are never kept, unless
``observability.capture_content`` is on: then they go into the audit line (cut at
``CAPTURE_LIMIT`` characters each)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..guardrails.events import GuardEvent, ledger_text
from ..observability import metrics
from ..observability.sinks.hub import SinkHub
from ..observability.sinks.record import AccessRecord
from ..observability.usage import count_guardrails
from ..store.base import Ledger
from ..store.values import LedgerRow

audit_log = logging.getLogger("gateway.audit")
CAPTURE_LIMIT = 65536
KIND = "mcp"  # ``LedgerRow.kind`` of a tool call

OK = "ok"
TOOL_ERROR = "tool_error"  # the tool ran and reported a failure (isError)
RPC_ERROR = "rpc_error"  # the server answered a JSON-RPC error
DENIED = "denied"
RATE_LIMITED = "rate_limited"
BUDGET_EXCEEDED = "budget_exceeded"
UNAVAILABLE = "unavailable"
TIMEOUT = "timeout"
TOO_LARGE = "too_large"
CANCELLED = "cancelled"
GUARDRAIL_BLOCKED = "guardrail_blocked"  # a guard blocked the arguments (not run) or the result (``CallRecord.ran``)
# the ledger's HTTP-like status of each outcome
STATUS_CODES = {OK: 200, TOOL_ERROR: 200, RPC_ERROR: 200, DENIED: 403, RATE_LIMITED: 429, BUDGET_EXCEEDED: 429,
                UNAVAILABLE: 502, TOO_LARGE: 502, TIMEOUT: 504, CANCELLED: 499, GUARDRAIL_BLOCKED: 400}
CHARGED = frozenset({OK, TOOL_ERROR, RPC_ERROR})  # the server ran the call: its price is charged


@dataclass(slots=True)
class CallRecord:
    request_id: str
    client_id: str
    server: str
    tool: str
    tool_label: str = "other"  # the tool as a metric label: a name the server lists, else "other"
    status: str = OK
    detail: str | None = None  # why it failed, for the audit line
    bytes_in: int = 0
    bytes_out: int = 0
    cost_usd: float = 0.0
    upstream_s: float | None = None
    streamed: bool = False
    arguments: Any = None  # kept only with capture_content
    result: Any = None
    ran: bool = False  # the server ran the call though its status says otherwise (a result a guard blocked)
    guardrails: list[GuardEvent] | None = None  # what the guardrails did (None: no guard applies)
    started: float = field(default_factory=time.perf_counter)
    arrived: float = field(default_factory=time.time)


def _captured(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= CAPTURE_LIMIT else text[:CAPTURE_LIMIT] + "…"


def record_call(rec: CallRecord, ledger: Ledger | None, capture_content: bool, log_line: bool = True,
                sinks: SinkHub | None = None) -> None:
    """Count ``rec``: metrics, a ledger row, the same record to the sinks; its audit line only with
    ``log_line`` (``server.log_requests``, as the request log)."""
    duration = time.perf_counter() - rec.started
    guarded = count_guardrails(rec.guardrails)
    metrics.mcp_calls_by(rec.server, rec.tool_label, rec.status).inc()
    metrics.mcp_duration_by(rec.server, rec.tool_label, rec.status).observe(duration)
    overhead = duration - rec.upstream_s if rec.upstream_s is not None and not rec.streamed else 0.0
    row = LedgerRow(
        time=rec.arrived, request_id=rec.request_id, client_id=rec.client_id, provider=rec.server,
        model=rec.tool[:200], key_label="", status=STATUS_CODES.get(rec.status, 500),
        error_code=None if rec.status == OK else rec.status, cost_usd=rec.cost_usd,
        latency_ms=duration * 1000.0, overhead_ms=max(0.0, overhead) * 1000.0, stream=rec.streamed,
        kind=KIND, bytes_in=rec.bytes_in, bytes_out=rec.bytes_out, guardrails=ledger_text(guarded) if guarded else "")
    if ledger is not None:
        ledger.record(row)
    if sinks is not None and sinks.sinks:
        sinks.put(AccessRecord(row, endpoint="mcp.tools/call", requested_model=rec.tool[:200]))
    if not log_line:
        return
    entry: dict[str, Any] = {
        "who": "client:" + rec.client_id, "action": "mcp.tools/call", "request_id": rec.request_id,
        "server": rec.server, "tool": rec.tool[:200], "status": rec.status, "error": rec.detail,
        "duration_ms": round(duration * 1000, 3), "bytes_in": rec.bytes_in, "bytes_out": rec.bytes_out,
        "cost_usd": round(rec.cost_usd, 8), "guardrails": [e.as_record() for e in guarded] if guarded else None,
    }
    if capture_content:
        entry["arguments"] = _captured(rec.arguments)
        entry["result"] = _captured(rec.result) if rec.result is not None else None
    audit_log.info("mcp tool call", extra=entry)
