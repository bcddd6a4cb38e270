"""``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``: the OpenAI dialect (a chat
request with MCP tools: ``mcp_flow.py``)."""

from __future__ import annotations

from typing import Any

import falcon.asgi

from ...core.call import Call
from ...core.usage import Answer
from ...errors import GatewayError
from ...pipeline import Admitted, Exchange, Pipeline, Stream
from ..dialect import DialectResource
from .mcp_flow import chat_call, serve
from .mcp_request import has_mcp_tools
from .parse import CHAT_ENDPOINT, Endpoint, parse_call
from .render import render


class OpenAIResource(DialectResource):
    def __init__(self, pipeline: Pipeline, endpoint: Endpoint):
        super().__init__(pipeline)
        self.kind = endpoint
        self.endpoint = endpoint.name

    def cache_control(self, req: falcon.asgi.Request) -> str | None:
        return req.get_header("cache-control")

    def parse(self, body: dict[str, Any], req: falcon.asgi.Request, params: dict[str, Any]) -> Call:
        return parse_call(body, self.kind)

    async def run(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, exchange: Exchange, call: Call) -> None:
        """A chat request with MCP tools runs the tool loop (``mcp_flow.py``); any other, the pipeline."""
        if self.kind is not CHAT_ENDPOINT or not has_mcp_tools(call.body):
            await super().run(req, resp, exchange, call)
            return
        try:
            call, found = chat_call(exchange, call)
        except GatewayError as exc:
            self.pipeline.refuse(exchange, exc)
            raise
        await serve(self.pipeline, req, resp, exchange, call, None, found, None, self.cache_control(req))

    def render(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, admitted: Admitted,
               result: Answer | Stream | None) -> None:
        cache = admitted.exchange.outcome.cache
        if cache is not None:  # the response cache applied: hit | miss
            resp.set_header("x-cache", cache)
        render(resp, result)
