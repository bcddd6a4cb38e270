"""The MCP tools a request offers its model: listed through the client's tool service (its policy
applied), cut to what the request names, and written as chat function tools.

Each tool is offered as a function named ``mcp_<server>__<tool>`` (``core.mcp.function_name``:
sanitised and shortened with a hash where the MCP name does not fit a function name); its
description and input schema are the server's. A server that cannot list its tools is offered
without them, and the request says why (``Listed.error``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..config.snapshot import Snapshot
from ..core.mcp import function_name
from ..core.targets import ClientSpec
from ..errors import InvalidRequest
from ..mcp.service import ServerUnavailable, ToolService
from .tool_steps import Listed, McpFunction


@dataclass(frozen=True, slots=True)
class McpSelection:
    """One ``{"type": "mcp"}`` tool of a request: its server, the label the request gave it, and
    which of its tools (``names``: None for all; ``read_only``: only those annotated read-only)."""

    server_id: str
    label: str
    names: frozenset[str] | None = None
    read_only: bool = False

    def picks(self, tool: dict[str, Any]) -> bool:
        if self.names is not None and tool.get("name") not in self.names:
            return False
        annotations = tool.get("annotations")
        return not self.read_only or isinstance(annotations, dict) and annotations.get("readOnlyHint") is True


@dataclass(slots=True)
class Offer:
    """The chat function tools for the request's MCP servers, and what each function name stands for."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    functions: dict[str, McpFunction] = field(default_factory=dict)
    listed: list[Listed] = field(default_factory=list)


class ToolNameClash(InvalidRequest):
    code = "tool_name_clash"


def _function_tool(name: str, tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("inputSchema")
    parameters = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    description = tool.get("description") or tool.get("title")
    if isinstance(description, str) and description:
        function["description"] = description
    return {"type": "function", "function": function}


async def make_offer(service: ToolService, snapshot: Snapshot, client: ClientSpec, selections: list[McpSelection],
                     taken: set[str]) -> Offer:
    """List the selected servers' tools at once (``taken``: the request's own function names,
    which an MCP tool's may not repeat: ``ToolNameClash``, a 400)."""
    found = await asyncio.gather(*(service.list_tools(snapshot, client, s.server_id) for s in selections),
                                 return_exceptions=True)
    offer = Offer()
    for selection, tools in zip(selections, found, strict=True):
        if isinstance(tools, ServerUnavailable):
            offer.listed.append(Listed(selection.label, (), f"The MCP server '{selection.label}' could not list its "
                                                            f"tools: {tools.reason}"))
            continue
        if isinstance(tools, BaseException):
            raise tools
        chosen = tuple(tool for tool in tools if selection.picks(tool))
        for tool in chosen:
            name = function_name(selection.server_id, tool["name"])
            if name in taken or name in offer.functions:
                raise ToolNameClash(f"The function '{name}' is defined in the request and is also the name of tool "
                                    f"'{tool['name']}' of MCP server '{selection.label}'; rename the function.",
                                    param="tools")
            offer.functions[name] = McpFunction(selection.server_id, selection.label, tool["name"])
            offer.tools.append(_function_tool(name, tool))
        offer.listed.append(Listed(selection.label, chosen))
    return offer
