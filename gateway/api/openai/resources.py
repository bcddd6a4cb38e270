"""``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings``: parse, run the pipeline, render."""

from __future__ import annotations

import falcon.asgi

from ...errors import GatewayError
from ...pipeline import Pipeline
from ..common import DisconnectGuard, read_json, request_id_of
from .parse import Endpoint, parse_call
from .render import render


class OpenAIResource:
    def __init__(self, pipeline: Pipeline, endpoint: Endpoint):
        self.pipeline = pipeline
        self.endpoint = endpoint

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        pipeline = self.pipeline
        request_id = request_id_of(req, resp)
        ex = await pipeline.begin(self.endpoint.name, request_id, req.get_header("authorization"),
                                  req.get_header("x-api-key"))
        try:
            call = parse_call(await read_json(req, ex.snap.max_body_bytes), self.endpoint)
        except GatewayError as exc:
            pipeline.refuse(ex, exc)
            raise
        for name, value in (await pipeline.admit(ex, call)).items():
            resp.set_header(name, value)
        result = await pipeline.dispatch(ex, DisconnectGuard(req), req.get_header("cache-control"))
        if ex.outcome.cache is not None:  # the response cache applied (hit | miss)
            resp.set_header("x-cache", ex.outcome.cache)
        render(resp, result)
