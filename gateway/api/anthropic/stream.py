"""OpenAI chat chunks rewritten as Anthropic's stream events, one stream at a time.

``message_start``; for each text run or tool call a ``content_block_start``, its
``content_block_delta`` events (``text_delta``, ``input_json_delta``) and ``content_block_stop``;
at the end ``message_delta`` (stop reason, usage) and ``message_stop``. An error event the
pipeline made (the upstream's stream broke off) becomes Anthropic's ``error`` event.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...core.sse import data_of
from ..dialects import STREAM_ERROR_STATUS, ChunkTranslator, as_dict, event_details, pipeline_error
from .errors import error_object
from .render import message_id, stop_reason


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(error: dict[str, Any]) -> bytes:
    status = STREAM_ERROR_STATUS.get(str(error.get("code")), 500)
    return event("error", {"type": "error", "error": error_object(status, str(error.get("message") or ""),
                                                                  event_details(error))})


class MessageEvents(ChunkTranslator):
    """Feed it the pipeline's OpenAI-shape SSE items; it returns Anthropic's events."""

    def __init__(self, model: str):
        self.model = model
        self.started = False
        self.ended = False
        self.index = -1  # the open content block (-1: none)
        self.open_kind: str | None = None  # "text" | "tool_use"
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> content block index
        self.stop_reason = "end_turn"
        self.input_tokens = 0
        self.output_tokens = 0

    def _error(self, error: dict[str, Any]) -> bytes:
        return error_event(error)

    def end(self) -> list[bytes]:
        """Nothing more comes (the pipeline ends a stream that broke off with an error event)."""
        return []

    def finish(self) -> list[bytes]:
        if self.ended:
            return []
        self.ended = True
        out = self._start({}) + self._close_block()
        usage = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        out.append(event("message_delta", {"type": "message_delta", "usage": usage,
                                           "delta": {"stop_reason": self.stop_reason, "stop_sequence": None}}))
        out.append(event("message_stop", {"type": "message_stop"}))
        return out

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.input_tokens = int(usage.get("prompt_tokens") or 0)
            self.output_tokens = int(usage.get("completion_tokens") or 0)
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        if choice is None:
            return out
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text = delta.get("content")
            if isinstance(text, str) and text:
                out += self._text(text)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out += self._tool(call)
        if choice.get("finish_reason"):
            self.stop_reason = stop_reason(choice["finish_reason"])
        return out

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [event("message_start", {"type": "message_start", "message": message})]

    def _text(self, text: str) -> list[bytes]:
        out = [] if self.open_kind == "text" else self._open({"type": "text", "text": ""})
        out.append(event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                 "delta": {"type": "text_delta", "text": text}}))
        return out

    def _tool(self, call: dict[str, Any]) -> list[bytes]:
        position = call.get("index", 0)
        position = position if isinstance(position, int) else 0
        function = as_dict(call.get("function"))
        out: list[bytes] = []
        if position not in self.tool_blocks:
            out = self._open({"type": "tool_use", "id": str(call.get("id") or f"toolu_{position}"),
                              "name": str(function.get("name") or ""), "input": {}})
            self.tool_blocks[position] = self.index
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments and self.tool_blocks[position] == self.index:
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                     "delta": {"type": "input_json_delta", "partial_json": arguments}}))
        return out

    def _open(self, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self.index += 1
        self.open_kind = block["type"]
        out.append(event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                 "content_block": block}))
        return out

    def _close_block(self) -> list[bytes]:
        if self.open_kind is None:
            return []
        self.open_kind = None
        return [event("content_block_stop", {"type": "content_block_stop", "index": self.index})]


class NativeEvents:
    """Anthropic's own events from an Anthropic provider, passed through as they came; only an
    error event the pipeline made itself is rewritten into Anthropic's shape."""

    def feed(self, item: bytes) -> list[bytes]:
        if b'data: {"error"' not in item:
            return [item]
        out = []
        for data in data_of(item):
            error = pipeline_error(data)
            out.append(error_event(error) if error is not None else b"data: " + data + b"\n\n")
        return out

    def end(self) -> list[bytes]:
        return []
