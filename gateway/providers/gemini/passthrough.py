"""Same-dialect pass-through: a request that came in as Gemini's own (``Call.dialect == "gemini"``) goes
out as it is, and its answer and stream events come back untranslated; only the usage is read (for
accounting) and the end of the stream noticed (see ``pipeline/core.py``)."""

from __future__ import annotations

import orjson

from ...core.call import Call
from ...core.sse import SSEDecoder, data_object
from ...core.tokens import estimate_tokens
from ...core.usage import Answer, Usage
from .response import block_reason, finish_reason, usage_of

DIALECT = "gemini"


def parse_native(raw: bytes, call: Call, counted: bool = True) -> Answer:
    """The upstream's own answer; its usage (``counted``: a generation, estimated when it reported
    none; else a call that uses no tokens, such as ``countTokens``)."""
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the upstream answer is not a JSON object")
    if not counted:
        return Answer(data, Usage(0, 0))
    usage = usage_of(data.get("usageMetadata")) or Usage(0, estimate_tokens(raw.decode("utf-8", "replace")),
                                                         exact=False)
    return Answer(data, usage)


class NativeRelay:
    """Gemini events passed on as they came (one ``data:`` event each), with their usage kept.

    An event is parsed only when it may end the stream (it names a ``finishReason`` or a
    ``blockReason``); the usage is read once, at the end, from the last event that carried one
    (kept as it came: each event's ``usageMetadata`` is the whole so far)."""

    def __init__(self, call: Call):
        self.call = call
        self.done = False
        self._decoder = SSEDecoder()
        self._last_usage: bytes | None = None  # the last event with a usageMetadata, unparsed
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        out = []
        for payload in self._decoder.data(chunk):
            self._size += len(payload)
            if b'"usageMetadata"' in payload:
                self._last_usage = payload
            if not self.done and (b'"finishReason"' in payload or b'"blockReason"' in payload):
                self.done = self._ends(payload)
            out.append(b"data: " + payload + b"\r\n\r\n")
        return out

    @staticmethod
    def _ends(payload: bytes) -> bool:
        data = data_object(payload)
        if data is None:
            return False
        candidates = data.get("candidates")
        finished = isinstance(candidates, list) and any(
            isinstance(c, dict) and finish_reason(c.get("finishReason"), False) for c in candidates)
        return finished or block_reason(data) is not None

    def final_usage(self) -> Usage:
        data = data_object(self._last_usage) if self._last_usage is not None else None
        usage = usage_of(data.get("usageMetadata")) if data is not None else None
        return usage or Usage(0, self._size // 4, exact=False)


