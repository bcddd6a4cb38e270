"""The gateway as an MCP server, driven by the official ``mcp`` SDK's client in both revisions it
speaks (2026-07-28 stateless, 2025-11-25 with sessions), in front of the SDK's ``MCPServer`` over
streamable HTTP and over stdio (started by the gateway)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import ADMIN_HEADERS, CLIENT_KEY, Gateway
from tests.mcp_helpers import (
    UPSTREAM_TOKEN,
    McpUpstream,
    client_entry,
    env_with_token,
    http_server,
    mcp_config,
    mcp_rows,
    sdk_client,
    stdio_server,
    text_field,
    text_of,
    wait_for,
)

LIMITED_KEY = "sk-test-limited-key-0123456789"
NO_MCP_KEY = "sk-test-no-mcp-key-0123456789"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, McpUpstream, Path]]:
    work = tmp_path_factory.mktemp("mcp")
    upstream = McpUpstream(work, "demo", "--token", UPSTREAM_TOKEN)
    events = work / "local-events.txt"
    config = mcp_config(
        [http_server("demo", upstream), stdio_server("local", events, "    tools: {deny: [big]}\n")],
        [client_entry("app", CLIENT_KEY, '{servers: ["*"]}'),
         client_entry("limited", LIMITED_KEY, '{servers: [demo], tools: {allow: ["add", "demo__countdown"]}}'),
         client_entry("plain", NO_MCP_KEY, "{}")])
    gateway = Gateway(work, config, env_with_token()).start()
    yield gateway, upstream, events
    gateway.stop()
    upstream.stop()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_lists_calls_relays_progress_resources_and_prompts(setup, mode: str) -> None:
    gateway, upstream, local_events = setup
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async def scenario() -> None:
        async with sdk_client(gateway.base_url + "/mcp", mode=mode) as client:
            assert client.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"demo__add", "demo__countdown", "demo__big", "local__add", "local__whoami"} <= names
            assert "local__big" not in names  # the server's own tools rules deny it
            added = await client.call_tool("demo__add", {"a": 2, "b": 3})
            assert added.structured_content == {"result": 5} and not added.is_error
            assert text_of(await client.call_tool("local__whoami", {})) == "local"
            for name in ("demo__countdown", "local__countdown"):
                seen.clear()
                done = await client.call_tool(name, {"steps": 3, "delay_s": 0.05}, progress_callback=on_progress)
                assert text_of(done) == "counted 3"
                assert seen == [(1, 3, "step 1/3"), (2, 3, "step 2/3"), (3, 3, "step 3/3")], name
            resources = {r.uri for r in (await client.list_resources()).resources}
            assert resources == {"mcp://demo/demo://greeting", "mcp://local/demo://greeting"}
            read = await client.read_resource("mcp://local/demo://greeting")
            assert text_field(read.contents[0]) == "hello from local" and read.contents[0].uri == "mcp://local/demo://greeting"
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert prompts == {"demo__review", "local__review"}
            got = await client.get_prompt("demo__review", {"code": "x = 1"})
            assert "x = 1" in text_field(got.messages[0].content)

    anyio.run(scenario)
    assert "demo call add 2 3" in upstream.events()
    assert "local countdown done 3" in local_events.read_text().splitlines()
    # the upstream saw the operator's credential, never the client's key
    assert set(upstream.authorizations()) == {f"Bearer {UPSTREAM_TOKEN}"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_one_server_endpoint_shows_its_own_names(setup, mode: str) -> None:
    gateway, _, _ = setup

    async def scenario() -> None:
        async with sdk_client(gateway.base_url + "/mcp/local", mode=mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "add" in names and "whoami" in names and "big" not in names
            assert text_of(await client.call_tool("whoami", {})) == "local"
            assert [r.uri for r in (await client.list_resources()).resources] == ["demo://greeting"]
            assert text_field((await client.read_resource("demo://greeting")).contents[0]) == "hello from local"

    anyio.run(scenario)
    unknown = httpx.post(gateway.base_url + "/mcp/nope", headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                         json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert unknown.status_code == 404


def test_a_tool_outside_the_clients_set_is_neither_listed_nor_callable(setup) -> None:
    gateway, upstream, _ = setup

    async def scenario() -> None:
        async with sdk_client(gateway.base_url + "/mcp", LIMITED_KEY) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"demo__add", "demo__countdown"}
            assert (await client.call_tool("demo__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
            for hidden in ("demo__big", "local__add", "demo__missing", "nothing"):
                with pytest.raises(MCPError, match="Unknown tool"):
                    await client.call_tool(hidden, {"size": 3, "a": 1, "b": 1})
        async with sdk_client(gateway.base_url + "/mcp", NO_MCP_KEY) as client:
            assert (await client.list_tools()).tools == []
            with pytest.raises(MCPError, match="Unknown tool"):
                await client.call_tool("demo__add", {"a": 1, "b": 1})

    anyio.run(scenario)
    assert not any(line.startswith("demo call big") for line in upstream.events())
    def denied() -> list[dict]:
        rows = [r for r in mcp_rows(gateway) if r["error_code"] == "denied"]
        return rows if {r["client_id"] for r in rows} == {"limited", "plain"} else []

    assert all(r["status"] == 403 for r in wait_for(denied, what="denied rows of both clients"))
    # a server this key may not use is not found at all on its own endpoint
    answer = httpx.post(gateway.base_url + "/mcp/local", headers={"Authorization": f"Bearer {LIMITED_KEY}"},
                        json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=10)
    assert answer.status_code == 404


def test_every_call_is_a_ledger_row_a_metric_and_an_audit_line(setup) -> None:
    gateway, _, _ = setup

    async def scenario() -> None:
        async with sdk_client(gateway.base_url + "/mcp") as client:
            await client.call_tool("demo__add", {"a": 987654, "b": 2})
            failed = await client.call_tool("demo__fail", {})
            assert failed.is_error

    anyio.run(scenario)
    def both() -> list[dict]:
        rows = [r for r in mcp_rows(gateway) if r["provider"] == "demo" and r["client_id"] == "app"]
        return rows if {"add", "fail"} <= {r["model"] for r in rows} else []

    rows = wait_for(both, what="ledger rows")
    ok = next(r for r in rows if r["model"] == "add")
    assert ok["status"] == 200 and ok["error_code"] is None and ok["bytes_in"] > 0 and ok["bytes_out"] > 0
    assert ok["tokens_in"] == 0 and ok["latency_ms"] > 0
    assert next(r for r in rows if r["model"] == "fail")["error_code"] == "tool_error"
    metrics = gateway.metrics()
    assert 'gateway_mcp_calls_total{server="demo",status="ok",tool="add"}' in metrics
    assert 'gateway_mcp_calls_total{server="demo",status="tool_error",tool="fail"}' in metrics
    assert 'gateway_mcp_call_duration_seconds_count{server="demo",status="ok",tool="add"}' in metrics
    audit = [line for line in gateway.logs().splitlines() if '"mcp tool call"' in line and '"tool":"add"' in line]
    assert audit and '"who":"client:app"' in audit[-1]
    assert "987654" not in gateway.logs()  # arguments and results are not kept (capture_content is off)
    calls = httpx.get(gateway.base_url + "/admin/v1/mcp/calls", params={"group_by": "tool"}, headers=ADMIN_HEADERS,
                      timeout=10).json()
    assert {g["key"] for g in calls["groups"]} >= {"add", "fail"}
    servers = httpx.get(gateway.base_url + "/admin/v1/mcp/servers", headers=ADMIN_HEADERS, timeout=10).json()
    assert {s["id"]: s["health"] for s in servers["servers"]} == {"demo": "up", "local": "up"}
    assert UPSTREAM_TOKEN not in str(servers) and UPSTREAM_TOKEN not in str(gateway.readiness())
    tools = httpx.get(gateway.base_url + "/admin/v1/mcp/servers/local/tools", headers=ADMIN_HEADERS, timeout=10).json()
    assert {t["name"]: t["allowed"] for t in tools["tools"]}["big"] is False
