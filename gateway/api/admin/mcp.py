"""The MCP servers in the admin API: each one's health and tools (as this worker sees them), and
the tool calls from the ledger grouped by client, server or tool."""

from __future__ import annotations

import falcon.asgi

from ...errors import NotFound
from ...mcp.accounting import KIND
from ...mcp.link import LinkError
from ...mcp.protocol import RpcError
from ...store.values import GroupBy
from .base import AdminResource, reply, store_errors
from .params import choice, period
from .usage import group_view

# the ledger columns a tool call's client, server and tool are kept in
CALL_GROUPS: dict[str, GroupBy] = {"client": "client", "server": "provider", "tool": "model"}


class McpServersResource(AdminResource):
    """``GET /mcp/servers``: every configured MCP server, its health and its tool count."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        reply(resp, {"servers": self.runtime.mcp.status()})


class McpToolsResource(AdminResource):
    """``GET /mcp/servers/{server_id}/tools``: the server's tools (asked now if the cache is stale),
    each with whether the server's ``tools`` rules let clients use it."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, server_id: str) -> None:
        await self.caller(req)
        state = self.runtime.mcp.servers.get(server_id)
        if state is None:
            raise NotFound(f"No MCP server '{server_id[:64]}'.")
        error = None
        try:
            tools = await self.runtime.mcp.tools(state)
        except (LinkError, RpcError, TimeoutError) as exc:
            tools, error = state.tools or [], str(exc) or "no answer in time"
        reply(resp, {"server": server_id, "health": state.health, "error": error, "tools": [
            {"name": t["name"], "title": t.get("title"), "description": t.get("description"),
             "allowed": state.spec.tools.permits(t["name"])} for t in tools]})


class McpCallsResource(AdminResource):
    """``GET /mcp/calls?group_by=client|server|tool&client_id=&start=&end=``: tool calls from the ledger."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.caller(req)
        group_by = choice(req, "group_by", tuple(CALL_GROUPS), "client") or "client"
        client_id = req.get_param("client_id") or None
        start, end = period(req, None)
        async with store_errors():
            groups = await self.runtime.stores.ledger.usage_stats(CALL_GROUPS[group_by], start, end, client_id,
                                                                   kind=KIND)
        reply(resp, {"group_by": group_by, "client_id": client_id, "start": start, "end": end,
                     "groups": [{"key": g.key, "calls": g.requests, "errors": g.errors, "cost": round(g.cost, 8),
                                 "avg_latency_ms": group_view(g)["avg_latency_ms"]} for g in groups]})
