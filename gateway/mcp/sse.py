"""Server-sent events as MCP's streamable HTTP uses them: one JSON-RPC message per event."""

from __future__ import annotations

from typing import Any

import orjson

SSE_HEADERS = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}


def frame(message: dict[str, Any]) -> bytes:
    """One message as an event."""
    return b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"


class SseParser:
    """Feed bytes, get the ``data`` of each complete event (its ``data:`` lines joined)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        buffer = (self._buffer + chunk).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *events, self._buffer = buffer.split(b"\n\n")
        found = []
        for event in events:
            lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
            if lines:
                found.append(b"\n".join(lines))
        return found
