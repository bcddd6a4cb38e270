"""What the tool loop did on a model's behalf, step by step, and running one MCP tool call.

The steps, in the order they happen: ``Listed`` (the tools of one MCP server the request named,
or why there are none), ``Said`` (what the model wrote in a round that went on to call tools),
``CallStarted`` and ``CallDone`` (one MCP tool call). The dialects write them in their own words
(the Responses API's ``mcp_list_tools`` and ``mcp_call`` items: ``api/openai/mcp_items.py``).

A call's result is read as text for the model (text content joined; other content and a bare
``structuredContent`` as JSON). A call that failed says why in ``error``, in the Responses API's
shape (``McpToolCallError``): ``mcp_tool_execution_error`` when the tool itself reported an error,
``mcp_protocol_error`` for a JSON-RPC error (arguments that are not an object, a guardrail that
blocked them), ``http_error`` with the ledger's status for what the gateway refused or could not
do (server down 502, timeout 504, result too large 502, rate limit or budget 429, a guardrail that
blocked the result 400). The model reads the same text in every case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..mcp.accounting import OK, STATUS_CODES, TOOL_ERROR
from ..mcp.protocol import INVALID_PARAMS, RpcError
from ..mcp.service import ToolService
from ..observability.traces import tool_call
from .context import Exchange

COMPLETED, FAILED, INCOMPLETE = "completed", "failed", "incomplete"


@dataclass(frozen=True, slots=True)
class McpFunction:
    """What a function name offered to the model stands for."""

    server_id: str
    label: str  # the ``server_label`` the request gave the server
    tool: str  # the tool's own name on its server


@dataclass(frozen=True, slots=True)
class Listed:
    """The tools of one server offered to the model (MCP tool descriptions), or why none are."""

    label: str
    tools: tuple[dict[str, Any], ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Said:
    """What the model wrote in a round that went on to call tools (its text and reasoning)."""

    text: str
    reasoning: str = ""


@dataclass(frozen=True, slots=True)
class CallStarted:
    call_id: str  # the model's id for the call
    function: McpFunction
    arguments: str  # as the model wrote them (JSON text)


@dataclass(frozen=True, slots=True)
class CallDone:
    call_id: str
    function: McpFunction
    arguments: str
    status: str  # COMPLETED | FAILED | INCOMPLETE (not run: the loop's rounds were used up)
    text: str  # what the model reads
    error: dict[str, Any] | None = None  # the Responses API's McpToolCallError


Step = Listed | Said | CallStarted | CallDone


def result_text(result: dict[str, Any]) -> str:
    """An MCP ``CallToolResult`` as the text a model reads."""
    parts: list[str] = []
    content = result.get("content")
    for item in content if isinstance(content, list) else ():
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            parts.append(item["text"])
        else:
            parts.append(orjson.dumps(item).decode())
    if not parts and result.get("structuredContent") is not None:
        parts.append(orjson.dumps(result["structuredContent"]).decode())
    return "\n".join(parts)


def not_run(started: CallStarted) -> CallDone:
    """A call the loop did not run (its rounds were used up)."""
    return CallDone(started.call_id, started.function, started.arguments, INCOMPLETE,
                    "The gateway ran no more tool calls for this request (max_tool_rounds).")


def _protocol_error(started: CallStarted, code: int, message: str) -> CallDone:
    return CallDone(started.call_id, started.function, started.arguments, FAILED, message,
                    {"type": "mcp_protocol_error", "code": code, "message": message})


def _arguments(started: CallStarted) -> dict[str, Any] | None:
    try:
        value = orjson.loads(started.arguments or "{}")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


async def run_call(service: ToolService, exchange: Exchange, started: CallStarted) -> CallDone:
    """Run one call the model made through the client's tool service (policy, limits, budget,
    guards, the ledger row: ``mcp/service.py``), in a span under the request's."""
    function = started.function
    arguments = _arguments(started)
    if arguments is None:
        return _protocol_error(started, INVALID_PARAMS, f"The arguments of '{function.tool}' must be a JSON object.")
    spec = exchange.snapshot.mcp_servers.get(function.server_id)
    where = urlsplit(spec.url) if spec is not None and spec.url is not None else None
    server = (where.hostname, where.port or (443 if where.scheme == "https" else 80)) \
        if where is not None and where.hostname else None
    with tool_call(exchange.trace, function.tool, call_id=started.call_id, arguments=arguments,
                   server=server) as span:
        try:
            outcome = await service.call_tool(exchange.snapshot, exchange.client, function.server_id, function.tool,
                                              arguments, request_id=exchange.outcome.request_id,
                                              shown_as=function.tool)
        except RpcError as exc:
            span.result(exc.message, is_error=True)
            return _protocol_error(started, exc.code, exc.message)
        text = result_text(outcome.result)
        failed = outcome.result.get("isError") is True
        span.result(outcome.result, is_error=failed)
    if not failed:
        return CallDone(started.call_id, function, started.arguments, COMPLETED, text)
    if outcome.status in (TOOL_ERROR, OK):
        error = {"type": "mcp_tool_execution_error", "content": outcome.result.get("content") or []}
    else:
        error = {"type": "http_error", "code": STATUS_CODES.get(outcome.status, 502), "message": text}
    return CallDone(started.call_id, function, started.arguments, FAILED, text, error)
