"""Server-sent events as MCP's streamable HTTP uses them: one JSON-RPC message per event."""

from __future__ import annotations

from typing import Any

import orjson

SSE_HEADERS = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}


def frame(message: dict[str, Any]) -> bytes:
    """One message as an event."""
    return b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"
