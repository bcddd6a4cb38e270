"""Anthropic Messages SSE streams -> OpenAI chat completion chunks (and the native pass-through).

Anthropic's events: ``message_start`` (id, input usage), ``content_block_start`` (a text or
``tool_use`` block), ``content_block_delta`` (``text_delta``; ``input_json_delta``: a piece of a
tool call's arguments), ``content_block_stop``, ``message_delta`` (``stop_reason``, output usage),
``message_stop`` (the end), ``ping``, and ``error`` (the stream failed after it began). A stream
that ends without ``message_stop`` leaves ``done`` false: the pipeline tells the client it was cut.
Thinking (``thinking_delta``) streams as ``reasoning_content`` deltas, its signature
(``signature_delta``) and a redacted block as ``reasoning_details`` entries (see ``response.py``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ...core.sse import SSEDecoder
from ...core.tokens import estimate_prompt_tokens, tokens_for_chars
from ...core.usage import Usage
from ..base import scrub
from .response import FORMAT, count, finish_reason, openai_usage, reasoning_detail, usage_of

DONE = b"data: [DONE]\n\n"


def _load(data: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class _UsageCounter:
    """The usage Anthropic reports across ``message_start`` and ``message_delta`` (cumulative counts)."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}

    def note(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.raw.update({k: v for k, v in usage.items() if v is not None})

    def usage(self) -> Usage | None:
        return usage_of(self.raw) if self.raw else None


class AnthropicStreamRelay:
    """Anthropic SSE -> OpenAI chunks (a ``Relay``); see the module docstring."""

    def __init__(self, requested_model: str, wants_usage: bool, request_body: dict[str, Any], json_answer: bool):
        self.requested_model = requested_model
        self.wants_usage = wants_usage
        self.request_body = request_body
        self.json_answer = json_answer  # a forced JSON tool's input is streamed as content
        self.done = False
        self._decoder = SSEDecoder()
        self._usage = _UsageCounter()
        self._id = ""
        self._created = int(time.time())
        self._tools: dict[int, int] = {}  # content block index -> OpenAI tool call index
        self._thinking: dict[int, int] = {}  # content block index -> reasoning_details index
        self._chars = 0  # characters of content relayed (for a local estimate; the text is not kept)

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        for sse in self._decoder.feed(chunk):
            event = _load(sse.data)
            out.extend(self._event(str(event.get("type") or sse.name.decode("utf-8", "replace")), event))
        return out

    def _event(self, kind: str, event: dict[str, Any]) -> list[bytes]:
        if kind == "message_start":
            message = _obj(event, "message")
            self._id = str(message.get("id") or "")
            self._usage.note(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            self._usage.note(event.get("usage"))
            delta = _obj(event, "delta")
            reason = finish_reason(delta.get("stop_reason"), self.json_answer)
            return [self._chunk({}, reason)] if reason is not None else []
        if kind == "message_stop":
            return self._end()
        if kind == "error":
            return [_error_event(event)]
        return []  # ping, content_block_stop, and events this version does not know

    def _block_start(self, event: dict[str, Any]) -> list[bytes]:
        block = _obj(event, "content_block")
        if block.get("type") == "text" and block.get("text"):
            return self._content(str(block["text"]))
        if block.get("type") in ("thinking", "redacted_thinking"):
            return self._reasoning_start(_index(event), block)
        if block.get("type") != "tool_use" or self.json_answer:
            return []
        index = self._tools[_index(event)] = len(self._tools)
        call = {"index": index, "id": str(block.get("id") or ""), "type": "function",
                "function": {"name": str(block.get("name") or ""), "arguments": ""}}
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, event: dict[str, Any]) -> list[bytes]:
        delta = _obj(event, "delta")
        kind = delta.get("type")
        if kind == "text_delta":
            return self._content(str(delta.get("text") or ""))
        if kind in ("thinking_delta", "signature_delta"):
            return self._reasoning(_index(event), delta)
        if kind != "input_json_delta" or not delta.get("partial_json"):
            return []  # citations; empty argument pieces
        piece = str(delta["partial_json"])
        if self.json_answer:
            return self._content(piece)
        index = self._tools.get(_index(event))
        if index is None:
            return []
        return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})]

    def _reasoning_start(self, block_index: int, block: dict[str, Any]) -> list[bytes]:
        index = self._thinking[block_index] = len(self._thinking)
        if block.get("type") == "redacted_thinking":
            return [self._chunk({"reasoning_details": [reasoning_detail(block, index)]})]
        text = block.get("thinking")
        return [self._chunk({"reasoning_content": text})] if isinstance(text, str) and text else []

    def _reasoning(self, block_index: int, delta: dict[str, Any]) -> list[bytes]:
        """A piece of thinking, or its signature (once the block is done)."""
        index = self._thinking.get(block_index)
        if index is None:
            return []
        if delta.get("type") == "thinking_delta":
            text = str(delta.get("thinking") or "")
            self._chars += len(text)
            return [self._chunk({"reasoning_content": text})] if text else []
        detail = {"type": "reasoning.text", "signature": str(delta.get("signature") or ""), "format": FORMAT,
                  "index": index}
        return [self._chunk({"reasoning_details": [detail]})]

    def _content(self, text: str) -> list[bytes]:
        if not text:
            return []
        self._chars += len(text)
        return [self._chunk({"content": text})]

    def _end(self) -> list[bytes]:
        self.done = True
        out = []
        usage = self._usage.usage()
        if self.wants_usage and usage is not None:
            cached = count(self._usage.raw.get("cache_read_input_tokens"))
            out.append(_sse(self._base() | {"choices": [], "usage": openai_usage(usage, cached)}))
        out.append(DONE)
        return out

    def _base(self) -> dict[str, Any]:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                "model": self.requested_model}

    def _chunk(self, delta: dict[str, Any], reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        return _sse(self._base() | {"choices": [choice]})

    def final_usage(self) -> Usage:
        usage = self._usage.usage()
        if usage is not None:
            return usage
        return Usage(estimate_prompt_tokens(self.request_body.get("messages")),
                     tokens_for_chars(self._chars), exact=False)


class NativeStreamRelay:
    """Same-dialect pass-through: Anthropic's events unchanged, their usage read, ``done`` at message_stop."""

    def __init__(self, request_body: dict[str, Any]):
        self.request_body = request_body
        self.done = False
        self._decoder = SSEDecoder()
        self._usage = _UsageCounter()

    def feed(self, chunk: bytes) -> list[bytes]:
        out = []
        for sse in self._decoder.feed(chunk):
            name, raw = sse.name, sse.raw
            if name in (b"message_start", b"message_delta"):
                event = _load(sse.data)
                message = event.get("message")
                self._usage.note(message.get("usage") if isinstance(message, dict) else event.get("usage"))
            elif name == b"message_stop":
                self.done = True
            out.append(raw + b"\n\n")
        return out

    def final_usage(self) -> Usage:
        usage = self._usage.usage()
        if usage is not None:
            return usage
        return Usage(estimate_prompt_tokens(self.request_body.get("messages")), 0, exact=False)


def _obj(event: dict[str, Any], name: str) -> dict[str, Any]:
    """``event[name]`` if it is an object, else an empty one."""
    value = event.get(name)
    return value if isinstance(value, dict) else {}


def _index(event: dict[str, Any]) -> int:
    index = event.get("index")
    return index if isinstance(index, int) else -1


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _error_event(event: dict[str, Any]) -> bytes:
    """Anthropic's ``error`` event as the OpenAI-shape error event a client SDK raises on."""
    error = _obj(event, "error")
    kind = str(error.get("type") or "api_error")
    message = scrub(str(error.get("message") or kind), None)
    body = {"error": {"message": f"The provider's stream failed: {message}", "type": "provider_error",
                      "code": kind}}
    return _sse(body)
