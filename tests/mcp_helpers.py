"""MCP test helpers: upstream MCP servers (the SDK's ``MCPServer``, ``tests/mcp_upstream.py``) over
HTTP and stdio, the SDK's client against the gateway, and reading what the gateway recorded."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ADMIN_HEADERS, CLIENT_KEY, Gateway, free_port

SERVER_SCRIPT = Path(__file__).resolve().parent / "mcp_upstream.py"
UPSTREAM_TOKEN = "sk-upstream-mcp-token-7777"


class McpUpstream:
    """``tests/mcp_upstream.py http`` on a free port; ``events()`` is what it saw."""

    def __init__(self, workdir: Path, name: str = "demo", *options: str, port: int | None = None):
        self.port = port or free_port()
        self.name = name
        self.events_path = workdir / f"{name}-events.txt"
        self.headers_path = workdir / f"{name}-headers.txt"
        self.log_path = workdir / f"{name}-upstream.log"
        env = {**os.environ, "MCP_EVENTS": str(self.events_path), "MCP_HEADERS": str(self.headers_path)}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), "http", "--port", str(self.port),
                                          "--name", name, *options], env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"the MCP upstream did not start:\n{self.log_path.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def events(self) -> list[str]:
        return self.events_path.read_text().splitlines() if self.events_path.exists() else []

    def authorizations(self) -> list[str]:
        return self.headers_path.read_text().splitlines() if self.headers_path.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


def http_server(server_id: str, upstream: McpUpstream, extra: str = "") -> str:
    """A ``mcp_servers`` entry (YAML, indented for the list) for an HTTP upstream."""
    return (f"  - id: {server_id}\n    url: {upstream.url}\n"
            f"    headers: {{Authorization: \"Bearer ${{MCP_UPSTREAM_TOKEN}}\"}}\n{extra}")


def stdio_server(server_id: str, events: Path, extra: str = "") -> str:
    """A ``mcp_servers`` entry for ``tests/mcp_upstream.py stdio`` started by the gateway."""
    return (f"  - id: {server_id}\n    command: {sys.executable}\n"
            f"    args: [{SERVER_SCRIPT}, stdio, --name, {server_id}]\n"
            f"    env: {{MCP_EVENTS: \"{events}\"}}\n{extra}")


def client_entry(client_id: str, key: str, mcp: str, extra: str = "") -> str:
    return f"  - id: {client_id}\n    key: {key}\n    mcp: {mcp}\n{extra}"


def mcp_config(servers: list[str], clients: list[str], extra: str = "") -> str:
    return ("server:\n  listen: \"127.0.0.1:2906\"\n  request_timeout_s: 10\n"
            "mcp_servers:\n" + "".join(servers) + "api_keys:\n" + "".join(clients) + extra)


def env_with_token() -> dict[str, str]:
    return {"MCP_UPSTREAM_TOKEN": UPSTREAM_TOKEN}


@contextlib.asynccontextmanager
async def sdk_client(url: str, key: str = CLIENT_KEY, mode: str = "auto") -> AsyncIterator[Client]:
    """The official SDK's client on ``url`` with the gateway key (``mode``: auto = 2026-07-28, legacy)."""
    async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode) as client):
        yield client


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "a condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def mcp_rows(gateway: Gateway) -> list[dict[str, Any]]:
    """The ledger's MCP tool-call rows, newest first (through the admin API)."""
    rows = httpx.get(gateway.base_url + "/admin/v1/requests/recent", params={"limit": 500}, headers=ADMIN_HEADERS,
                     timeout=10).json()["requests"]
    return [row for row in rows if row["kind"] == "mcp"]


def text_of(result: Any) -> str:
    """The text of a CallToolResult's first content block."""
    return str(result.content[0].text)


def text_field(item: Any) -> str:
    """The ``text`` of a content block or of a resource's contents."""
    return str(item.model_dump().get("text"))
