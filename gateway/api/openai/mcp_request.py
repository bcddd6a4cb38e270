"""The Responses API's remote MCP tool in a request (``/v1/responses`` and ``/v1/chat/completions``):
checked against the servers the gateway has and the key may use.

    {"type": "mcp", "server_label": "github", "allowed_tools": ["search"], "require_approval": "never"}

``server_label`` names a server of ``mcp_servers`` the key may use. ``server_url`` is optional; when
given it must be that server's configured ``url`` or the gateway's own ``/mcp/<id>`` address (it
then names the server when the label does not): the gateway never connects to a URL a request
brings. ``allowed_tools`` is a list of tool names or ``{"tool_names": [...], "read_only": true}``.
``require_approval`` must be ``"never"``: the gateway runs the tools itself and asks no one.
``headers``, ``authorization``, ``connector_id`` and ``tunnel_id`` are refused: a server is reached
with the credentials the operator configured. Every refusal is a 400 naming the field.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ...config.snapshot import Snapshot
from ...core.mcp import McpServerSpec, function_name
from ...core.targets import ClientSpec
from ...errors import InvalidRequest
from ...pipeline.tool_offer import McpSelection

MCP = "mcp"
_REFUSED = {"connector_id": "connectors", "tunnel_id": "tunnels"}


def has_mcp_tools(body: dict[str, Any]) -> bool:
    tools = body.get("tools")
    return isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") == MCP for t in tools)


def selections(body: dict[str, Any], snapshot: Snapshot, client: ClientSpec) -> list[McpSelection]:
    """The request's MCP tools, checked (``InvalidRequest`` naming the field that is wrong)."""
    found: list[McpSelection] = []
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type") != MCP:
            continue
        where = f"tools[{i}]"
        _refuse_unsupported(tool, where)
        server_id = _server(tool, where, snapshot, client)
        if any(s.server_id == server_id for s in found):
            raise InvalidRequest(f"{where}: MCP server '{server_id}' is named twice.", param=where)
        names, read_only = _allowed(tool.get("allowed_tools"), where)
        label = tool.get("server_label")
        found.append(McpSelection(server_id, label if isinstance(label, str) and label else server_id, names,
                                  read_only))
    return found


def _refuse_unsupported(tool: dict[str, Any], where: str) -> None:
    if tool.get("require_approval") != "never":
        raise InvalidRequest(f"{where}.require_approval: the gateway runs MCP tools without asking for approval; "
                             'set "require_approval": "never".', param=f"{where}.require_approval")
    for name, what in _REFUSED.items():
        if tool.get(name):
            raise InvalidRequest(f"{where}.{name}: the gateway reaches only the MCP servers configured in it; {what} "
                                 "are not supported.", param=f"{where}.{name}")
    for name in ("headers", "authorization"):
        if tool.get(name):
            raise InvalidRequest(f"{where}.{name}: the gateway reaches each MCP server with the credentials "
                                 "configured for it; a request cannot send its own.", param=f"{where}.{name}")


def _names_server(url: str, spec: McpServerSpec) -> bool:
    """Whether ``url`` is ``spec``'s configured address or the gateway's ``/mcp/<id>`` for it."""
    url = url.strip().rstrip("/")
    if spec.url is not None and url == spec.url.rstrip("/"):
        return True
    return urlsplit(url).path.rstrip("/").endswith(f"/mcp/{spec.id}")


def _server(tool: dict[str, Any], where: str, snapshot: Snapshot, client: ClientSpec) -> str:
    label, url = tool.get("server_label"), tool.get("server_url")
    if not isinstance(label, str) or not label:
        raise InvalidRequest(f"{where}.server_label is required: the id of an MCP server the gateway has.",
                             param=f"{where}.server_label")
    if url is not None and not isinstance(url, str):
        raise InvalidRequest(f"{where}.server_url must be a string.", param=f"{where}.server_url")
    usable = {i: s for i, s in snapshot.mcp_servers.items() if client.mcp.server_allowed(i)}
    if label in usable and (url is None or _names_server(url, usable[label])):
        return label
    matches = [i for i, spec in usable.items() if url is not None and _names_server(url, spec)]
    if label not in usable and len(matches) == 1:
        return matches[0]
    if url is not None:
        raise InvalidRequest(f"{where}.server_url: '{url[:200]}' names no MCP server this key may use; the gateway "
                             "does not connect to other servers. Leave server_url out and name a server of the "
                             "gateway in server_label.", param=f"{where}.server_url")
    raise InvalidRequest(f"{where}.server_label: '{label[:200]}' names no MCP server this key may use.",
                         param=f"{where}.server_label")


def _allowed(value: object, where: str) -> tuple[frozenset[str] | None, bool]:
    """``allowed_tools`` as (names or None for all, read-only tools only)."""
    if value is None:
        return None, False
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value), False
    if isinstance(value, dict):
        names, read_only = value.get("tool_names"), value.get("read_only")
        if (names is None or isinstance(names, list) and all(isinstance(v, str) for v in names)) \
                and (read_only is None or isinstance(read_only, bool)):
            return (frozenset(names) if names is not None else None), read_only is True
    raise InvalidRequest(f"{where}.allowed_tools must be a list of tool names or "
                         '{"tool_names": [...], "read_only": true|false}.', param=f"{where}.allowed_tools")


def without_mcp(body: dict[str, Any], found: list[McpSelection], responses: bool) -> dict[str, Any]:
    """The body without its MCP tools, an MCP ``tool_choice`` said as a function one (``responses``:
    in the Responses API's words, else chat's)."""
    out = {**body, "tools": [t for t in body.get("tools") or () if not (isinstance(t, dict) and t.get("type") == MCP)]}
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == MCP:
        server = next((s.server_id for s in found if s.label == choice.get("server_label")), None)
        name = choice.get("name")
        if server is None or not isinstance(name, str):
            out["tool_choice"] = "required"
        elif responses:
            out["tool_choice"] = {"type": "function", "name": function_name(server, name)}
        else:
            out["tool_choice"] = {"type": "function", "function": {"name": function_name(server, name)}}
    if not out["tools"]:
        del out["tools"]
    return out


def function_names(chat_body: dict[str, Any]) -> set[str]:
    """The names of the functions a chat request defines."""
    names = set()
    for tool in chat_body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names
