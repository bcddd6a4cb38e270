"""One way to write a dialect's endpoint: the base runs the sequence, a dialect supplies its parser
and its renderer.

    begin (authenticate) → parse (the dialect's body into a ``Call``; a failure is refused and
    recorded) → admit (resolve the model, hold the client's limits and budget; the rate-limit
    headers go on every answer from here) → dispatch → render (the result in the dialect's shape)

``api/openai/resources.py``, ``api/anthropic/resources.py`` and ``api/google/resources.py`` are the
dialects written this way; a new dialect is a subclass with ``endpoint``, ``parse`` and ``render``
(and ``credentials`` when its key comes in another header).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import falcon.asgi

from ..core.call import Call
from ..core.usage import Answer
from ..errors import GatewayError
from ..pipeline import Admitted, Exchange, Pipeline, Stream
from .common import DisconnectGuard, read_json, request_id_of


class DialectResource(ABC):
    endpoint: str  # what the access log and the ledger call the endpoint

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def credentials(self, req: falcon.asgi.Request) -> tuple[str | None, str | None]:
        """(``Authorization``, another header or parameter carrying the key), as the dialect sends them."""
        return req.get_header("authorization"), req.get_header("x-api-key")

    def cache_control(self, req: falcon.asgi.Request) -> str | None:
        """The request's ``Cache-Control`` for the response cache (None: the cache's defaults)."""
        return None

    @abstractmethod
    def parse(self, body: dict[str, Any], req: falcon.asgi.Request, params: dict[str, Any]) -> Call:
        """The request's body (and URI ``params``) as a ``Call``; a ``GatewayError`` for one the provider
        itself would refuse."""

    @abstractmethod
    def render(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, admitted: Admitted,
               result: Answer | Stream | None) -> None:
        """The pipeline's result (None: the client left) written in the dialect's shape."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **params: Any) -> None:
        pipeline = self.pipeline
        authorization, key = self.credentials(req)
        exchange = await pipeline.begin(self.endpoint, request_id_of(req, resp), authorization, key)
        if pipeline.tracing is not None:
            pipeline.trace(exchange, req.get_header("traceparent"), req.get_header("tracestate"))
        try:
            call = self.parse(await read_json(req, exchange.snapshot.max_body_bytes), req, params)
        except GatewayError as exc:
            pipeline.refuse(exchange, exc)
            raise
        await self.run(req, resp, exchange, call)

    async def run(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, exchange: Exchange, call: Call) -> None:
        """Admit, dispatch and render ``call`` (a dialect may serve some calls another way)."""
        pipeline = self.pipeline
        admitted = await pipeline.admit(exchange, call)
        for name, value in admitted.headers.items():
            resp.set_header(name, value)
        result = await pipeline.dispatch(admitted, DisconnectGuard(req), self.cache_control(req))
        self.render(req, resp, admitted, result)
