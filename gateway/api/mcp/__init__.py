"""The MCP endpoint (server side): ``/mcp`` and ``/mcp/{server_id}``."""

from .resource import McpResource

__all__ = ["McpResource"]
