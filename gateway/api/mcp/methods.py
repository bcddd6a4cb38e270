"""The MCP methods ``/mcp`` and ``/mcp/{server_id}`` answer, over the tool service.

On ``/mcp`` (every server the key may use) names are namespaced by the server id: a tool or a
prompt ``search`` of server ``github`` is ``github__search``; a resource URI ``file:///a`` of it
is ``mcp://github/file:///a`` (templates likewise). ``/mcp/{server_id}`` shows the server's own
names. A server that cannot answer is left out of the aggregate lists; asked alone, it answers
an error that says why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...config.snapshot import Snapshot
from ...core.mcp import SEPARATOR
from ...core.targets import ClientSpec
from ...mcp.link import Progress
from ...mcp.protocol import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    META_SERVER_INFO,
    METHOD_NOT_FOUND,
    MODERN,
    SERVER_INFO,
    RpcError,
)
from ...mcp.service import ServerUnavailable, ToolService, unknown_tool
from ...server.runtime import Runtime
from .aggregate import gather_lists

CAPABILITIES = {"tools": {"listChanged": False}, "resources": {"listChanged": False, "subscribe": False},
                "prompts": {"listChanged": False}}
INSTRUCTIONS = ("Tools of the MCP servers this key may use, through the gateway. On /mcp a tool's name is "
                "<server>__<tool>.")
MAX_NAME = 128
RESOURCE_SCHEME = "mcp://"
LISTS = frozenset({"server/discover", "tools/list", "resources/list", "resources/templates/list", "prompts/list",
                   "resources/read"})


@dataclass(frozen=True, slots=True)
class Context:
    snapshot: Snapshot
    client: ClientSpec
    scope: str | None  # the server of /mcp/{server_id}; None on /mcp
    request_id: str
    modern: bool


Handler = Callable[[Context, dict[str, Any], Progress | None], Awaitable[dict[str, Any]]]


def split_name(name: str, scope: str | None) -> tuple[str, str] | None:
    """(server, own name) of a name the client used; None when it names no server."""
    if scope is not None:
        return scope, name
    server, sep, own = name.partition(SEPARATOR)
    return (server, own) if sep and server and own else None


def unavailable(exc: ServerUnavailable) -> RpcError:
    return RpcError(INTERNAL_ERROR, str(exc))


class Methods:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.table: dict[str, Handler] = {
            "server/discover": self.discover, "ping": self.ping, "tools/list": self.tools_list,
            "tools/call": self.tools_call, "resources/list": self.resources_list,
            "resources/templates/list": self.templates_list, "resources/read": self.resources_read,
            "prompts/list": self.prompts_list, "prompts/get": self.prompts_get,
        }

    @property
    def service(self) -> ToolService:
        return self.runtime.tools

    async def handle(self, ctx: Context, method: str, params: dict[str, Any],
                     progress: Progress | None) -> dict[str, Any]:
        handler = self.table.get(method)
        if handler is None or (method == "server/discover" and not ctx.modern) or (method == "ping" and ctx.modern):
            raise RpcError(METHOD_NOT_FOUND, "Method not found", method[:100])
        result = await handler(ctx, params, progress)
        if ctx.modern:
            result.setdefault("resultType", "complete")
            if method in LISTS:
                result["ttlMs"], result["cacheScope"] = 0, "private"
        return result

    def initialize_result(self, version: str) -> dict[str, Any]:
        return {"protocolVersion": version, "capabilities": CAPABILITIES, "serverInfo": SERVER_INFO,
                "instructions": INSTRUCTIONS}

    async def discover(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        return {"supportedVersions": [MODERN], "capabilities": CAPABILITIES, "instructions": INSTRUCTIONS,
                "_meta": {META_SERVER_INFO: SERVER_INFO}}

    async def ping(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        return {}

    # --- tools ----------------------------------------------------------------------------
    async def tools_list(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        service = self.service
        if ctx.scope is not None:
            try:
                return {"tools": list(await service.list_tools(ctx.snapshot, ctx.client, ctx.scope))}
            except ServerUnavailable as exc:
                raise unavailable(exc) from None
        tools = []
        for server_id, listed in await service.list_all(ctx.snapshot, ctx.client):
            for tool in listed:
                name = server_id + SEPARATOR + tool["name"]
                if len(name) <= MAX_NAME:
                    tools.append({**tool, "name": name})
        return {"tools": tools}

    async def tools_call(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        name, arguments = params.get("name"), params.get("arguments")
        if not isinstance(name, str) or not (arguments is None or isinstance(arguments, dict)):
            raise RpcError(INVALID_PARAMS, "Invalid params: tools/call needs a name and an arguments object")
        target = split_name(name, ctx.scope)
        if target is None:
            raise unknown_tool(name)
        outcome = await self.service.call_tool(ctx.snapshot, ctx.client, target[0], target[1], arguments,
                                               request_id=ctx.request_id, progress=progress, shown_as=name)
        return outcome.result

    # --- resources and prompts ------------------------------------------------------------
    async def _one(self, ctx: Context, server_id: str, method: str, params: dict[str, Any],
                   name: str | None = None) -> dict[str, Any]:
        try:
            return await self.service.forward(ctx.snapshot, ctx.client, server_id, method, params, name)
        except ServerUnavailable as exc:
            raise unavailable(exc) from None

    async def _list(self, ctx: Context, method: str, key: str, rename: Callable[[str, dict[str, Any]], Any],
                    params: dict[str, Any]) -> dict[str, Any]:
        if ctx.scope is not None:
            return await self._one(ctx, ctx.scope, method, params)
        servers = [spec.id for spec in self.service.servers_for(ctx.snapshot, ctx.client)]
        found = await gather_lists(self.service, ctx.snapshot, ctx.client, servers, method, key)
        return {key: [renamed for server_id, item in found if (renamed := rename(server_id, item)) is not None]}

    async def resources_list(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        return await self._list(ctx, "resources/list", "resources", _prefixed("uri"), params)

    async def templates_list(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        return await self._list(ctx, "resources/templates/list", "resourceTemplates", _prefixed("uriTemplate"), params)

    async def prompts_list(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        return await self._list(ctx, "prompts/list", "prompts", _named, params)

    async def resources_read(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise RpcError(INVALID_PARAMS, "Invalid params: resources/read needs a uri")
        if ctx.scope is not None:
            return await self._one(ctx, ctx.scope, "resources/read", params, uri)
        server_id, _, own = uri.removeprefix(RESOURCE_SCHEME).partition("/")
        if not uri.startswith(RESOURCE_SCHEME) or not own or not ctx.client.mcp.server_allowed(server_id):
            raise RpcError(INVALID_PARAMS, f"Resource not found: {uri[:200]}", {"uri": uri[:200]})
        result = await self._one(ctx, server_id, "resources/read", {**params, "uri": own}, own)
        contents = result.get("contents")
        if isinstance(contents, list):
            result["contents"] = [_prefixed("uri")(server_id, item) or item for item in contents]
        return result

    async def prompts_get(self, ctx: Context, params: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        name = params.get("name")
        target = split_name(name, ctx.scope) if isinstance(name, str) else None
        if target is None or not ctx.client.mcp.server_allowed(target[0]):
            raise RpcError(INVALID_PARAMS, f"Unknown prompt: {str(name)[:200]}")
        return await self._one(ctx, target[0], "prompts/get", {**params, "name": target[1]}, target[1])


def _prefixed(field: str) -> Callable[[str, dict[str, Any]], Any]:
    def rename(server_id: str, item: dict[str, Any]) -> Any:
        value = item.get(field)
        return {**item, field: f"{RESOURCE_SCHEME}{server_id}/{value}"} if isinstance(value, str) else None
    return rename


def _named(server_id: str, item: dict[str, Any]) -> Any:
    name = item.get("name")
    return {**item, "name": server_id + SEPARATOR + name} if isinstance(name, str) else None
