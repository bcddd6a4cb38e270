"""MCP servers and who may use which of their tools: the value types a snapshot holds.

A tool rule is a list of shell-style patterns (``*``, ``read_*``). A server's ``tools`` rules see
the tool's own name; a client's see both the tool's own name and its name on the aggregate
endpoint (``<server_id>__<tool>``), so ``deny: ["delete_*"]`` and ``allow: ["github__*"]`` both work.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

SEPARATOR = "__"  # between a server id and a tool's own name on /mcp (server ids never hold it)
FUNCTION_PREFIX = "mcp_"  # of the function name a model is offered an MCP tool under
MAX_FUNCTION_NAME = 64  # OpenAI's function names: [A-Za-z0-9_-], at most 64 (Anthropic and Gemini accept them)
_NOT_IN_FUNCTION_NAMES = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class ToolRules:
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()

    def permits(self, *names: str) -> bool:
        """True if one of ``names`` is allowed and none is denied."""
        if not self.deny and self.allow == ("*",):
            return True  # the default: no pattern to match
        if any(fnmatchcase(name, pattern) for name in names for pattern in self.deny):
            return False
        return any(fnmatchcase(name, pattern) for name in names for pattern in self.allow)


ALL_TOOLS = ToolRules()


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """One configured MCP server: streamable HTTP (``url``) or a process over stdio (``command``)."""

    id: str
    url: str | None
    command: str | None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold secrets
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # sent upstream only; may hold secrets
    timeout_s: float = 60.0
    tools: ToolRules = ALL_TOOLS
    price_per_call_usd: float = 0.0
    max_result_bytes: int = 1 << 20
    tools_ttl_s: float = 300.0

    @property
    def transport(self) -> str:
        return "http" if self.url is not None else "stdio"


@dataclass(frozen=True, slots=True)
class McpAccess:
    """A client's ``mcp:``: the servers it may use (None: every one) and its tool rules."""

    servers: frozenset[str] | None = frozenset()
    tools: ToolRules = ALL_TOOLS

    def server_allowed(self, server_id: str) -> bool:
        return self.servers is None or server_id in self.servers

    def tool_allowed(self, server_id: str, tool: str) -> bool:
        return self.server_allowed(server_id) and self.tools.permits(tool, server_id + SEPARATOR + tool)


NO_MCP = McpAccess()  # the default: no MCP server at all
ALL_MCP = McpAccess(servers=None)


def usable(spec: McpServerSpec, access: McpAccess, tool: str) -> bool:
    """Whether a client with ``access`` may list and call ``tool`` of ``spec``'s server."""
    return spec.tools.permits(tool) and access.tool_allowed(spec.id, tool)


def function_name(server_id: str, tool: str) -> str:
    """The function name a model is offered ``tool`` of ``server_id`` under: ``mcp_<server>__<tool>``.

    MCP names may hold characters function names may not (``.``) and run to 128 characters; such a
    name has those characters replaced by ``_``, is cut to fit, and ends with 8 hex digits of a hash
    of the whole name, so two tools never share one. The same tool always gets the same name (a
    conversation sent again names the calls it made)."""
    raw = f"{FUNCTION_PREFIX}{server_id}{SEPARATOR}{tool}"
    clean = _NOT_IN_FUNCTION_NAMES.sub("_", raw)
    if clean == raw and len(raw) <= MAX_FUNCTION_NAME:
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return clean[:MAX_FUNCTION_NAME - 9] + "_" + digest
