"""The access record a sink receives: what the usage ledger keeps of a request, and a little more.

``AccessRecord`` holds the ledger row (``store.values.LedgerRow``: client, provider, model, key
label, status, tokens with their cache and reasoning parts, cost, latency, cache, and for an MCP
tool call its kind and sizes), the endpoint and the model the client asked for, whether the token
counts are the provider's or counted here, and ``extra`` fields other stages add (a guardrail's
action, ...). Never a key: the row names a provider key by its label (``openai#2``) and a client
by its id. ``content`` is set only when ``observability.capture_content`` is true.

The record is made on the request path (one small object), its JSON shape (``fields``) by the
sink's worker, off it.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from ...core.sse import data_of
from ...store.values import LedgerRow

MAX_STREAM_TEXT = 256 * 1024  # characters of a streamed answer's text kept for a record
_ROW_FIELDS = tuple(f.name for f in fields(LedgerRow))
_row_values = operator.attrgetter(*_ROW_FIELDS)  # a row's values in _ROW_FIELDS's order, in one call


@dataclass(slots=True)
class Content:
    """What the client sent and what it got (``capture_content: true`` only).

    ``request``: the request body in OpenAI's shape; ``response``: a whole answer's body; for a
    stream, the text of its deltas as they passed (``add_text``), up to ``MAX_STREAM_TEXT``.
    """

    request: Any = None
    response: Any = None
    _parts: list[str] = field(default_factory=list)
    _size: int = 0
    truncated: bool = False

    def add_text(self, text: str) -> None:
        room = MAX_STREAM_TEXT - self._size
        if room <= 0:
            self.truncated = self.truncated or bool(text)
            return
        if len(text) > room:
            text, self.truncated = text[:room], True
        self._parts.append(text)
        self._size += len(text)

    def add_events(self, events: list[bytes]) -> None:
        """Keep the text of relayed SSE events (whole events, as the relay sends them)."""
        if self._size >= MAX_STREAM_TEXT:
            self.truncated = True
            return
        for event in events:
            for data in data_of(event):
                if data != b"[DONE]":
                    self.add_text(event_text(data))

    def view(self) -> dict[str, Any]:
        response = self.response
        if response is None and self._parts:
            response = {"text": "".join(self._parts)}
        out: dict[str, Any] = {"request": self.request, "response": response}
        if self.truncated:
            out["truncated"] = True
        return out


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One finished request (or MCP tool call) as the sinks get it (see the module docstring)."""

    row: LedgerRow
    endpoint: str = ""
    requested_model: str = ""  # what the client asked for (an alias, provider:model, a bare name)
    usage_exact: bool | None = None  # False: counted locally, the upstream gave no usage; None: no usage
    content: Content | None = None
    extra: Mapping[str, Any] | None = None  # fields other stages add (a guardrail's action, ...)

    def fields(self) -> dict[str, Any]:
        """The record as one JSON object: ``timestamp`` (ISO 8601, UTC), the ledger row's fields, the
        endpoint, the model asked for, ``usage_exact``, ``extra``'s fields, and ``content`` when captured."""
        row = self.row
        out: dict[str, Any] = {"timestamp": iso_time(row.time)}
        out.update(zip(_ROW_FIELDS, _row_values(row), strict=True))
        out["endpoint"] = self.endpoint
        out["requested_model"] = self.requested_model
        out["usage_exact"] = self.usage_exact
        if self.extra:
            out.update(self.extra)
        if self.content is not None:
            out["content"] = self.content.view()
        return out

    def json(self) -> bytes:
        """``fields()`` as JSON bytes (what the file and webhook sinks send)."""
        return orjson.dumps(self.fields(), default=str)


def event_text(data: bytes) -> str:
    """The answer text one event's data carries: an OpenAI chat or completion chunk, a Responses
    text delta, an Anthropic text delta or a Gemini candidate (pass-through streams); else ""."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(event, dict):
        return ""
    parts: list[str] = []
    for choice in event.get("choices") or ():
        if isinstance(choice, dict):
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            parts.append(text if isinstance(text, str) else "")
    delta = event.get("delta")
    if isinstance(delta, str) and event.get("type") == "response.output_text.delta":
        parts.append(delta)
    elif isinstance(delta, dict) and isinstance(delta.get("text"), str):
        parts.append(delta["text"])
    for candidate in event.get("candidates") or ():
        content = candidate.get("content") if isinstance(candidate, dict) else None
        for part in (content.get("parts") or ()) if isinstance(content, dict) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    return "".join(parts)


_second: tuple[int, str] = (-1, "")  # the last second formatted: records come in time order


def iso_time(epoch: float) -> str:
    """``2026-12-04T10:15:02.123Z`` (one strftime a second, not one a record)."""
    global _second
    whole = int(epoch)
    second, text = _second
    if second != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{int((epoch - whole) * 1000):03d}Z"
