"""The Anthropic Messages adapter (``type: anthropic``): OpenAI chat in, ``POST {root}/messages`` out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from ...core.call import CHAT, Call
from ...core.ratelimit import retry_after_seconds
from ...core.request import UpstreamRequest
from ...core.usage import Answer, Usage
from ...errors import InvalidRequest
from ..base import OK, RATE_LIMITED, Relay, Verdict, classify_status, scrub
from ..openai.request import request_headers
from .limits import headroom
from .request import json_mode, messages_body
from .response import parse_message, usage_of
from .stream import AnthropicStreamRelay, NativeStreamRelay

if TYPE_CHECKING:
    from ...core.targets import ProviderKey, Target

DEFAULT_VERSION = "2023-06-01"
OVERLOADED = 529  # Anthropic's "overloaded_error": the key rests as after a 429


def _native(call: Call) -> bool:
    """The client spoke Anthropic's protocol itself (same-dialect pass-through)."""
    return call.native_body is not None and call.dialect == "anthropic"


class AnthropicAdapter:
    """OpenAI chat requests translated to Anthropic Messages and back (see the package docstring)."""

    def build_request(self, target: Target, key: ProviderKey | None, call: Call) -> UpstreamRequest:
        provider = target.provider
        if _native(call):
            body = dict(call.native_body or {})
            body["model"] = target.model
            body.pop("stream", None)
            if call.stream:
                body["stream"] = True
            path = "/messages" if call.operation == CHAT else call.path
        elif call.operation == CHAT:
            body, path = messages_body(call.body, target.model, call.stream), "/messages"
        else:
            raise InvalidRequest(f"Provider '{provider.id}' (type anthropic) serves chat completions only; "
                                 f"{call.path} is not available there.")
        auth = {"anthropic-version": provider.api_version or DEFAULT_VERSION}
        if key is not None:
            auth["x-api-key"] = key.secret
        headers = request_headers(provider, auth, call.stream)
        url = provider.api_root + path
        if not _native(call):
            return UpstreamRequest("POST", url, headers, orjson.dumps(body), shared_head=True)
        # the client's own query string and anthropic-* headers (its anthropic-version and betas, which
        # its body may need) go as they came
        if call.query:
            url += "?" + call.query
        if call.headers:
            merged = dict(headers)
            merged.update(call.headers)
            headers = httpx.Headers(merged)
        return UpstreamRequest("POST", url, headers, orjson.dumps(body), shared_head=not call.headers)

    def parse_response(self, raw: bytes, call: Call) -> Answer:
        if _native(call):
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("the upstream answer is not a JSON object")
            usage = data.get("usage")
            return Answer(data, usage_of(usage) if isinstance(usage, dict) else Usage(exact=False))
        return parse_message(raw, call.model, json_mode(call.body) == "tool")

    def stream_relay(self, call: Call) -> Relay:
        if _native(call):
            return NativeStreamRelay(call.body)
        return AnthropicStreamRelay(call.model, call.wants_usage, call.body, json_mode(call.body) == "tool")

    def error_message(self, body: bytes, secret: str | None) -> str:
        return error_text(body, secret)

    def classify(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> Verdict:
        """429 and 529 (overloaded) rest the key; ``anthropic-ratelimit-*`` tell its headroom (the
        body adds nothing the status does not say)."""
        hints = headroom(headers)
        if status < 300:
            return Verdict(OK, None, hints)
        kind = RATE_LIMITED if status == OVERLOADED else classify_status(status)
        return Verdict(kind, retry_after_seconds(hints) if kind == RATE_LIMITED else None, hints)


def error_text(body: bytes, secret: str | None) -> str:
    """``{"type": "error", "error": {"type", "message"}}`` -> "message (type)", the key scrubbed out."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return scrub(body[:300].decode("utf-8", "replace"), secret)
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return scrub(str(error or ""), secret)
    message, kind = str(error.get("message") or ""), str(error.get("type") or "")
    text = f"{message} ({kind})" if message and kind else message or kind
    return scrub(text, secret)
