"""What the gateway needs of a connection to one upstream MCP server, whatever carries it.

A link (``http.HttpLink``, ``stdio.StdioLink``) negotiates the revision the server speaks
(``2026-07-28`` if it answers ``server/discover`` with it, else the ``initialize`` handshake),
numbers its own requests, maps progress back to the caller, and cancels the upstream request
when the caller's task is cancelled. Its errors::

    LinkError
     ├── Unreachable     the server cannot be reached, or broke the protocol
     │    └── Refused    it answered with an HTTP error instead of a JSON-RPC message
     └── TooLarge        the answer passed the server's size bound (the rest was not read)

A JSON-RPC error the server answered is raised as ``protocol.RpcError``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .protocol import CLIENT_INFO, HANDSHAKE_VERSIONS, LEGACY, MODERN, RpcError

# (progress, total, message) of the upstream's notifications/progress for one request
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


class LinkError(Exception):
    """The upstream gave no usable answer."""


class Unreachable(LinkError):
    pass


class Refused(Unreachable):
    """It answered with an HTTP error and no JSON-RPC message (a server of another revision, a 401)."""


class TooLarge(LinkError):
    pass


@dataclass(frozen=True, slots=True)
class Reply:
    result: dict[str, Any]
    size: int  # bytes of the upstream's answer
    streamed: bool = False  # it came as an SSE stream (progress on the way)


class Link(Protocol):
    era: str | None  # the revision negotiated; None until the first request

    async def request(self, method: str, params: dict[str, Any], *, name: str | None = None,
                      progress: Progress | None = None, timeout_s: float, limit: int) -> Reply:
        """Send one request, wait for its answer (at most ``limit`` bytes, reads at most
        ``timeout_s`` apart). Cancelling the caller cancels the upstream request."""
        ...

    async def close(self) -> None: ...


def reply_of(message: Any, request_id: int, size: int, streamed: bool = False) -> Reply:
    """The answer to ``request_id`` in an upstream message: its result, or its error raised."""
    if not isinstance(message, dict) or message.get("id") != request_id:
        raise Unreachable("the server answered something other than a JSON-RPC response to the request")
    error = message.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        raise RpcError(code if isinstance(code, int) else -32603, str(error.get("message") or "error"),
                       error.get("data"))
    result = message.get("result")
    if not isinstance(result, dict):
        raise Unreachable("the server's answer has no result object")
    return Reply(result, size, streamed)


async def relay_progress(progress: Progress | None, params: Any) -> None:
    """Pass one upstream ``notifications/progress`` on to the caller."""
    if progress is None or not isinstance(params, dict):
        return
    value, total, message = params.get("progress"), params.get("total"), params.get("message")
    if isinstance(value, (int, float)):
        await progress(float(value), float(total) if isinstance(total, (int, float)) else None,
                       message if isinstance(message, str) else None)


_ID = re.compile(rb'"id"\s*:\s*(\d+)')


def sniff_id(prefix: bytes) -> int | None:
    """The request id near the start of a message too large to parse (to fail that request)."""
    found = _ID.search(prefix[:512])
    return int(found.group(1)) if found else None


# The revision handshake, whatever the transport: ``server/discover`` first (2026-07-28 when the
# server offers it), else ``initialize`` with these params, its answer naming the revision.
INITIALIZE_PARAMS = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO}


def offers_modern(discovered: Reply) -> bool:
    """Whether a ``server/discover`` answer offers the 2026-07-28 revision."""
    return MODERN in (discovered.result.get("supportedVersions") or ())


def initialized_revision(initialized: Reply) -> str:
    """The revision an ``initialize`` answer names; ``Unreachable`` for one the gateway does not speak."""
    version = initialized.result.get("protocolVersion")
    if version not in HANDSHAKE_VERSIONS:
        raise Unreachable(f"it speaks MCP revision {str(version)[:40]!r}, which the gateway does not")
    return str(version)
