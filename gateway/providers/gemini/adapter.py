"""The Gemini adapter (Google AI Studio, ``generateContent``): OpenAI in, Gemini on the wire, OpenAI out.

Chat and completions go to ``{root}/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse`` for
streams), embeddings to ``:embedContent`` (one input) or ``:batchEmbedContents`` (a list). The key travels
in the ``x-goog-api-key`` header, never in the URL (where access logs would keep it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import orjson

from ...core.call import CHAT, COMPLETIONS, EMBEDDINGS, PASSTHROUGH, Call
from ...core.request import UpstreamRequest
from ...core.usage import Answer
from ...errors import InvalidRequest
from ..base import Relay, Verdict
from ..openai.request import request_headers
from .embeddings import embed_request, is_batch, parse_embeddings
from .errors import classify, error_message
from .passthrough import DIALECT, NativeRelay, parse_native
from .request import chat_request, completion_request
from .response import parse_answer
from .stream import GeminiRelay

if TYPE_CHECKING:
    from ...core.targets import ProviderKey, Target


def model_url(target: Target, method: str) -> str:
    """``{root}/models/{model}:{method}`` (a ``models/`` prefix on the model is taken as given)."""
    model = target.model.removeprefix("models/")
    return f"{target.provider.api_root}/models/{quote(model, safe='-._~')}:{method}"


def _native(call: Call) -> bool:
    """The client spoke Gemini's protocol itself: its body goes as it came (same-dialect pass-through)."""
    return call.dialect == DIALECT and call.operation in (CHAT, PASSTHROUGH)


def _native_body(target: Target, call: Call) -> dict[str, Any]:
    """The client's own body; a ``countTokens`` body's ``generateContentRequest`` names the target's model."""
    body = call.native_body if call.native_body is not None else call.body
    inner = body.get("generateContentRequest") if call.operation == PASSTHROUGH else None
    if isinstance(inner, dict):
        body = {**body, "generateContentRequest": {**inner, "model": "models/" + target.model.removeprefix("models/")}}
    return body


class GeminiAdapter:
    def build_request(self, target: Target, key: ProviderKey | None, call: Call) -> UpstreamRequest:
        auth = {"x-goog-api-key": key.secret} if key is not None else {}
        streams = call.stream and call.operation in (CHAT, COMPLETIONS)
        if call.operation == EMBEDDINGS:
            model = target.model.removeprefix("models/")
            method = "batchEmbedContents" if is_batch(call.body) else "embedContent"
            body = embed_request(call.body, model)
        elif _native(call):
            method = call.path if call.operation == PASSTHROUGH else \
                "streamGenerateContent?alt=sse" if streams else "generateContent"
            body = _native_body(target, call)
        elif call.operation in (CHAT, COMPLETIONS):
            method = "streamGenerateContent?alt=sse" if streams else "generateContent"
            body = chat_request(call.body) if call.operation == CHAT else completion_request(call.body)
        else:
            raise InvalidRequest(f"Provider '{target.provider.id}' (type gemini) cannot serve {call.path}.")
        headers = request_headers(target.provider, auth, streams)
        if call.headers and _native(call):  # the client's x-goog-api-client, as it came
            headers = httpx.Headers({**dict(headers), **dict(call.headers)})
        return UpstreamRequest("POST", model_url(target, method), headers, orjson.dumps(body),
                               shared_head=not (call.headers and _native(call)))

    def parse_response(self, raw: bytes, call: Call) -> Answer:
        if call.operation == EMBEDDINGS:
            return parse_embeddings(raw, call.model, call.body)
        if _native(call):
            return parse_native(raw, call, counted=call.operation == CHAT)
        return parse_answer(raw, call.model, call.body, call.operation == CHAT)

    def stream_relay(self, call: Call) -> Relay:
        return NativeRelay(call) if _native(call) else GeminiRelay(call)

    def error_message(self, body: bytes, secret: str | None) -> str:
        return error_message(body, secret)

    def classify(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> Verdict:
        return classify(status, headers, body)
