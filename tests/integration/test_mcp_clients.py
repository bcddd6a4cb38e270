"""Real MCP clients from npm through ``/mcp``: the MCP Inspector's CLI mode, and Claude Code
calling a tool in a headless turn whose model is a fake Anthropic upstream behind the gateway."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.clients import client_binary
from tests.conftest import CLIENT_KEY
from tests.fake_anthropic import AnthropicBehaviour, FakeAnthropic
from tests.mcp_helpers import McpUpstream, client_entry, http_server, mcp_config, mcp_rows, wait_for

AUTH = f"Authorization: Bearer {CLIENT_KEY}"


@pytest.fixture
def upstream(tmp_path: Path):
    server = McpUpstream(tmp_path, "demo")
    yield server
    server.stop()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    (tmp_path / "tmp").mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(tmp_path / "tmp"),
            "LANG": "C.UTF-8", **extra}


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_cli_lists_and_calls_tools_through_mcp(start_gateway, upstream, tmp_path, era: str) -> None:
    inspector = client_binary("mcp-inspector")
    gateway = start_gateway(mcp_config([http_server("demo", upstream)],
                                       [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')]),
                            {"MCP_UPSTREAM_TOKEN": "x"})
    base = [str(inspector), "--cli", gateway.base_url + "/mcp", "--transport", "http", "--protocol-era", era,
            "--header", AUTH]

    def run(*args: str) -> dict:
        done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=120, env=_env(tmp_path),
                              cwd=tmp_path, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    names = {tool["name"] for tool in run("--method", "tools/list")["tools"]}
    assert {"demo__add", "demo__countdown"} <= names
    called = run("--method", "tools/call", "--tool-name", "demo__add", "--tool-arg", "a=2", "b=3")
    assert called["content"] == [{"type": "text", "text": "5"}] and called["isError"] is False
    assert "demo call add 2 3" in upstream.events()
    wait_for(lambda: [r for r in mcp_rows(gateway) if r["model"] == "add" and r["status"] == 200], what="the row")


def test_claude_code_calls_a_gateway_tool_in_a_headless_turn(start_gateway, upstream, tmp_path) -> None:
    claude = client_binary("claude")
    with FakeAnthropic() as model:
        model.script(AnthropicBehaviour(text="", tool_uses=[{"id": "toolu_gw1", "name": "mcp__gw__demo__add",
                                                             "input": {"a": 20, "b": 22}}]),
                     AnthropicBehaviour(text="The tool says 42."))
        providers = (f"llm_providers:\n  - id: anthropic\n    type: anthropic\n    base_url: {model.base_url}\n"
                     "    api_keys: [\"sk-ant-upstream-fake-0000\"]\n    models: [claude-haiku-4-5]\n")
        gateway = start_gateway(mcp_config([http_server("demo", upstream)],
                                           [client_entry("app", CLIENT_KEY, '{servers: ["*"]}')], providers),
                                {"MCP_UPSTREAM_TOKEN": "x"})
        env = _env(tmp_path, ANTHROPIC_BASE_URL=gateway.base_url, ANTHROPIC_API_KEY=CLIENT_KEY,
                   CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", DISABLE_AUTOUPDATER="1", ENABLE_TOOL_SEARCH="false",
                   CLAUDE_CODE_MAX_RETRIES="0")
        work = tmp_path / "work"
        work.mkdir()
        added = subprocess.run([str(claude), "mcp", "add", "--transport", "http", "gw", gateway.base_url + "/mcp",
                                "--header", AUTH], capture_output=True, text=True, timeout=120, env=env, cwd=work,
                               stdin=subprocess.DEVNULL)
        assert added.returncode == 0, added.stdout + added.stderr
        # claude-haiku-4-5: Claude Code's bodies for it carry no system message inside ``messages``
        turn = subprocess.run([str(claude), "-p", "Add 20 and 22 with the demo tool.", "--model", "claude-haiku-4-5",
                               "--allowedTools", "mcp__gw", "--output-format", "json"], capture_output=True, text=True,
                              timeout=300, env=env, cwd=work, stdin=subprocess.DEVNULL)
        assert turn.returncode == 0, turn.stdout + turn.stderr
        # a wrong key would make Claude Code drop the server silently and still succeed: check the call happened
        assert "demo call add 20 22" in upstream.events(), turn.stdout
        assert json.loads(turn.stdout)["result"] == "The tool says 42."
        second = [r for r in model.requests if r.path == "/v1/messages"][-1].json
        results = [b for m in second["messages"] for b in (m["content"] if isinstance(m["content"], list) else [])
                   if b.get("type") == "tool_result"]
        assert results and results[-1]["tool_use_id"] == "toolu_gw1" and "42" in json.dumps(results[-1]["content"])
    row = wait_for(lambda: [r for r in mcp_rows(gateway) if r["model"] == "add"], what="the ledger row")[0]
    assert row["client_id"] == "app" and row["provider"] == "demo" and row["status"] == 200
