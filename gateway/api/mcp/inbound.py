"""One JSON-RPC message POSTed to ``/mcp``: parsed, its revision told, its headers checked.

``MCP-Protocol-Version: 2026-07-28`` makes it a stateless request, whose ``params._meta`` must
carry the version and the client's capabilities, mirrored by ``Mcp-Method`` and ``Mcp-Name``.
No version header, or one of the handshake revisions, makes it a request of a session
(``initialize`` opens one). Checks run in the order the reference SDK runs them; the first
failure is the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ...mcp.protocol import (
    HANDSHAKE_VERSIONS,
    HEADER_MISMATCH,
    INVALID_PARAMS,
    INVALID_REQUEST,
    META_CAPABILITIES,
    META_VERSION,
    MODERN,
    NAMED_PARAM,
    PARSE_ERROR,
    UNSUPPORTED_VERSION,
    RpcError,
    decode_header_value,
)

Header = Callable[[str], str | None]
SUPPORTED = [MODERN, *reversed(HANDSHAKE_VERSIONS)]


@dataclass(frozen=True, slots=True)
class Inbound:
    id: Any  # None for a notification
    method: str
    params: dict[str, Any]
    modern: bool  # 2026-07-28 (stateless); else a session's request
    notification: bool

    def progress_token(self) -> Any:
        meta = self.params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        return token if isinstance(token, (str, int)) and not isinstance(token, bool) else None


def parse(raw: bytes, header: Header) -> Inbound:
    """The message in ``raw``; ``RpcError`` (with its HTTP status) when it is not a valid one."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, "Parse error: the body is not JSON") from None
    if isinstance(message, list):
        raise RpcError(INVALID_REQUEST, "Invalid Request: batches are not supported; send one message per POST")
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not isinstance(message.get("method"), str):
        raise RpcError(INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 request or notification")
    request_id = message.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, (str, int))):
        raise RpcError(INVALID_REQUEST, "Invalid Request: the id must be a string or a number")
    params = message.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: params must be an object", status=400)
    version = header("mcp-protocol-version")
    method = message["method"]
    notification = "id" not in message
    if version == MODERN:
        _check_modern(method, params, header, notification)
        return Inbound(request_id, method, params, True, notification)
    if version is None or version in HANDSHAKE_VERSIONS:
        return Inbound(request_id, method, params, False, notification)
    raise RpcError(UNSUPPORTED_VERSION, "Unsupported protocol version",
                   {"supported": SUPPORTED, "requested": version[:64]})


def _check_modern(method: str, params: dict[str, Any], header: Header, notification: bool) -> None:
    meta = params.get("_meta")
    if not isinstance(meta, dict) or META_VERSION not in meta or META_CAPABILITIES not in meta:
        raise RpcError(INVALID_PARAMS, f"Invalid params: _meta must carry {META_VERSION} and {META_CAPABILITIES}")
    if meta[META_VERSION] != MODERN:
        raise RpcError(HEADER_MISMATCH, "MCP-Protocol-Version header does not match _meta's protocolVersion")
    if notification:
        return
    if header("mcp-method") != method:
        raise RpcError(HEADER_MISMATCH, "Mcp-Method header does not match the request body's method")
    field = NAMED_PARAM.get(method)
    if field is not None:
        named = header("mcp-name")
        if named is None or decode_header_value(named) != params.get(field):
            raise RpcError(HEADER_MISMATCH, f"Mcp-Name header does not match the request body's '{field}' parameter")
