"""Model Context Protocol facts both sides use: revisions, header and ``_meta`` names, JSON-RPC
error codes and the HTTP status each is answered with, and the message shapes.

Two revisions are spoken. ``2026-07-28`` is stateless: every request carries its version and
the client's capabilities in ``params._meta`` and mirrors its method (and tool, prompt or
resource name) in the ``Mcp-Method`` and ``Mcp-Name`` headers. ``2025-11-25`` and earlier open a
session with ``initialize`` and name it in ``Mcp-Session-Id`` afterwards.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

MODERN = "2026-07-28"
LEGACY = "2025-11-25"  # the newest revision with the initialize handshake
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")

META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"

VERSION_HEADER = "mcp-protocol-version"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
SESSION_HEADER = "mcp-session-id"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
UNSUPPORTED_VERSION = -32022
REQUEST_CANCELLED = -32800
_BAD_REQUEST = frozenset({PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, HEADER_MISMATCH, -32021, UNSUPPORTED_VERSION})

CLIENT_INFO = {"name": "llm-gateway", "version": "0.1.0"}
SERVER_INFO = {"name": "llm-gateway", "version": "0.1.0"}

# what the request's name travels as in Mcp-Name, by method
NAMED_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class RpcError(Exception):
    """A JSON-RPC error: answered to the client as ``{"error": {code, message, data?}}``."""

    def __init__(self, code: int, message: str, data: Any = None, status: int | None = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data
        self.status = status if status is not None else http_status(code)

    def body(self, request_id: Any) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return {"jsonrpc": "2.0", "id": request_id, "error": error}


def http_status(code: int) -> int:
    """The HTTP status a JSON-RPC error is answered with (streamable HTTP, 2026-07-28)."""
    if code in _BAD_REQUEST:
        return 400
    return 404 if code == METHOD_NOT_FOUND else 200


def result_body(request_id: Any, result: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def modern_meta(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``_meta`` every 2026-07-28 request carries (the gateway asks for no client capability)."""
    meta: dict[str, Any] = {META_VERSION: MODERN, META_CAPABILITIES: {}, META_CLIENT_INFO: CLIENT_INFO}
    if extra:
        meta.update(extra)
    return meta


def header_value(text: str) -> str:
    """A name as an ``Mcp-Name`` value: plain when it is printable ASCII, else ``=?base64?…?=``."""
    if text.isascii() and text.isprintable() and text == text.strip():
        return text
    return "=?base64?" + base64.b64encode(text.encode()).decode() + "?="


def decode_header_value(value: str) -> str:
    """``header_value`` undone (a value that is not base64-wrapped is returned as it is)."""
    if value.startswith("=?base64?") and value.endswith("?="):
        try:
            return base64.b64decode(value[9:-2], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return value
    return value


def tool_error(text: str) -> dict[str, Any]:
    """A tool result that failed: what the model should read (``isError: true``)."""
    return {"content": [{"type": "text", "text": text}], "isError": True}
