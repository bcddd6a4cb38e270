"""MCP tool calls under limits and budgets, and when things go wrong: a server down or slow, a
result too large, a client that goes away (the upstream sees the cancel), hot reload, and
sessions served by two workers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import httpx
import pytest

from tests.conftest import CLIENT_KEY, free_port
from tests.mcp_helpers import (
    McpUpstream,
    client_entry,
    http_server,
    mcp_config,
    mcp_rows,
    sdk_client,
    stdio_server,
    text_of,
    wait_for,
)

MODERN_HEADERS = {"Authorization": f"Bearer {CLIENT_KEY}", "Accept": "application/json, text/event-stream",
                  "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"}
META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def one_server(upstream: McpUpstream, extra: str = "") -> str:
    return mcp_config([http_server("demo", upstream)], [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')], extra)


@pytest.fixture
def upstream(tmp_path: Path):
    server = McpUpstream(tmp_path, "demo")
    yield server
    server.stop()


def test_tool_calls_per_min_and_the_budget(start_gateway, upstream) -> None:
    config = mcp_config(
        [http_server("demo", upstream, "    price_per_call_usd: 0.4\n"),
         http_server("free", upstream)],
        [client_entry("app", CLIENT_KEY, '{servers: ["*"]}',
                      "    limits: {tool_calls_per_min: 5}\n    budget: {daily_usd: 1.0}\n")])
    gateway = start_gateway(config, {"MCP_UPSTREAM_TOKEN": "x"})

    async def scenario() -> list[str]:
        texts = []
        async with sdk_client(gateway.base_url + "/mcp") as client:
            for name in ("demo__add",) * 4 + ("free__add",) * 3:
                result = await client.call_tool(name, {"a": 1, "b": 2})
                texts.append("error: " + text_of(result) if result.is_error else text_of(result))
        return texts

    texts = anyio.run(scenario)
    # admitted while the day's spend is under the budget (so it may pass it by one call's price)
    assert texts[:3] == ["3", "3", "3"]
    assert texts[3].startswith("error: Budget exceeded") and "daily budget of $1 is spent" in texts[3]
    # a free server costs nothing, but its calls count against tool_calls_per_min (a refused one does not)
    assert texts[4:6] == ["3", "3"]
    assert texts[6].startswith("error: Rate limited") and "5 tool calls per minute" in texts[6]
    rows = wait_for(lambda: (found := mcp_rows(gateway)) and len(found) >= 7 and found, what="seven rows")
    assert sorted(r["error_code"] or "ok" for r in rows) == ["budget_exceeded"] + ["ok"] * 5 + ["rate_limited"]
    assert round(sum(r["cost"] for r in rows), 6) == 1.2
    assert sum(1 for line in upstream.events() if line.startswith("demo call add")) == 5


def test_a_server_down_or_slow_is_left_out_and_its_calls_say_so(start_gateway, upstream, tmp_path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    config = mcp_config(
        [http_server("demo", upstream), f"  - id: gone\n    url: {dead}\n",
         http_server("slow", upstream, "    timeout_s: 1\n"),
         http_server("tiny", upstream, "    max_result_mb: 0.01\n")],
        [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')])
    gateway = start_gateway(config, {"MCP_UPSTREAM_TOKEN": "x"})

    async def scenario() -> dict[str, str]:
        out = {}
        async with sdk_client(gateway.base_url + "/mcp") as client:
            names = {t.name for t in (await client.list_tools()).tools}
            out["listed"] = " ".join(sorted({n.split("__")[0] for n in names}))
            for key, name, args in (("gone", "gone__add", {"a": 1, "b": 1}), ("slow", "slow__sleep", {"seconds": 3}),
                                    ("tiny", "tiny__big", {"size": 20000}), ("small", "tiny__big", {"size": 10})):
                result = await client.call_tool(name, args)
                out[key] = ("error: " if result.is_error else "") + text_of(result)
        return out

    out = anyio.run(scenario)
    assert out["listed"] == "demo slow tiny"
    assert out["gone"].startswith("error: The MCP server 'gone' is unavailable")
    assert out["slow"] == "error: The MCP server 'slow' did not answer within 1 s; the call was abandoned."
    assert out["tiny"].startswith("error: The result of 'big' from MCP server 'tiny' is larger than the gateway allows")
    assert out["small"] == "x" * 10
    logs = gateway.logs()
    assert '"mcp server down: left out of tool lists until it answers"' in logs and '"server":"gone"' in logs
    health = {s["id"]: s for s in gateway.readiness()["mcp_servers"]}
    assert health["gone"]["health"] == "down" and health["slow"]["health"] == "slow"
    assert health["demo"]["health"] == "up"
    codes = {(r["provider"], r["error_code"]) for r in wait_for(lambda: mcp_rows(gateway) if len(mcp_rows(gateway)) >= 4
                                                               else None, what="rows")}
    assert {("gone", "unavailable"), ("slow", "timeout"), ("tiny", "too_large"), ("tiny", None)} <= codes


@pytest.mark.parametrize("server", ["http", "stdio"])
def test_a_client_that_goes_away_cancels_the_upstream_call(start_gateway, upstream, tmp_path, server: str) -> None:
    events = tmp_path / "local-events.txt"
    config = mcp_config([http_server("demo", upstream), stdio_server("local", events)],
                        [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')])
    gateway = start_gateway(config, {"MCP_UPSTREAM_TOKEN": "x"})
    name = "demo__countdown" if server == "http" else "local__countdown"
    seen = upstream.events if server == "http" else lambda: events.read_text().splitlines() if events.exists() else []
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": name, "arguments": {"steps": 100, "delay_s": 0.2},
                       "_meta": {**META, "progressToken": 1}}}
    with httpx.Client(timeout=30) as http, http.stream("POST", gateway.base_url + "/mcp", json=body,
                                                        headers={**MODERN_HEADERS, "Mcp-Name": name}) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in answer.iter_lines() if line.startswith("data:"))
        assert '"notifications/progress"' in first and '"progressToken":1' in first
    # the stream is closed after the first progress: the gateway cancels the upstream call, which records it
    wait_for(lambda: any("countdown cancelled at step" in line for line in seen()), what="the upstream cancel")
    row = wait_for(lambda: [r for r in mcp_rows(gateway) if r["error_code"] == "cancelled"], what="the row")[0]
    assert row["status"] == 499 and row["model"] == "countdown"


def test_a_legacy_client_cancels_with_a_notification(start_gateway, upstream) -> None:
    gateway = start_gateway(one_server(upstream), {"MCP_UPSTREAM_TOKEN": "x"})

    async def scenario() -> None:
        async with sdk_client(gateway.base_url + "/mcp", mode="legacy") as client:
            with anyio.move_on_after(1.5):
                await client.call_tool("demo__sleep", {"seconds": 20})
            assert text_of(await client.call_tool("demo__add", {"a": 1, "b": 1})) == "2"

    anyio.run(scenario)
    wait_for(lambda: "demo sleep cancelled" in upstream.events(), what="the upstream cancel")


def test_hot_reload_adds_and_removes_servers_and_calls_in_flight_finish(start_gateway, upstream, tmp_path) -> None:
    events = tmp_path / "local-events.txt"
    app = [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')]
    gateway = start_gateway(mcp_config([http_server("demo", upstream)], app), {"MCP_UPSTREAM_TOKEN": "x"})
    version = gateway.readiness()["config"]["version"]

    async def names() -> set[str]:
        async with sdk_client(gateway.base_url + "/mcp") as client:
            return {t.name.split("__")[0] for t in (await client.list_tools()).tools}

    assert anyio.run(names) == {"demo"}
    gateway.write_config(mcp_config([http_server("demo", upstream), stdio_server("local", events)], app))
    version = gateway.wait_for_version_change(version)
    assert wait_for(lambda: anyio.run(names) == {"demo", "local"}, what="local listed")
    pid = wait_for(lambda: _process_of("local"), what="the stdio process")

    async def long_call() -> str:
        async with sdk_client(gateway.base_url + "/mcp") as client:
            return text_of(await client.call_tool("local__sleep", {"seconds": 2}))

    async def reload_during_call() -> str:
        async with anyio.create_task_group() as group:
            result: list[str] = []

            async def run() -> None:
                result.append(await long_call())

            group.start_soon(run)
            started = lambda: events.exists() and "local sleep start 2.0" in events.read_text()  # noqa: E731
            await anyio.to_thread.run_sync(lambda: wait_for(started, what="the call to start"))
            gateway.write_config(mcp_config([http_server("demo", upstream)], app))
        return result[0]

    assert anyio.run(reload_during_call) == "slept"  # the call in flight finished on the removed server
    assert anyio.run(names) == {"demo"}
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the removed server's process to stop")


def test_sessions_work_across_two_workers(start_gateway, upstream, redis_server) -> None:
    storage = f'storage: {{runtime: {{type: redis, addr: "{redis_server.addr}", prefix: "mcp-sessions:"}}}}\n'
    gateway = start_gateway(one_server(upstream, storage), {"MCP_UPSTREAM_TOKEN": "x"}, workers=2)

    async def scenario() -> None:
        async with sdk_client(gateway.base_url + "/mcp", mode="legacy") as client:
            for n in range(30):  # new connections now and then: both workers answer requests of the session
                assert text_of(await client.call_tool("demo__add", {"a": n, "b": 1})) == str(n + 1)

    anyio.run(scenario)
    pids = {line.split('"pid":')[1].split(",")[0] for line in gateway.logs().splitlines() if '"gateway ready"' in line}
    assert len(pids) == 2
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    auth = {"Authorization": f"Bearer {CLIENT_KEY}", "Accept": "application/json, text/event-stream"}
    url = gateway.base_url + "/mcp"
    with httpx.Client(base_url=gateway.base_url, headers=auth, timeout=10) as http:
        sid = http.post("/mcp", json=init).headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        session = {**auth, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
        # a new connection each time: the two workers share the accepts, and each must know the session
        assert all(httpx.post(url, json=ping, headers=session).json()["result"] == {} for _ in range(20))
        assert http.post("/mcp", json=ping).status_code == 400  # no session id
        assert http.post("/mcp/demo", json=ping, headers=session).status_code == 404  # another endpoint's
        assert http.delete("/mcp", headers=session).status_code == 204
        assert {httpx.post(url, json=ping, headers=session).status_code for _ in range(20)} == {404}
        forged = sid[:-4] + ("0000" if not sid.endswith("0000") else "1111")
        assert http.post("/mcp", json=ping, headers={**session, "Mcp-Session-Id": forged}).status_code == 404


def _process_of(server_id: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"mcp_upstream.py" in b" ".join(cmd) and server_id.encode() in cmd and b"stdio" in cmd:
                return int(entry.name)
    return None


def test_errors_are_json_rpc_with_the_right_status(start_gateway, upstream) -> None:
    gateway = start_gateway(one_server(upstream), {"MCP_UPSTREAM_TOKEN": "x"})
    with httpx.Client(base_url=gateway.base_url, timeout=10) as http:
        assert http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}).status_code == 401
        headers = {**MODERN_HEADERS, "Mcp-Method": "tools/list"}
        listed = http.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list",
                                                          "params": {"_meta": META}})
        assert listed.status_code == 200 and listed.json()["result"]["cacheScope"] == "private"
        bad = http.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == -32602
        mismatch = http.post("/mcp", headers={**headers, "Mcp-Method": "tools/call"},
                             json={"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": META}})
        assert mismatch.status_code == 400 and mismatch.json()["error"]["code"] == -32020
        version = http.post("/mcp", headers={**headers, "MCP-Protocol-Version": "2099-01-01"},
                            json={"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"_meta": META}})
        assert version.status_code == 400 and version.json()["error"]["data"]["requested"] == "2099-01-01"
        unknown = http.post("/mcp", headers={**headers, "Mcp-Method": "nope/nope"},
                            json={"jsonrpc": "2.0", "id": 5, "method": "nope/nope", "params": {"_meta": META}})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == -32601
        assert http.get("/mcp", headers=headers).status_code == 405
        assert http.post("/mcp", headers=headers, content=b"[1]").status_code == 400
        notified = http.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "method": "notifications/x",
                                                            "params": {"_meta": META}})
        assert notified.status_code == 202



def test_an_upstream_of_the_previous_revision_and_its_lost_session(start_gateway, tmp_path) -> None:
    old = McpUpstream(tmp_path, "old", "--legacy-only")
    try:
        app = [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')]
        gateway = start_gateway(mcp_config([http_server("old", old)], app), {"MCP_UPSTREAM_TOKEN": "x"})
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        async def scenario() -> str:
            async with sdk_client(gateway.base_url + "/mcp") as client:
                assert text_of(await client.call_tool("old__add", {"a": 2, "b": 2})) == "4"
                done = await client.call_tool("old__countdown", {"steps": 2, "delay_s": 0.05},
                                              progress_callback=on_progress)
                return text_of(done)

        assert anyio.run(scenario) == "counted 2" and seen == [1, 2]
        assert gateway.readiness()["mcp_servers"][0]["revision"] == "2025-11-25"
        # the server restarts and forgets the gateway's session: the gateway opens a new one and retries
        old.stop()
        old = McpUpstream(tmp_path, "old", "--legacy-only", port=old.port)
        assert anyio.run(scenario) == "counted 2"
        assert '"mcp session lost; opening a new one"' in gateway.logs()
    finally:
        old.stop()


def test_a_stdio_server_that_dies_is_started_again(start_gateway, tmp_path) -> None:
    events = tmp_path / "local-events.txt"
    gateway = start_gateway(mcp_config([stdio_server("local", events)],
                                       [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')]))
    first = wait_for(lambda: _process_of("local"), what="the stdio process")

    async def whoami() -> str:
        async with sdk_client(gateway.base_url + "/mcp") as client:
            result = await client.call_tool("local__whoami", {})
            return ("error: " if result.is_error else "") + text_of(result)

    assert anyio.run(whoami) == "local"
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: (pid := _process_of("local")) and pid != first, what="a new process")
    assert wait_for(lambda: anyio.run(whoami) == "local", what="calls to work again")
    status = {s["id"]: s for s in gateway.readiness()["mcp_servers"]}["local"]
    assert status["restarts"] >= 1 and status["process"] == "up"
    assert '"mcp stdio server stopped; starting it again"' in gateway.logs()
