"""Gemini SSE streams (``streamGenerateContent?alt=sse``) → OpenAI chunks, event by event.

Each ``data:`` event is a whole ``GenerateContentResponse`` holding the next piece of each candidate.
Gemini sends no ``[DONE]``: the stream is complete once every candidate seen has a ``finishReason``
(or the prompt was blocked); the relay then adds the usage chunk (when the client asked) and ``[DONE]``.
A stream that stops before that is not ``done``, and the pipeline ends it with an error event.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ...core.call import CHAT, Call
from ...core.sse import SSEDecoder
from ...core.tokens import tokens_for_chars
from ...core.usage import Usage
from ..base import scrub
from .errors import error_of
from .response import (
    Reading,
    block_reason,
    candidates_of,
    estimated_prompt,
    finish_reason,
    new_id,
    refusal,
    usage_dict,
    usage_of,
)

DONE = b"data: [DONE]\n\n"
# ``GeminiRelay._fast``'s chunk: its head, then (chat, text completion) around the text as a JSON string
_FAST = {True: (b'[{"index":0,"delta":{"content":', b'},"logprobs":null,"finish_reason":null}]}\n\n'),
         False: (b'[{"index":0,"text":', b',"logprobs":null,"finish_reason":null}]}\n\n')}


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class GeminiRelay:
    """A ``Relay`` from Gemini's stream to OpenAI chat (or text completion) chunks."""

    def __init__(self, call: Call):
        self.model = call.model
        self.wants_usage = call.wants_usage
        self.chat = call.operation == CHAT
        self.request_body = call.body
        self.done = False
        self._decoder = SSEDecoder()
        self._id = ""
        self._head = b""  # a chunk's bytes up to its choices (the same in every chunk of the stream)
        self._created = int(time.time())
        self._meta: dict[str, Any] = {}
        self._started: set[int] = set()  # candidates whose first chunk (with the role) went out
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # tool calls sent so far, per candidate
        self._chars = 0  # characters of text relayed (for a local estimate; the text is not kept)

    def feed(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        for payload in self._decoder.data(chunk):
            if not self.done:
                out.extend(self._event(payload))
        return out

    def _event(self, payload: bytes) -> list[bytes]:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(data, dict):
            return []
        error = error_of(data) if "error" in data else None
        if error is not None:
            message = scrub(str(error.get("message") or "The provider reported an error mid-stream."), None)
            return [sse({"error": {"message": message, "type": "provider_error", "code": "stream_interrupted"}})]
        if not self._id:
            self._id = new_id("chatcmpl-" if self.chat else "cmpl-", data)
            kind = "chat.completion.chunk" if self.chat else "text_completion"
            head = {"id": self._id, "object": kind, "created": self._created, "model": self.model}
            self._head = b"data: " + orjson.dumps(head)[:-1] + b',"choices":'
        meta = data.get("usageMetadata")
        if isinstance(meta, dict):
            self._meta = meta
        if "promptFeedback" not in data:
            fast = self._fast(data)
            if fast is not None:
                return [fast]
        blocked = block_reason(data) if "promptFeedback" in data else None
        choices = [self._blocked_choice(blocked)] if blocked else [
            c for c in (self._choice(r) for r in candidates_of(data)) if c is not None]
        out = [self._head + orjson.dumps(choices) + b"}\n\n"] if choices else []
        if blocked or (self._started and self._finished >= self._started):
            self.done = True
            if self.wants_usage:
                usage = self.final_usage()
                out.append(self._chunk({"choices": [], "usage": usage_dict(self._meta, usage)}))
            out.append(DONE)
        return out

    def _fast(self, data: dict[str, Any]) -> bytes | None:
        """The usual streamed piece, as bytes at once: one candidate (0, already started, not finishing)
        whose one part is ``{"text": ...}``. None for anything else (``_choice`` reads it)."""
        candidates = data.get("candidates")
        if type(candidates) is not list or len(candidates) != 1:
            return None
        candidate = candidates[0]
        if (type(candidate) is not dict or 0 not in self._started or candidate.get("index", 0) != 0
                or candidate.get("finishReason") is not None):
            return None
        content = candidate.get("content")
        parts = content.get("parts") if type(content) is dict else None
        if type(parts) is not list or len(parts) != 1:
            return None
        part = parts[0]
        text = part.get("text") if type(part) is dict and len(part) == 1 else None
        if type(text) is not str or not text:
            return None
        self._chars += len(text)
        before, after = _FAST[self.chat]
        return self._head + before + orjson.dumps(text) + after

    def _chunk(self, fields: dict[str, Any]) -> bytes:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return sse({"id": self._id, "object": kind, "created": self._created, "model": self.model, **fields})

    def _choice(self, reading: Reading) -> dict[str, Any] | None:
        index = reading.index
        self._started.add(index)
        self._chars += len(reading.text) + len(reading.reasoning)
        reason = finish_reason(reading.finish, bool(reading.calls) or bool(self._calls.get(index)))
        if reason is not None:
            self._finished.add(index)
        if not self.chat:
            if not reading.text and reason is None:
                return None
            return {"index": index, "text": reading.text, "logprobs": None, "finish_reason": reason}
        delta: dict[str, Any] = {}
        if index not in self._calls:  # the first chunk of this candidate
            self._calls[index] = 0
            delta["role"] = "assistant"
        if reading.reasoning:
            delta["reasoning_content"] = reading.reasoning
        if reading.text:
            delta["content"] = reading.text
        if reading.calls:
            first = self._calls[index]
            delta["tool_calls"] = [{"index": first + n, **call} for n, call in enumerate(reading.calls)]
            self._calls[index] = first + len(reading.calls)
        if not delta and reason is None:
            return None
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}

    def _blocked_choice(self, reason: str) -> dict[str, Any]:
        if not self.chat:
            return {"index": 0, "text": "", "logprobs": None, "finish_reason": "content_filter"}
        return {"index": 0, "delta": {"role": "assistant", "refusal": refusal(reason)}, "logprobs": None,
                "finish_reason": "content_filter"}

    def final_usage(self) -> Usage:
        usage = usage_of(self._meta) if self._meta else None
        if usage is not None:
            return usage
        return Usage(estimated_prompt(self.request_body), tokens_for_chars(self._chars), exact=False)
