"""OpenAI chat chunks rewritten as a stream of Google ``GenerateContentResponse`` objects.

Text deltas go out as they come; function calls are sent whole (Google streams them whole) in
the last response, with each candidate's ``finishReason`` and the ``usageMetadata``. An error
event the pipeline made (the upstream's stream broke off) becomes ``{"error": {...}}``.
``?alt=sse`` frames each object as an SSE event; without it the stream is one JSON array, as
Google's own API sends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ...core.sse import data_of
from ...core.tokens import estimate_prompt_tokens, tokens_for_chars
from ...core.usage import Usage
from ..anthropic.text_run import TextRun, text_span
from ..chat_usage import chat_usage
from ..dialects import REASONING_FIELDS, STREAM_ERROR_STATUS, ChunkTranslator, as_dict, event_details, pipeline_error
from .errors import error_object
from .render import finish_reason, function_call, usage_metadata

_TEXT_OBJECT = b'{"candidates":[{"content":{"role":"model","parts":[{"text":"%b%b'  # the text, then ``_head``


def error_json(error: dict[str, Any]) -> bytes:
    code = str(error.get("code") or "stream_interrupted")
    details = event_details(error)
    details.pop("code", None)  # the ErrorInfo's reason
    return orjson.dumps({"error": error_object(STREAM_ERROR_STATUS.get(code, 502), str(error.get("message") or ""),
                                               code, details)})


@dataclass
class _Candidate:
    calls: dict[int, dict[str, str]] = field(default_factory=dict)  # tool call index -> id, name, arguments
    finish: str | None = None


class ResponseChunks(ChunkTranslator):
    """Feed it the pipeline's OpenAI-shape SSE items; it returns Google's responses as JSON (bytes)."""

    def __init__(self, model: str, chat_body: dict[str, Any] | None = None):
        self.model = model
        self.chat_body = chat_body or {}  # what was sent, for an estimate when the provider reports no usage
        self.chars = 0  # characters of text and arguments passed on
        self._head = b""  # what follows a text delta's text in a response (known once the stream began)
        self.run = TextRun()  # the bytes this stream's text chunks share
        self.response_id = ""
        self.candidates: dict[int, _Candidate] = {}
        self.usage: dict[str, Any] = {}
        self.ended = False

    def feed(self, item: bytes) -> list[bytes]:
        """As ``ChunkTranslator.feed``; once the stream has begun, text chunks of the first choice are
        written as responses from their bytes (``api/anthropic/text_run.py``: the usual case)."""
        if b"\r" in item:
            return super().feed(item)
        out: list[bytes] = []
        pos, size = 0, len(item)
        while pos < size:
            if self._head and self.run.tail:
                pieces, pos, chars = self.run.rewrite(item, pos, b"", b"")
                if pieces:
                    self.chars += chars
                    out += [_TEXT_OBJECT % (text, self._head) for text in pieces[1::3] if text]
                    continue
            cut = item.find(b"\n\n", pos)
            cut = size if cut < 0 else cut + 2
            event, pos = item[pos:cut], cut
            span = text_span(event) if self._head else None
            if span is None:
                out += super().feed(event)
            elif span[1] > span[0]:
                self.run.learn(event, *span)
                self.chars += span[1] - span[0]
                out.append(_TEXT_OBJECT % (event[span[0]:span[1]], self._head))
        return out

    def _error(self, error: dict[str, Any]) -> bytes:
        return error_json(error)

    def finish(self) -> list[bytes]:
        if self.ended:
            return []
        self.ended = True
        candidates = [self._last(i, c) for i, c in sorted(self.candidates.items())] or [
            {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}]
        return [self._response(candidates, usage_metadata(self._usage()))]

    def _usage(self) -> Usage:
        """The provider's usage, else the gateway's estimate."""
        return chat_usage(self.usage) or Usage(estimate_prompt_tokens(self.chat_body.get("messages")),
                                               tokens_for_chars(self.chars), exact=False)

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        if not self.response_id:
            self.response_id = str(chunk.get("id") or "")
            self._head = (b'"}]},"index":0}],"modelVersion":' + orjson.dumps(self.model) + b',"responseId":'
                          + orjson.dumps(self.response_id) + b"}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        texts = []
        for position, choice in enumerate(chunk.get("choices") or ()):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", position)
            state = self.candidates.setdefault(index if isinstance(index, int) else position, _Candidate())
            delta = as_dict(choice.get("delta"))
            for name in REASONING_FIELDS:
                if isinstance(delta.get(name), str) and delta[name]:
                    self.chars += len(delta[name])
                    texts.append({"content": {"role": "model", "parts": [{"text": delta[name], "thought": True}]},
                                  "index": index})
            if isinstance(delta.get("content"), str) and delta["content"]:
                self.chars += len(delta["content"])
                texts.append({"content": {"role": "model", "parts": [{"text": delta["content"]}]}, "index": index})
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    self.chars += len(str(as_dict(call.get("function")).get("arguments") or ""))
                    _add_call(state, call)
            if choice.get("finish_reason"):
                state.finish = finish_reason(choice["finish_reason"])
        return [self._response(texts, None)] if texts else []

    def _last(self, index: int, state: _Candidate) -> dict[str, Any]:
        parts = [p for p in (function_call({"id": c["id"], "function": c}) for _, c in sorted(state.calls.items()))
                 if p is not None]
        return {"content": {"role": "model", "parts": parts or [{"text": ""}]},
                "finishReason": state.finish or "STOP", "index": index}

    def _response(self, candidates: list[dict[str, Any]], usage: dict[str, int] | None) -> bytes:
        response: dict[str, Any] = {"candidates": candidates}
        if usage is not None:
            response["usageMetadata"] = usage
        response["modelVersion"] = self.model
        response["responseId"] = self.response_id
        return orjson.dumps(response)


def _add_call(state: _Candidate, call: dict[str, Any]) -> None:
    index = call.get("index", len(state.calls))
    function = as_dict(call.get("function"))
    entry = state.calls.setdefault(index if isinstance(index, int) else len(state.calls),
                                   {"id": "", "name": "", "arguments": ""})
    entry["id"] = entry["id"] or str(call.get("id") or "")
    entry["name"] = entry["name"] or str(function.get("name") or "")
    entry["arguments"] += str(function.get("arguments") or "")


class NativeChunks:
    """Gemini's own responses from a Gemini provider, passed through as they came; only an error
    event the pipeline made itself is rewritten into Google's shape. ``sse``: the client reads SSE,
    as the relay writes it, so an item without such an error goes out whole, as it is."""

    def __init__(self, sse: bool = False):
        self.sse = sse

    def feed(self, item: bytes) -> list[bytes]:
        if self.sse and b'{"error"' not in item:
            return [item]
        out = []
        for data in data_of(item):
            error = pipeline_error(data)
            out.append(error_json(error) if error is not None else data)
        return out if not self.sse else [b"data: " + obj + b"\r\n\r\n" for obj in out]

    def finish(self) -> list[bytes]:
        return []


class Framing:
    """Google's stream framing: SSE events (``?alt=sse``) or the items of one JSON array."""

    def __init__(self, sse: bool):
        self.sse = sse
        self.first = True

    @property
    def content_type(self) -> str:
        return "text/event-stream" if self.sse else "application/json"

    def frame(self, objects: list[bytes]) -> list[bytes]:
        """``objects`` framed, as one piece (they go out in one send)."""
        if not objects:
            return []
        if self.sse:
            return [b"data: " + b"\r\n\r\ndata: ".join(objects) + b"\r\n\r\n"]
        opening, self.first = b"[" if self.first else b",\r\n", False
        return [opening + b",\r\n".join(objects)]

    def close(self) -> list[bytes]:
        if self.sse:
            return []
        return [b"[]" if self.first else b"]"]
