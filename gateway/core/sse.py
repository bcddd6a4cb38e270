"""Server-sent events read incrementally: the one decoder every stream the gateway reads goes through.

``SSEDecoder.feed`` takes bytes as they arrive and returns the events completed so far (an event
ends at a blank line; ``\\r\\n`` counts as ``\\n``); ``data`` returns only their data, for readers that
need nothing else. What is held between reads is one unfinished event, bounded by
``MAX_EVENT_BYTES`` (``EventTooLarge`` past it), so memory does not grow with a stream.
Comments (``:`` lines) and ``id:``/``retry:`` fields are skipped; an event with neither ``event:``
nor ``data:`` is not returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

MAX_EVENT_BYTES = 32 << 20  # one event longer than this is given up, not buffered on


class EventTooLarge(ValueError):
    """An event passed ``MAX_EVENT_BYTES`` before it ended (the stream is given up)."""


@dataclass(frozen=True, slots=True)
class Event:
    name: bytes  # the ``event:`` field, b"" when there is none
    data: bytes  # the ``data:`` lines, joined by ``\n``
    raw: bytes  # the event's own bytes, without the blank line that ends it


def one_data_event(chunk: bytes) -> bool:
    """Whether ``chunk`` is exactly one whole event of one ``data: `` line: the common case of a
    token stream, which a relay may handle without decoding (``SSEDecoder.idle`` must hold too)."""
    return chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") and chunk.find(b"\n") == len(chunk) - 2


def _field(line: bytes, name: bytes) -> bytes:
    """A field's value: what follows ``name:``, leading whitespace dropped (the one space the
    format puts there, and any more a lenient server writes)."""
    return line[len(name) + 1:].lstrip()


class SSEDecoder:
    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    @property
    def idle(self) -> bool:
        """No unfinished event is held: the next read starts a new event."""
        return not self._rest

    def _events(self, chunk: bytes) -> list[bytes]:
        buffer = self._rest + chunk if self._rest else chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events = buffer.split(b"\n\n")
        rest = events.pop()
        if len(rest) > MAX_EVENT_BYTES:
            raise EventTooLarge(f"an event passed {MAX_EVENT_BYTES >> 20} MB before it ended")
        self._rest = rest
        return events

    def data(self, chunk: bytes) -> list[bytes]:
        """The data of each event ``chunk`` completes (events without data are skipped)."""
        out = []
        for event in self._events(chunk):
            if event.startswith(b"data:") and b"\n" not in event:
                out.append(_field(event, b"data"))
                continue
            lines = [_field(line, b"data") for line in event.split(b"\n") if line.startswith(b"data:")]
            if lines:
                out.append(b"\n".join(lines))
        return out

    def feed(self, chunk: bytes) -> list[Event]:
        """The events ``chunk`` completes, with their names."""
        out = []
        for event in self._events(chunk):
            name, lines = b"", []
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    lines.append(_field(line, b"data"))
                elif line.startswith(b"event:"):
                    name = _field(line, b"event").strip()
            if lines or name:
                out.append(Event(name, b"\n".join(lines), event))
        return out


def data_of(item: bytes) -> list[bytes]:
    """The data of each whole event in ``item`` (events the gateway itself wrote, already complete)."""
    return SSEDecoder().data(item + b"\n\n" if not item.endswith(b"\n\n") else item)


def data_object(data: bytes) -> dict[str, Any] | None:
    """An event's data as a JSON object; None when it is not one (a relay passes it on untouched)."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
