"""OpenAI chat chunks rewritten as Anthropic's stream events, one stream at a time.

``message_start`` (its usage: the gateway's count of the input, as an OpenAI upstream reports
usage only at the end); for each reasoning run (when the client asked to see thinking), text run
or tool call a ``content_block_start``, its ``content_block_delta`` events (``thinking_delta``,
``text_delta``, ``input_json_delta``) and ``content_block_stop``; at the end ``message_delta``
(the stop reason, and the upstream's usage correcting the count: input, cache reads, output)
and ``message_stop``. An error event the pipeline made (the upstream's stream broke off)
becomes Anthropic's ``error`` event.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...core.sse import data_of
from ...core.tokens import tokens_for_chars
from ..dialects import STREAM_ERROR_STATUS, ChunkTranslator, as_dict, event_details, pipeline_error, reasoning_of
from .errors import error_object
from .render import anthropic_usage, cached_tokens, message_id, stop_reason
from .text_run import TextRun, text_span

# a text_delta event's bytes around its text (the text copied from the chunk still JSON-escaped)
_TEXT_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,' \
              b'"delta":{"type":"text_delta","text":"'
_TEXT_END = b'"}}\n\n'


def event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(error: dict[str, Any]) -> bytes:
    status = STREAM_ERROR_STATUS.get(str(error.get("code")), 500)
    return event("error", {"type": "error", "error": error_object(status, str(error.get("message") or ""),
                                                                  event_details(error))})


class MessageEvents(ChunkTranslator):
    """Feed it the pipeline's OpenAI-shape SSE items; it returns Anthropic's events.

    ``input_tokens``: the gateway's count of the input, what ``message_start`` says until the
    upstream's usage corrects it; ``thinking``: the client asked to see thinking."""

    def __init__(self, model: str, input_tokens: int = 0, thinking: bool = False):
        self.model = model
        self.thinking = thinking
        self.started = False
        self.ended = False
        self.index = -1  # the open content block (-1: none)
        self.text_head = b""  # a text_delta event's bytes up to its text, for the open block
        self.run = TextRun()  # the bytes this stream's text chunks share
        self.open_kind: str | None = None  # "thinking" | "text" | "tool_use"
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool call index -> content block index
        self.stop_reason = "end_turn"
        self.estimate = input_tokens
        self.usage: dict[str, Any] | None = None  # the upstream's (OpenAI-shape) usage
        self.chars = 0  # characters relayed, for an output count when the upstream reports no usage

    def _error(self, error: dict[str, Any]) -> bytes:
        return error_event(error)

    def feed(self, item: bytes) -> list[bytes]:
        """The events for ``item``: while a text block is open, text chunks are rewritten from their
        bytes (``text_run.py``: the usual case); any other chunk is parsed (``ChunkTranslator.feed``)."""
        if b"\r" in item:
            return super().feed(item)
        out: list[bytes] = []
        pos, size = 0, len(item)
        while pos < size:
            if self.open_kind == "text":
                events, pos, chars = self.run.rewrite(item, pos, self.text_head, _TEXT_END)
                if events:
                    self.chars += chars
                    out.append(b"".join(events))
                    continue
            cut = item.find(b"\n\n", pos)
            cut = size if cut < 0 else cut + 2
            out += self._one(item[pos:cut])
            pos = cut
        return out

    def _one(self, raw: bytes) -> list[bytes]:
        """One chunk (an event with its blank line)."""
        span = text_span(raw) if self.open_kind == "text" else None
        if span is None:
            return super().feed(raw)
        start, end = span
        self.run.learn(raw, start, end)
        self.chars += end - start
        return [self.text_head + raw[start:end] + _TEXT_END] if end > start else []

    def end(self) -> list[bytes]:
        """Nothing more comes (the pipeline ends a stream that broke off with an error event)."""
        return []

    def finish(self) -> list[bytes]:
        if self.ended:
            return []
        self.ended = True
        out = self._start({}) + self._close_block()
        if self.usage is not None:
            reported = self.usage
            usage = anthropic_usage(_count(reported.get("prompt_tokens")), _count(reported.get("completion_tokens")),
                                    cached_tokens(reported))
        else:
            usage = anthropic_usage(self.estimate, tokens_for_chars(self.chars), 0)
        out.append(event("message_delta", {"type": "message_delta", "usage": usage,
                                           "delta": {"stop_reason": self.stop_reason, "stop_sequence": None}}))
        out.append(event("message_stop", {"type": "message_stop"}))
        return out

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        if choice is None:
            return out
        delta = choice.get("delta")
        if isinstance(delta, dict):
            out += self._delta(delta)
        if choice.get("finish_reason"):
            self.stop_reason = stop_reason(choice["finish_reason"])
        return out

    def _delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        reasoning = reasoning_of(delta) if self.thinking else ""
        if reasoning:
            out += self._piece("thinking", "thinking_delta", reasoning)
        text = delta.get("content")
        if isinstance(text, str) and text:
            out += self._piece("text", "text_delta", text)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                out += self._tool(call)
        return out

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")), "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": anthropic_usage(self.estimate, 0, 0)}
        return [event("message_start", {"type": "message_start", "message": message})]

    def _piece(self, kind: str, delta_type: str, text: str) -> list[bytes]:
        """A piece of thinking or text: in the open block of its kind, else in a new one."""
        self.chars += len(text)
        out: list[bytes] = []
        if self.open_kind != kind:
            block = {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" else \
                {"type": "text", "text": ""}
            out = self._open(block)
        field = "thinking" if kind == "thinking" else "text"
        out.append(event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                 "delta": {"type": delta_type, field: text}}))
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
        if isinstance(arguments, str) and arguments:
            # a piece for a call whose block a later call closed (calls interleaved) still goes to its block
            self.chars += len(arguments)
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": self.tool_blocks[position],
                                                     "delta": {"type": "input_json_delta", "partial_json": arguments}}))
        return out

    def _open(self, block: dict[str, Any]) -> list[bytes]:
        out = self._close_block()
        self.index += 1
        self.text_head = _TEXT_DELTA % self.index
        self.open_kind = block["type"]
        out.append(event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                 "content_block": block}))
        return out

    def _close_block(self) -> list[bytes]:
        if self.open_kind is None:
            return []
        self.open_kind = None
        return [event("content_block_stop", {"type": "content_block_stop", "index": self.index})]


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


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
