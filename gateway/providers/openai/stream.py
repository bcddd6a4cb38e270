"""OpenAI-shape SSE streams relayed event by event."""

from __future__ import annotations

from typing import Any

import orjson

from ..base import Usage, estimate_prompt_tokens, estimate_tokens
from .response import usage_from


class StreamRelay:
    """Turns upstream SSE bytes into client SSE bytes, event by event (a ``Relay``).

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
