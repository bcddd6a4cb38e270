"""Same-dialect pass-through: a request that came in as Gemini's own (``Call.dialect == "gemini"``) goes
out as it is, and its answer and stream events come back untranslated; only the usage is read (for
accounting) and the end of the stream noticed (see ``pipeline/core.py``)."""

from __future__ import annotations

from typing import Any

import orjson

from ...core.call import Call
from ...core.sse import SSEDecoder
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
    """Gemini events passed on as they came (one ``data:`` event each), with their usage kept."""

    def __init__(self, call: Call):
        self.call = call
        self.done = False
        self._decoder = SSEDecoder()
        self._usage: Usage | None = None
        self._size = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        out = []
        for payload in self._decoder.data(chunk):
            self._size += len(payload)
            self._note(payload)
            out.append(b"data: " + payload + b"\r\n\r\n")
        return out

    def _note(self, payload: bytes) -> None:
        try:
            data: Any = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        self._usage = usage_of(data.get("usageMetadata")) or self._usage
        candidates = data.get("candidates")
        finished = isinstance(candidates, list) and any(
            isinstance(c, dict) and finish_reason(c.get("finishReason"), False) for c in candidates)
        self.done = self.done or finished or block_reason(data) is not None

    def final_usage(self) -> Usage:
        return self._usage or Usage(0, self._size // 4, exact=False)
