"""OpenAI-compatible protocol (OpenAI and every preset that speaks it): pure translation.

Requests go out nearly as they came in (only ``model`` changes); responses come back with
``model`` set to what the client asked for, and usage read for accounting. For streams the
gateway always asks the upstream for usage (``stream_options.include_usage``) and strips the
usage chunk again when the client did not ask for it.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from ..config.snapshot import ProviderKey, ProviderSpec, Target
from ..upstream import UpstreamRequest
from .base import Usage, estimate_prompt_tokens, estimate_tokens

JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}


def auth_headers(key: ProviderKey | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key.secret}"} if key is not None else {}


def chat_body(target: Target, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    out = dict(body)
    out["model"] = target.model
    if stream and target.provider.stream_usage:
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True
        out["stream_options"] = options
    return out


_HEADER_CACHE: dict[tuple, httpx.Headers] = {}


def request_headers(provider: ProviderSpec, auth: dict[str, str], stream: bool) -> httpx.Headers:
    """Headers for one key of one provider, built once and shared (callers must not mutate them).

    An ``httpx.Headers`` object, because httpx copies one without normalising it again.
    """
    cache_key = (provider.id, provider.headers, tuple(auth.items()), stream)
    headers = _HEADER_CACHE.get(cache_key)
    if headers is None:
        if len(_HEADER_CACHE) > 4096:
            _HEADER_CACHE.clear()
        merged = dict(JSON_HEADERS)
        merged.update(provider.headers)
        merged.update(auth)
        if stream:
            merged["accept"] = "text/event-stream"
        headers = _HEADER_CACHE[cache_key] = httpx.Headers(merged)
    return headers


def build_chat_request(target: Target, key: ProviderKey | None, body: dict[str, Any], stream: bool,
                       path: str = "/chat/completions") -> UpstreamRequest:
    headers = request_headers(target.provider, auth_headers(key), stream)
    return UpstreamRequest("POST", target.provider.api_root + path, headers,
                           orjson.dumps(chat_body(target, body, stream)))


def build_passthrough_request(target: Target, key: ProviderKey | None, body: dict[str, Any],
                              path: str) -> UpstreamRequest:
    """Endpoints other than chat (embeddings, completions, …): only ``model`` is rewritten."""
    headers = request_headers(target.provider, auth_headers(key), False)
    out = dict(body)
    out["model"] = target.model
    return UpstreamRequest("POST", target.provider.api_root + path, headers, orjson.dumps(out))


def usage_from(data: dict[str, Any]) -> Usage | None:
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    return Usage(_count(usage.get("prompt_tokens") or usage.get("input_tokens")),
                 _count(usage.get("completion_tokens") or usage.get("output_tokens")))


def _count(value: Any) -> int:
    """A token count from an upstream's usage; anything that is not a number counts as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return 0
    return int(min(value, 1e12))


def translate_response(raw: bytes, requested_model: str, request_body: dict[str, Any]) -> tuple[bytes, Usage]:
    """Upstream JSON answer -> (bytes for the client, usage)."""
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the upstream answer is not a JSON object")
    data["model"] = requested_model
    usage = usage_from(data)
    if usage is None:
        usage = Usage(estimate_prompt_tokens(request_body.get("messages")),
                      estimate_tokens(_answer_text(data)), exact=False)
    return orjson.dumps(data), usage


def _answer_text(data: dict[str, Any]) -> str:
    parts = []
    for choice in data.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            text = message.get("content") if isinstance(message, dict) else None
            if text is None:
                text = choice.get("text")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


class StreamRelay:
    """Turns upstream SSE bytes into client SSE bytes, event by event.

    Feed it raw chunks; it yields complete events. It rewrites ``model``, keeps the usage,
    drops the usage-only chunk when the client did not ask for it, and notices ``[DONE]``.
    """

    def __init__(self, requested_model: str, client_wants_usage: bool, request_body: dict[str, Any]):
        self.requested_model = requested_model
        self.client_wants_usage = client_wants_usage
        self.request_body = request_body
        self.usage: Usage | None = None
        self.done = False
        self._buffer = b""
        self._text_parts: list[str] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = self._buffer + chunk
        if b"\r\n" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        out = []
        for event in events:
            translated = self._event(event)
            if translated is not None:
                out.append(translated)
        return out

    def _event(self, event: bytes) -> bytes | None:
        data_lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
        if not data_lines:
            return None  # comments / keep-alives
        data = b"\n".join(data_lines)
        if data == b"[DONE]":
            self.done = True
            return b"data: [DONE]\n\n"
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return b"data: " + data + b"\n\n"
        if not isinstance(chunk, dict):
            return b"data: " + data + b"\n\n"
        if "model" in chunk:
            chunk["model"] = self.requested_model
        usage = usage_from(chunk)
        if usage is not None:
            self.usage = usage
            if not self.client_wants_usage:
                if not chunk.get("choices"):
                    return None
                chunk.pop("usage", None)
        self._collect_text(chunk)
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _collect_text(self, chunk: dict[str, Any]) -> None:
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    self._text_parts.append(delta["content"])

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(estimate_prompt_tokens(self.request_body.get("messages")),
                     estimate_tokens("".join(self._text_parts)), exact=False)
