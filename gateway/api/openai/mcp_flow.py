"""``/v1/responses`` and ``/v1/chat/completions`` with MCP tools: the request's servers listed, the
tool loop run (``pipeline/tool_loop.py``), the answer written with what it did (``mcp_items.py``).

A Responses request with MCP tools is always translated to chat, whichever provider serves the
model: a Responses-native upstream would try to reach the MCP server itself.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from ...core.call import CHAT, Call
from ...core.targets import Route
from ...core.usage import Answer
from ...errors import GatewayError, InvalidRequest
from ...pipeline import Exchange, Pipeline, Stream, SurfacePipeline
from ...pipeline.tool_loop import ToolLoop
from ...pipeline.tool_offer import McpSelection, make_offer
from ..common import DisconnectGuard
from .mcp_items import ROUND_SEPARATOR, chat_events, loop_chat, loop_response, response_events
from .mcp_request import function_names, selections, without_mcp
from .render import render
from .responses_chat import responses_to_chat


def responses_call(pipeline: SurfacePipeline, exchange: Exchange, body: dict[str, Any], model: str,
                   stream: bool) -> tuple[Call, Route, list[McpSelection]]:
    """A Responses request with MCP tools as the chat call the loop starts from, its route (the
    targets that serve chat) and its servers; ``InvalidRequest`` for a tool the gateway cannot serve."""
    found = selections(body, exchange.snapshot, exchange.client)
    route = pipeline.route_for(exchange, model, CHAT, "/v1/responses")
    chat, dropped = responses_to_chat(without_mcp(body, found, True), {s.label: s.server_id for s in found})
    return Call(CHAT, "/chat/completions", chat, model, stream, wants_usage=True, dropped=dropped,
                translated=True), route, found


def chat_call(exchange: Exchange, call: Call) -> tuple[Call, list[McpSelection]]:
    """A chat request with MCP tools: the call without them, and its servers."""
    found = selections(call.body, exchange.snapshot, exchange.client)
    if call.body.get("n") not in (None, 1):
        raise InvalidRequest("'n' must be 1 when the request has MCP tools.", param="n")
    body = without_mcp(call.body, found, False)
    return Call(call.operation, call.path, body, call.model, call.stream, call.wants_usage), found


async def serve(pipeline: Pipeline, req: falcon.asgi.Request, resp: falcon.asgi.Response, exchange: Exchange,
                call: Call, route: Route | None, found: list[McpSelection], request: dict[str, Any] | None,
                cache_control: str | None = None) -> None:
    """Run the loop for ``call`` and write its answer (``request``: the Responses request; None for
    chat completions)."""
    try:
        offer = await make_offer(pipeline.runtime.tools, exchange.snapshot, exchange.client, found,
                                 function_names(call.body))
    except GatewayError as exc:
        pipeline.refuse(exchange, exc)
        raise
    loop = ToolLoop(pipeline, exchange, offer, call, route, lambda: DisconnectGuard(req),
                    lead="" if request is not None else ROUND_SEPARATOR, cache_control=cache_control)
    try:
        admitted = await loop.admit()
    except BaseException:
        loop.finish()
        raise
    for name, value in admitted.headers.items():
        resp.set_header(name, value)
    if call.stream:
        stream = await loop.stream(admitted)
        if stream is None:
            render(resp, None)
        elif request is not None:
            render(resp, Stream(response_events(stream, request, call.body), source=stream))
        else:
            render(resp, Stream(chat_events(stream, call.model), source=stream))
        return
    result = await loop.whole(admitted)
    if result is None:
        render(resp, None)
    else:
        render(resp, Answer(loop_response(result, request) if request is not None else loop_chat(result),
                            result.answer.usage))
