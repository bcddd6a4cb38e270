"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: the Anthropic dialect.

The key comes as ``x-api-key`` (what Anthropic's SDKs send) or ``Authorization: Bearer``. The
query string (Claude Code's ``?beta=true``) and the ``anthropic-*`` headers go to Anthropic
providers as they came.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import orjson

from ...core.call import Call
from ...core.targets import Route
from ...core.usage import Answer
from ...pipeline import CLIENT_CLOSED, Admitted, Pipeline, Stream, translated
from ...routing.resolve import resolve
from ..common import DisconnectGuard, read_json, request_id_of, stream_to
from ..dialect import DialectResource
from ..dialects import estimate_input
from .options import wants_thinking
from .parse import ANTHROPIC, COUNT_TOKENS, MESSAGES, parse_count, parse_messages
from .render import to_message
from .stream import MessageEvents, NativeEvents


class MessagesResource(DialectResource):
    endpoint = MESSAGES

    def parse(self, body: dict[str, Any], req: falcon.asgi.Request, params: dict[str, Any]) -> Call:
        return parse_messages(body, req.query_string, req.headers.items())

    def render(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, admitted: Admitted,
               result: Answer | Stream | None) -> None:
        render(resp, result, admitted.call, admitted.exchange.native)


def render(resp: falcon.asgi.Response, result: Answer | Stream | None, call: Call, native: bool) -> None:
    """The pipeline's result as Anthropic's answer: translated from OpenAI's shape, or as it came."""
    thinking = wants_thinking(call.native_body or {})
    if result is None:  # the client left before the answer: nobody reads this, the access log does
        resp.status = CLIENT_CLOSED
    elif isinstance(result, Answer):
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(result.data if native else to_message(result.data, result.usage, call.model, thinking))
    elif native:
        events = NativeEvents()
        stream_to(resp, translated(result, events.feed, events.end), "text/event-stream")
    else:
        translator = MessageEvents(call.model, estimate_input(call.body), thinking)
        stream_to(resp, translated(result, translator.feed, translator.end), "text/event-stream")


class CountTokensResource:
    """The provider's own count when the model routes to an Anthropic provider (the request passed
    through to its ``/messages/count_tokens``, only to the route's Anthropic targets); elsewhere
    an estimate (about four characters a token, as the gateway's limits count), sent nowhere."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        pipeline = self.pipeline
        exchange = await pipeline.begin(COUNT_TOKENS, request_id_of(req, resp), req.get_header("authorization"),
                                        req.get_header("x-api-key"))
        body = await read_json(req, exchange.snapshot.max_body_bytes)
        call = parse_count(body, req.query_string, req.headers.items())
        route = resolve(exchange.snapshot, call.model, exchange.client)  # 400 for a model this client cannot use
        native = [i for i, target in enumerate(route.targets) if target.provider.protocol == ANTHROPIC]
        resp.content_type = falcon.MEDIA_JSON
        if not native:
            resp.set_header("x-gateway-token-count", "estimate")
            resp.data = orjson.dumps({"input_tokens": estimate_input(call.body)})
            return
        anthropic = Route(route.strategy, tuple(route.targets[i] for i in native),
                          tuple(route.weights[i] for i in native) if route.weights else ())
        admitted = await pipeline.admit(exchange, call, anthropic)
        for name, value in admitted.headers.items():
            resp.set_header(name, value)
        if admitted.call.dialect != ANTHROPIC:  # a guard changed the text: the client's own is not passed on
            await pipeline.answered_here(admitted)
            resp.set_header("x-gateway-token-count", "estimate")
            resp.data = orjson.dumps({"input_tokens": estimate_input(admitted.call.body)})
            return
        result = await pipeline.dispatch(admitted, DisconnectGuard(req))
        if result is None:
            resp.status = CLIENT_CLOSED
        elif isinstance(result, Answer):
            resp.set_header("x-gateway-token-count", "provider")
            resp.data = orjson.dumps(result.data)
        else:  # an upstream that streamed a count: passed on as it came
            stream_to(resp, result, result.content_type)
