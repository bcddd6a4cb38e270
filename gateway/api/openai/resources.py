"""``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``: the OpenAI dialect."""

from __future__ import annotations

from typing import Any

import falcon.asgi

from ...core.call import Call
from ...core.usage import Answer
from ...pipeline import Admitted, Pipeline, Stream
from ..dialect import DialectResource
from .parse import Endpoint, parse_call
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

    def render(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, admitted: Admitted,
               result: Answer | Stream | None) -> None:
        cache = admitted.exchange.outcome.cache
        if cache is not None:  # the response cache applied: hit | miss
            resp.set_header("x-cache", cache)
        render(resp, result)
