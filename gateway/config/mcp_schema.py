"""The config's MCP parts: ``mcp_servers:``, a client's ``mcp:``, and ``observability:``."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from ..core.policy import Strict

SERVER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class ToolRulesConfig(Strict):
    """``tools: {allow: [...], deny: [...]}``: shell-style patterns (``*``, ``read_*``)."""

    allow: list[str] = ["*"]
    deny: list[str] = []


class McpServerConfig(Strict):
    id: str = Field(min_length=1, max_length=64, pattern=SERVER_ID)
    url: str | None = None  # a streamable-HTTP MCP server
    command: str | None = Field(None, min_length=1)  # or a stdio server the gateway starts
    args: list[str] = []
    env: dict[str, str] = {}
    headers: dict[str, str] = {}  # sent to the server only; values may be ${VAR} from .env
    timeout_s: float = Field(60.0, gt=0)
    tools: ToolRulesConfig = ToolRulesConfig()
    price_per_call_usd: float = Field(0.0, ge=0)
    max_result_mb: float = Field(1.0, gt=0)  # a bigger result is refused
    tools_ttl_s: float = Field(300.0, gt=0)  # how long its tool list is kept before it is asked again

    @field_validator("id")
    @classmethod
    def _no_separator(cls, v: str) -> str:
        if "__" in v:
            raise ValueError("must not contain '__' (it separates the server id from a tool's name on /mcp)")
        return v

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"'{name[:64]}' is not an environment variable name (letters, digits, _)")
        return v

    @model_validator(mode="after")
    def _one_transport(self) -> Self:
        if (self.url is None) == (self.command is None):
            raise ValueError("give exactly one of 'url' (streamable HTTP) or 'command' (stdio)")
        if self.url is not None and (self.args or self.env):
            raise ValueError("'args' and 'env' are for a stdio server ('command'), not a 'url'")
        if self.command is not None and self.headers:
            raise ValueError("'headers' are for an HTTP server ('url'); give a stdio server 'env' instead")
        return self


class ClientMcpConfig(Strict):
    """A client's ``mcp:``: the servers it may use (``"*"``: all) and its tool rules."""

    servers: list[str] = []
    tools: ToolRulesConfig = ToolRulesConfig()
