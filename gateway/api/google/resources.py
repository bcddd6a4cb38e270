"""Google's dialect: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent``,
``:countTokens`` and ``GET /v1beta/models``.

The key comes as ``x-goog-api-key`` (what Google's SDKs send), ``?key=`` or ``Authorization:
Bearer``. ``:streamGenerateContent?alt=sse`` streams SSE events; without ``alt=sse`` one JSON
array, as Google's own API does. The model in the path may be any name the client may use (an
alias, ``provider:model``, a bare model). ``x-goog-api-client`` reaches Gemini providers as it came.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import orjson

from ...core.call import PASSTHROUGH, Call
from ...core.targets import Route
from ...core.usage import Answer
from ...errors import GatewayError
from ...pipeline import CLIENT_CLOSED, Admitted, Pipeline, Stream, translated
from ...pipeline.auth import authenticate_any
from ...routing.resolve import resolve, visible_models
from ...server.runtime import Runtime
from ..common import DisconnectGuard, read_json, request_id_of, stream_to
from ..dialect import DialectResource
from ..dialects import estimate_input
from .parse import GEMINI, GENERATE, parse_generate
from .render import to_response
from .stream import Framing, NativeChunks, ResponseChunks

COUNT_TOKENS = "count_tokens"  # the endpoint's name in the access log
_PASSED = ("x-goog-api-client",)
MAX_PAGE = 1000
DEFAULT_PAGE = 50


def credentials(req: falcon.asgi.Request) -> tuple[str | None, str | None]:
    return req.get_header("authorization"), req.get_header("x-goog-api-key") or req.get_param("key")


def passed_headers(req: falcon.asgi.Request) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name in _PASSED if (value := req.get_header(name)))


class GenerateContentResource(DialectResource):
    endpoint = GENERATE

    def __init__(self, pipeline: Pipeline, stream: bool):
        super().__init__(pipeline)
        self.stream = stream

    def credentials(self, req: falcon.asgi.Request) -> tuple[str | None, str | None]:
        return credentials(req)

    def parse(self, body: dict[str, Any], req: falcon.asgi.Request, params: dict[str, Any]) -> Call:
        return parse_generate(body, params["model"], self.stream, passed_headers(req))

    def render(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, admitted: Admitted,
               result: Answer | Stream | None) -> None:
        render(resp, result, admitted.call, admitted.exchange.native, req.get_param("alt") == "sse")


def render(resp: falcon.asgi.Response, result: Answer | Stream | None, call: Call, native: bool, sse: bool) -> None:
    """The pipeline's result as Google's answer: translated from OpenAI's shape, or as it came."""
    if result is None:  # the client left before the answer: nobody reads this, the access log does
        resp.status = CLIENT_CLOSED
    elif isinstance(result, Answer):
        resp.content_type = falcon.MEDIA_JSON
        data = result.data if native else to_response(result.data, result.usage, call.model)
        resp.data = orjson.dumps(data)
    else:
        framing = Framing(sse)
        if native and sse:  # the relay writes Gemini's SSE already: passed on as it is
            passed = NativeChunks(sse=True)
            stream = translated(result, passed.feed, list, framing.content_type)
        else:
            chunks = NativeChunks() if native else ResponseChunks(call.model, call.body)
            stream = translated(result, lambda item: framing.frame(chunks.feed(item)), framing.close,
                                framing.content_type)
        stream_to(resp, stream, framing.content_type)


class CountTokensResource:
    """``:countTokens``: the provider's own count when the model routes to a Gemini provider (the
    request passed through, only to the route's Gemini targets); elsewhere the gateway's estimate
    (about four characters a token, as its limits count), sent nowhere."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, model: str) -> None:
        pipeline = self.pipeline
        exchange = await pipeline.begin(COUNT_TOKENS, request_id_of(req, resp), *credentials(req))
        try:
            body = await read_json(req, exchange.snapshot.max_body_bytes)
            inner = body.get("generateContentRequest")
            generate = parse_generate(inner if isinstance(inner, dict) else body, model, False)
            counted = {**generate.body, "max_tokens": 1}  # a count produces no output: the budget holds for no more
            call = Call(PASSTHROUGH, "countTokens", counted, generate.model, dialect=GEMINI, native_body=body,
                        headers=passed_headers(req))
            route = resolve(exchange.snapshot, call.model, exchange.client)
        except GatewayError as exc:
            pipeline.refuse(exchange, exc)
            raise
        gemini = [i for i, target in enumerate(route.targets) if target.provider.protocol == GEMINI]
        resp.content_type = falcon.MEDIA_JSON
        if not gemini:
            _estimated(resp, generate.body)
            return
        only = Route(route.strategy, tuple(route.targets[i] for i in gemini), tuple(route.weights[i] for i in gemini))
        admitted = await pipeline.admit(exchange, call, only)
        for name, value in admitted.headers.items():
            resp.set_header(name, value)
        if admitted.call.dialect != GEMINI:  # a guard changed the text: the client's own is not passed on
            await pipeline.answered_here(admitted)
            _estimated(resp, admitted.call.body)
            return
        result = await pipeline.dispatch(admitted, DisconnectGuard(req))
        if result is None:
            resp.status = CLIENT_CLOSED
        elif isinstance(result, Answer):
            resp.set_header("x-gateway-token-count", "provider")
            resp.data = orjson.dumps(result.data)
        else:
            stream_to(resp, result, result.content_type)


def _estimated(resp: falcon.asgi.Response, chat: dict[str, Any]) -> None:
    """The gateway's own count of a chat body (about four characters a token), in Google's shape."""
    count = estimate_input(chat)
    resp.set_header("x-gateway-token-count", "estimate")
    resp.data = orjson.dumps({"totalTokens": count, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": count}]})


class ModelsResource:
    """``GET /v1beta/models``: the names the calling key may use, in Google's ``ListModelsResponse``
    shape (``pageSize``/``pageToken`` page through them)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        snapshot = self.runtime.snapshot
        caller = await authenticate_any(snapshot, self.runtime.directory, *credentials(req))
        names = [name for name, _ in visible_models(snapshot, caller.client)]
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(google_page(names, req))


def google_page(names: list[str], req: falcon.asgi.Request) -> dict[str, Any]:
    """One page of ``names`` in Google's ``ListModelsResponse`` shape (``pageSize``, ``pageToken``)."""
    size, token = req.get_param("pageSize") or "", req.get_param("pageToken") or ""
    size_n = int(size) if size.isdigit() and int(size) > 0 else DEFAULT_PAGE
    start = int(token) if token.isdigit() else 0
    page = names[start:start + min(size_n, MAX_PAGE)]
    answer: dict[str, Any] = {"models": [_model(name) for name in page]}
    if start + len(page) < len(names):
        answer["nextPageToken"] = str(start + len(page))
    return answer


def _model(name: str) -> dict[str, Any]:
    return {"name": f"models/{name}", "baseModelId": name, "version": "gateway", "displayName": name,
            "description": "A model served through the gateway.",
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]}
