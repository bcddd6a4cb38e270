"""The snapshot's MCP parts built from the validated file: server specs and each client's access."""

from __future__ import annotations

from collections.abc import Mapping

from ..core.mcp import McpAccess, McpServerSpec, ToolRules
from .loader import Path_
from .mcp_schema import ClientMcpConfig, McpServerConfig, ToolRulesConfig

Problem = tuple[Path_, str]


def tool_rules(config: ToolRulesConfig) -> ToolRules:
    return ToolRules(tuple(config.allow), tuple(config.deny))


def server_spec(config: McpServerConfig) -> McpServerSpec:
    return McpServerSpec(
        id=config.id, url=config.url, command=config.command, args=tuple(config.args),
        env=tuple(config.env.items()), headers=tuple(config.headers.items()), timeout_s=config.timeout_s,
        tools=tool_rules(config.tools), price_per_call_usd=config.price_per_call_usd,
        max_result_bytes=int(config.max_result_mb * 1024 * 1024), tools_ttl_s=config.tools_ttl_s)


def build_servers(configs: list[McpServerConfig]) -> tuple[dict[str, McpServerSpec], list[Problem]]:
    """The servers by id, and the problems found (a duplicate id)."""
    servers: dict[str, McpServerSpec] = {}
    problems: list[Problem] = []
    for i, config in enumerate(configs):
        if config.id in servers:
            problems.append((("mcp_servers", i, "id"), f"duplicate MCP server id '{config.id}'"))
            continue
        servers[config.id] = server_spec(config)
    return servers, problems


def client_access(config: ClientMcpConfig, servers: Mapping[str, McpServerSpec], where: str) -> \
        tuple[McpAccess, list[str]]:
    """A client's access, and warnings for servers it names that are not configured."""
    if "*" in config.servers:
        return McpAccess(None, tool_rules(config.tools)), []
    if not config.servers:
        return McpAccess(), []
    warnings = [f"{where}: mcp.servers names '{name}', which is not configured in mcp_servers"
                for name in sorted(set(config.servers)) if name not in servers]
    return McpAccess(frozenset(config.servers), tool_rules(config.tools)), warnings



