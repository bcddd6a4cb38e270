"""``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``: Google's dialect.

The key comes as ``x-goog-api-key`` (what Google's SDKs send), ``?key=`` or ``Authorization:
Bearer``. ``:streamGenerateContent?alt=sse`` streams SSE events; without ``alt=sse`` one JSON
array, as Google's own API does.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import orjson

from ...core.call import Call
from ...core.usage import Answer
from ...pipeline import CLIENT_CLOSED, Admitted, Pipeline, Stream, translated
from ..common import stream_to
from ..dialect import DialectResource
from .parse import GENERATE, parse_generate
from .render import to_response
from .stream import Framing, NativeChunks, ResponseChunks


class GenerateContentResource(DialectResource):
    endpoint = GENERATE

    def __init__(self, pipeline: Pipeline, stream: bool):
        super().__init__(pipeline)
        self.stream = stream

    def credentials(self, req: falcon.asgi.Request) -> tuple[str | None, str | None]:
        return req.get_header("authorization"), req.get_header("x-goog-api-key") or req.get_param("key")

    def parse(self, body: dict[str, Any], req: falcon.asgi.Request, params: dict[str, Any]) -> Call:
        return parse_generate(body, params["model"], self.stream)

    def render(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, admitted: Admitted,
               result: Answer | Stream | None) -> None:
        render(resp, result, admitted.call.model, admitted.exchange.native, req.get_param("alt") == "sse")


def render(resp: falcon.asgi.Response, result: Answer | Stream | None, model: str, native: bool,
           sse: bool) -> None:
    """The pipeline's result as Google's answer: translated from OpenAI's shape, or as it came."""
    if result is None:  # the client left before the answer: nobody reads this, the access log does
        resp.status = CLIENT_CLOSED
    elif isinstance(result, Answer):
        resp.content_type = falcon.MEDIA_JSON
        data = result.data if native else to_response(result.data, result.usage, model)
        resp.data = orjson.dumps(data)
    else:
        chunks: ResponseChunks | NativeChunks = NativeChunks() if native else ResponseChunks(model)
        framing = Framing(sse)
        stream = translated(result, lambda item: framing.frame(chunks.feed(item)), framing.close, framing.content_type)
        stream_to(resp, stream, framing.content_type)
