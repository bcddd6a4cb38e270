"""Lists gathered from several MCP servers at once (resources, templates, prompts on ``/mcp``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...config.snapshot import Snapshot
from ...core.targets import ClientSpec
from ...mcp.protocol import RpcError
from ...mcp.service import ServerUnavailable, ToolService

log = logging.getLogger("gateway.mcp")
MAX_PAGES = 20


async def _all_pages(service: ToolService, snapshot: Snapshot, client: ClientSpec, server_id: str, method: str,
                     key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: Any = None
    for _ in range(MAX_PAGES):
        result = await service.forward(snapshot, client, server_id, method, {"cursor": cursor} if cursor else {})
        items += [item for item in result.get(key) or () if isinstance(item, dict)]
        cursor = result.get("nextCursor")
        if not cursor:
            break
    return items


async def gather_lists(service: ToolService, snapshot: Snapshot, client: ClientSpec, servers: list[str], method: str,
                       key: str) -> list[tuple[str, dict[str, Any]]]:
    """(server id, item) of ``method``'s ``key`` list of every server, in server order. A server that
    cannot answer is left out with a log line; one that does not offer the method (-32601) quietly."""
    found = await asyncio.gather(*(_all_pages(service, snapshot, client, s, method, key) for s in servers),
                                 return_exceptions=True)
    items: list[tuple[str, dict[str, Any]]] = []
    for server_id, listed in zip(servers, found, strict=True):
        if isinstance(listed, ServerUnavailable):
            log.info("mcp server left out of a list", extra={"server": server_id, "method": method,
                                                              "error": listed.reason})
        elif isinstance(listed, RpcError):
            continue
        elif isinstance(listed, BaseException):
            raise listed
        else:
            items += [(server_id, item) for item in listed]
    return items
