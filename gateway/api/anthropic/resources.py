"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: the Anthropic dialect.

The key comes as ``x-api-key`` (what Anthropic's SDKs send) or ``Authorization: Bearer``.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import orjson

from ...core.call import Call
from ...core.usage import Answer
from ...pipeline import CLIENT_CLOSED, Admitted, Pipeline, Stream, translated
from ...pipeline.estimate import input_tokens
from ...routing.resolve import resolve
from ..common import read_json, stream_to
from ..dialect import DialectResource
from .parse import MESSAGES, parse_messages
from .render import to_message
from .stream import MessageEvents, NativeEvents


class MessagesResource(DialectResource):
    endpoint = MESSAGES

    def parse(self, body: dict[str, Any], req: falcon.asgi.Request, params: dict[str, Any]) -> Call:
        return parse_messages(body)

    def render(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, admitted: Admitted,
               result: Answer | Stream | None) -> None:
        render(resp, result, admitted.call.model, admitted.exchange.native)


def render(resp: falcon.asgi.Response, result: Answer | Stream | None, model: str, native: bool) -> None:
    """The pipeline's result as Anthropic's answer: translated from OpenAI's shape, or as it came."""
    if result is None:  # the client left before the answer: nobody reads this, the access log does
        resp.status = CLIENT_CLOSED
    elif isinstance(result, Answer):
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(result.data if native else to_message(result.data, result.usage, model))
    else:
        events: MessageEvents | NativeEvents = NativeEvents() if native else MessageEvents(model)
        stream_to(resp, translated(result, events.feed, events.end), "text/event-stream")


class CountTokensResource:
    """An estimate (about four characters a token, as the gateway's limits count), not the provider's
    count: the request is authenticated, checked and its model resolved, but sent nowhere."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        exchange = await self.pipeline.begin("count_tokens", "", req.get_header("authorization"),
                                             req.get_header("x-api-key"))
        body = await read_json(req, exchange.snapshot.max_body_bytes)
        body.setdefault("max_tokens", 1)  # not needed to count
        call = parse_messages(body)
        resolve(exchange.snapshot, call.model, exchange.client)  # 400 for a model this client cannot use
        tools = call.body.get("tools")
        count = input_tokens(call) + (len(orjson.dumps(tools)) + 3) // 4 if tools else input_tokens(call)
        resp.content_type = falcon.MEDIA_JSON
        resp.set_header("x-gateway-token-count", "estimate")
        resp.data = orjson.dumps({"input_tokens": count})
