"""``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``.

The key comes as ``x-goog-api-key`` (what Google's SDKs send), ``?key=`` or ``Authorization:
Bearer``. ``:streamGenerateContent?alt=sse`` streams SSE events; without ``alt=sse`` one JSON
array, as Google's own API does.
"""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson

from ...errors import GatewayError
from ...pipeline import CLIENT_CLOSED, EventStream, Pipeline, Whole
from ..common import DisconnectGuard, read_json, request_id_of
from ..dialects import TranslatedStream
from .parse import GENERATE, parse_generate
from .render import to_response
from .stream import Framing, NativeChunks, ResponseChunks


class GenerateContentResource:
    def __init__(self, pipeline: Pipeline, stream: bool):
        self.pipeline = pipeline
        self.stream = stream

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str) -> None:
        pipeline = self.pipeline
        request_id = request_id_of(req, resp)
        key = req.get_header("x-goog-api-key") or req.get_param("key")
        exchange = await pipeline.begin(GENERATE, request_id, req.get_header("authorization"), key)
        try:
            call = parse_generate(await read_json(req, exchange.snapshot.max_body_bytes), model, self.stream)
        except GatewayError as exc:
            pipeline.refuse(exchange, exc)
            raise
        for name, value in (await pipeline.admit(exchange, call)).items():
            resp.set_header(name, value)
        result = await pipeline.dispatch(exchange, DisconnectGuard(req))
        render(resp, result, call.model, exchange.native, req.get_param("alt") == "sse")


def render(resp: falcon.asgi.Response, result: Whole | EventStream | None, model: str, native: bool,
           sse: bool) -> None:
    """The pipeline's result as Google's answer: translated from OpenAI's shape, or as it came."""
    if result is None:  # the client left before the answer: nobody reads this, the access log does
        resp.status = CLIENT_CLOSED
    elif isinstance(result, Whole):
        resp.content_type = falcon.MEDIA_JSON
        data = result.data if native else to_response(result.data, result.usage, model)
        resp.data = orjson.dumps(data)
    else:
        chunks: ResponseChunks | NativeChunks = NativeChunks() if native else ResponseChunks(model)
        framing = Framing(sse)
        resp.content_type = framing.content_type
        resp.set_header("cache-control", "no-cache")
        resp.set_header("x-accel-buffering", "no")
        resp.stream = TranslatedStream(result, lambda item: framing.frame(chunks.feed(item)), framing.close)
