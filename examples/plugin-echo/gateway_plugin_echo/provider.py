"""The ``echo`` provider type: chat completions answered with the last user message, in-process.

It is built like the gateway's own provider types: an adapter meeting ``ProviderAdapter`` (pure
translation: it builds the request and reads the answer), a config model subclassing
``ProviderConfigBase`` (its own field ``prefix``, validated with the rest of config.yaml), and a
``ProviderType`` naming them. Where a built-in type's requests go to a provider over HTTP, this
one's go to ``EchoTransport``, an httpx transport that answers ``echo://`` URLs in the process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, Literal

import httpx
from pydantic import Field

from gateway.config.schema import ProviderConfigBase
from gateway.core.call import Call
from gateway.core.request import UpstreamRequest
from gateway.core.sse import SSEDecoder
from gateway.core.targets import ProviderKey, Target
from gateway.core.usage import Answer, Usage
from gateway.providers.base import Verdict, classify_status, error_message_from
from gateway.providers.registry import ProviderType


class EchoConfig(ProviderConfigBase):
    """``{id: parrot, type: echo, models: [echo-1], prefix: "echo: "}``."""

    type: Literal["echo"]
    prefix: str = Field("", max_length=100)  # put before every answer


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _words(text: str) -> int:
    return len(text.split())


def echo_of(body: dict[str, Any], prefix: str) -> tuple[str, Usage]:
    """The answer to a chat body: the last user message with the prefix; usage counted in words."""
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    last = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    answer = prefix + last
    return answer, Usage(sum(_words(_text(m.get("content"))) for m in messages), _words(answer))


def _usage_json(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens}


class EchoTransport(httpx.AsyncBaseTransport):
    """Answers ``POST echo://…/chat/completions`` as an OpenAI-compatible server would."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(await request.aread())
        answer, usage = echo_of(body, request.headers.get("x-echo-prefix", ""))
        base = {"id": "chatcmpl-echo", "created": int(time.time()), "model": body.get("model", "")}
        if not body.get("stream"):
            data = {**base, "object": "chat.completion", "usage": _usage_json(usage), "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]}
            return httpx.Response(200, json=data)
        chunk = {**base, "object": "chat.completion.chunk"}
        events = [
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": answer},
                                   "finish_reason": None}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**chunk, "choices": [], "usage": _usage_json(usage)},
        ]
        sse = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse.encode())


class EchoRelay:
    """The echo's stream as OpenAI-shape events; its usage chunk passes only when the client asked."""

    def __init__(self, model: str, wants_usage: bool):
        self.done = False
        self._model, self._wants_usage = model, wants_usage
        self._decoder = SSEDecoder()
        self._usage = Usage(exact=False)

    def feed(self, chunk: bytes) -> list[bytes]:
        out = []
        for data in self._decoder.data(chunk):
            if data == b"[DONE]":
                self.done = True
                out.append(b"data: [DONE]\n\n")
                continue
            event = json.loads(data)
            event["model"] = self._model
            if event.get("usage"):
                self._usage = Usage(event["usage"]["prompt_tokens"], event["usage"]["completion_tokens"])
                if not self._wants_usage:
                    continue
            out.append(b"data: " + json.dumps(event).encode() + b"\n\n")
        return out

    def final_usage(self) -> Usage:
        return self._usage


class EchoAdapter:
    """The ``ProviderAdapter`` of the echo protocol (chat only)."""

    def build_request(self, target: Target, key: ProviderKey | None, call: Call) -> UpstreamRequest:
        config = target.provider.config
        prefix = config.prefix if isinstance(config, EchoConfig) else ""
        body = {**call.body, "model": target.model}
        headers = {"content-type": "application/json", "x-echo-prefix": prefix}
        return UpstreamRequest("POST", target.provider.api_root + "/chat/completions", headers,
                               json.dumps(body).encode())

    def parse_response(self, raw: bytes, call: Call) -> Answer:
        data = json.loads(raw)
        usage = data.get("usage") or {}
        data["model"] = call.model
        return Answer(data, Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)))

    def stream_relay(self, call: Call) -> EchoRelay:
        return EchoRelay(call.model, call.wants_usage)

    def error_message(self, body: bytes, secret: str | None) -> str:
        return error_message_from(body, secret)

    def classify(self, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> Verdict:
        return Verdict(classify_status(status), None, {})


# The entry point ``echo`` in group ``gateway.providers`` names this.
ECHO = ProviderType("echo", "echo", EchoAdapter(), "echo://local", (), needs_key=False,
                    config=EchoConfig, transport=EchoTransport())
