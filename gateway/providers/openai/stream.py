"""OpenAI-shape SSE streams relayed event by event.

Most events are content deltas that need one change: ``model`` becomes the model the client
asked for. Those are rewritten as bytes (``_fast``: two regular expressions, no JSON parse and
dump per event); an event the byte scan is not sure about (``model`` not a plain string at the
top level, a ``usage`` other than ``null``, anything odd) takes the JSON path (``_parsed``),
which gives the same answer. The usage chunk always takes the JSON path: that is where the
exact usage is read.

A stream a dialect's translator reads (``keeps_model`` false: the translator writes its own model)
needs no rewrite at all: a read's leading run of whole one-line ``data: {...}`` events that carry
no usage is passed on as it came, its content read by one ``findall`` (``_plain_prefix``); the
rest of the read (the usage chunk, ``[DONE]``) takes the path above.

For a local estimate when no usage comes, the deltas' content is kept (still escaped, one
``findall`` per event) only until about ``FOLD_BYTES`` of the stream have passed, then counted
in characters and dropped: what is held does not grow with the answer.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from ...core.sse import SSEDecoder, one_data_event
from ...core.tokens import estimate_prompt_tokens, tokens_for_chars
from ...core.usage import Usage
from .response import usage_from

DONE = b"data: [DONE]\n\n"
_CONTENT = re.compile(rb'"content"[ \t]*:[ \t]*"([^"\\]*(?:\\.[^"\\]*)*)"')  # a string value, still escaped
_NO_USAGE = re.compile(rb'"usage"[ \t]*:[ \t]*null')
_USAGE = b'"usage"'
_LIVE_USAGE = re.compile(rb'"usage"[ \t]*+:[ \t]*+(?!null)')  # a usage that is not null (or may not be)
FOLD_BYTES = 64 << 10  # stream bytes read before the content kept for the estimate is counted and dropped


def _unescape(part: bytes) -> str:
    """A JSON string's contents as text (a broken escape still counts, as its raw characters)."""
    try:
        text = orjson.loads(b'"' + part + b'"')
    except orjson.JSONDecodeError:
        return part.decode("utf-8", "replace")
    return text if isinstance(text, str) else ""


def _chars(parts: list[bytes]) -> int:
    """The characters of JSON string contents ``parts`` (one decode for all of them; each on its
    own when one holds a broken escape, which counts as its raw characters)."""
    try:
        text = orjson.loads(b'"' + b"".join(parts) + b'"')
    except orjson.JSONDecodeError:
        return sum(len(_unescape(part)) for part in parts)
    return len(text) if isinstance(text, str) else 0


def _plain_prefix(chunk: bytes) -> int:
    """How many bytes at the start of ``chunk`` are whole one-line ``data: {...}`` events before any
    usage that is not null and before ``[DONE]`` (0: none)."""
    end = chunk.rfind(b"\n\n") + 2
    done = chunk.find(b"data: [DONE]", 0, end)
    if done >= 0:
        end = done
    usage = _LIVE_USAGE.search(chunk, 0, end)
    if usage is not None:
        end = chunk.rfind(b"\n\n", 0, usage.start()) + 2
    if end < 2 or not chunk.startswith(b"data: {") or chunk.find(b"\r", 0, end) >= 0:
        return 0
    events = chunk.count(b"\n\n", 0, end)  # each ends in the one blank line, its data on one line
    if chunk.count(b"\n", 0, end) != 2 * events or chunk.count(b"\n\ndata: {", 0, end) != events - 1:
        return 0
    return end


class StreamRelay:
    """Turns upstream SSE bytes into client SSE bytes, event by event (a ``Relay``).

    Feed it raw chunks; it returns the complete events. It rewrites ``model``, keeps the usage,
    drops the usage-only chunk when the client did not ask for it, and notices ``[DONE]``.
    """

    def __init__(self, requested_model: str, client_wants_usage: bool, request_body: dict[str, Any],
                 keeps_model: bool = True):
        self.requested_model = requested_model
        self.keeps_model = keeps_model  # false: a translator reads the stream, the model may stay as it came
        self._model_raw = orjson.dumps(requested_model)[1:-1]  # as written inside a JSON string
        self.client_wants_usage = client_wants_usage
        self.request_body = request_body
        self.usage: Usage | None = None
        self.done = False
        self._decoder = SSEDecoder()
        self._text: list[bytes] = []  # the deltas' content, still JSON-escaped, since the last fold
        self._chars = 0  # characters of content folded so far
        self._unfolded = 0  # stream bytes read since the last fold

    def feed(self, chunk: bytes) -> list[bytes]:
        self._unfolded += len(chunk)
        if self._unfolded > FOLD_BYTES:
            self._fold()
        head: list[bytes] = []
        if self._decoder.idle and chunk[6:7] == b"{":
            if one_data_event(chunk):  # the common case
                fast = self._fast(chunk, 6)
                if fast is not None:
                    return [fast]
            elif not self.keeps_model:
                cut = _plain_prefix(chunk)
                if cut:
                    self._text += _CONTENT.findall(chunk, 6, cut)
                    if cut == len(chunk):
                        return [chunk]
                    head, chunk = [chunk[:cut]], chunk[cut:]
        out = head
        for data in self._decoder.data(chunk):
            translated = self._event(data)
            if translated is not None:
                out.append(translated)
        return out

    def _event(self, data: bytes) -> bytes | None:
        if data == b"[DONE]":
            self.done = True
            return DONE
        if data[:1] == b"{" and b"\n" not in data:  # an event of several data lines is parsed: one line out
            fast = self._fast(b"data: " + data + b"\n\n", 6)
            if fast is not None:
                return fast
        return self._parsed(data)

    def _fast(self, event: bytes, at: int) -> bytes | None:
        """``event`` (its JSON object from ``at``) with ``model`` rewritten as bytes (unless the model
        stays as it came); None when only the JSON path is sure what to do."""
        if _USAGE in event:  # only a lone ``"usage": null`` (OpenAI's on every chunk) stays here
            found = _NO_USAGE.search(event, at)
            if found is None or event.count(_USAGE) != 1:
                return None
        key = event.find(b'"model":"', at) if self.keeps_model else -1
        if key >= 0:
            start = key + 9
            end = event.find(b'"', start)
            # the top level's key (no brace but the first, no array before it; not inside a string), a plain string
            if (event.find(b"{", at + 1, key) >= 0 or event.find(b"[", at, key) >= 0 or event[key - 1] == 0x5C
                    or end < 0 or event.find(b"\\", start, end) >= 0):
                return None
            if event[start:end] != self._model_raw:
                event = event[:start] + self._model_raw + event[end:]
        elif self.keeps_model and b'"model"' in event:
            return None  # written some other way
        self._text += _CONTENT.findall(event, at)
        return event

    def _parsed(self, data: bytes) -> bytes | None:
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
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                delta = choice.get("delta")
                if isinstance(delta, dict) and isinstance(delta.get("content"), str) and delta["content"]:
                    self._text.append(orjson.dumps(delta["content"])[1:-1])
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        self._fold()
        return Usage(estimate_prompt_tokens(self.request_body.get("messages")), tokens_for_chars(self._chars),
                     exact=False)

    def _fold(self) -> None:
        """The content kept so far counted in characters, and dropped."""
        if self._text:
            self._chars += _chars(self._text)
            self._text.clear()
        self._unfolded = 0
