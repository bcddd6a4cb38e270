"""The guard stage on MCP tool calls, through the official ``mcp`` SDK's client: arguments blocked
(a JSON-RPC error in MCP's shape with the guard and the entity; the tool never runs) or masked
(the server sees placeholders, the client its own values back in the result), and a result
blocked (a tool error saying which guard; the call ran and is charged), all in the ledger."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from mcp.shared.exceptions import MCPError

from tests.conftest import CLIENT_KEY, Gateway
from tests.integration.guardrails.conftest import EMAIL, LEAKED_KEY, TOOLS_KEY
from tests.mcp_helpers import McpUpstream, mcp_rows, sdk_client, text_of, wait_for


def call(gateway: Gateway, key: str, tool: str, arguments: dict[str, Any]) -> Any:
    """The tool's result, or the ``MCPError`` the SDK raised."""
    async def run() -> Any:
        async with sdk_client(gateway.base_url + "/mcp", key=key) as client:
            try:
                return await client.call_tool(tool, arguments)
            except MCPError as exc:
                return exc

    return anyio.run(run)


def row_for(gateway: Gateway, guardrails: str) -> dict[str, Any]:
    """The latest MCP ledger row with these ``guardrails``."""
    rows = wait_for(lambda: [r for r in mcp_rows(gateway) if r["guardrails"] == guardrails] or None,
                    what=f"an MCP ledger row with guardrails {guardrails}")
    return dict(rows[0])


def test_arguments_holding_a_secret_are_refused_before_the_tool_runs(guarded: Gateway,
                                                                     mcp_upstream: McpUpstream) -> None:
    error = call(guarded, CLIENT_KEY, "demo__echo", {"text": f"store {LEAKED_KEY}"})
    assert isinstance(error, MCPError) and error.code == -32602
    assert error.message == "The request was blocked by guardrail 'secrets' (openai_key)."
    assert error.data == {"code": "guardrail_blocked", "guardrail": "secrets", "entity": "openai_key"}
    assert not [e for e in mcp_upstream.events() if "echo" in e]
    row = row_for(guarded, "secrets:block:input:1:openai_key")
    assert (row["status"], row["error_code"], row["model"], row["cost"]) == (400, "guardrail_blocked", "echo", 0)


def test_a_blocked_call_is_a_400_on_the_wire(guarded: Gateway) -> None:
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "demo__echo", "arguments": {"nested": [{"text": LEAKED_KEY}]},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}}
    answer = httpx.post(guarded.base_url + "/mcp", json=message, timeout=30, headers={
        "Authorization": f"Bearer {CLIENT_KEY}", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "demo__echo"})
    assert answer.status_code == 400
    assert answer.json()["error"]["data"] == {"code": "guardrail_blocked", "guardrail": "secrets",
                                              "entity": "openai_key"}
    assert LEAKED_KEY not in answer.text


def test_arguments_are_masked_and_the_result_restored(guarded: Gateway, mcp_upstream: McpUpstream) -> None:
    result = call(guarded, TOOLS_KEY, "demo__echo", {"text": f"mail {EMAIL} or help@example.org"})
    assert result.is_error is False
    assert text_of(result) == f"mail {EMAIL} or help@example.org"  # the client's own values back
    assert result.structured_content == {"result": f"mail {EMAIL} or help@example.org"}
    assert "demo echo mail <EMAIL_1> or <EMAIL_2>" in mcp_upstream.events()  # what the server saw
    assert row_for(guarded, "pii:mask:input:2:email")["status"] == 200


def test_a_result_a_guard_blocks_becomes_a_tool_error(guarded: Gateway, mcp_upstream: McpUpstream) -> None:
    result = call(guarded, TOOLS_KEY, "demo__echo", {"text": "the code is LEAK-0042"})
    assert result.is_error is True
    assert text_of(result) == "The answer was blocked by guardrail 'no-leak' (leak)."
    assert result.meta == {"llm-gateway/guardrail": {"code": "guardrail_blocked", "guardrail": "no-leak",
                                                     "entity": "leak"}}
    assert "demo echo the code is LEAK-0042" in mcp_upstream.events()  # the tool ran
    row = row_for(guarded, "no-leak:block:output:1:leak")
    assert (row["status"], row["error_code"], row["cost"]) == (400, "guardrail_blocked", 0.01)
