"""The MCP parts of the config: ``mcp_servers``, a client's ``mcp`` and ``limits.tool_calls_per_min``,
``observability.capture_content``; errors with their path and line; who may use which tool."""

from __future__ import annotations

import pytest

from gateway.config.loader import ConfigError, parse_config
from gateway.config.snapshot import build_snapshot
from gateway.core.mcp import McpAccess, ToolRules, usable
from gateway.pipeline.auth import MASTER


def snapshot(text: str, env: dict[str, str] | None = None):
    return build_snapshot(parse_config(text.encode(), "c.yaml", env or {}), "c.yaml")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        snapshot(text)
    return [issue.render("c.yaml") for issue in info.value.issues]


def test_servers_clients_and_headers_from_the_environment():
    snap = snapshot("""
mcp_servers:
  - id: github
    url: https://mcp.example.test/mcp
    headers: {Authorization: "Bearer ${GITHUB_MCP_TOKEN}"}
    timeout_s: 20
    tools: {deny: ["delete_*"]}
    price_per_call_usd: 0.01
  - id: files
    command: /usr/bin/mcp-files
    args: ["--root", "/srv"]
    env: {FILES_TOKEN: "${FILES_TOKEN:-none}"}
observability: {capture_content: true}
api_keys:
  - id: agent
    key: sk-agent-key-000000
    limits: {tool_calls_per_min: 30}
    mcp: {servers: [github], tools: {allow: ["github__*"], deny: ["*merge*"]}}
  - id: plain
    key: sk-plain-key-000000
""", {"GITHUB_MCP_TOKEN": "ghp-secret-token"})
    github, files = snap.mcp_servers["github"], snap.mcp_servers["files"]
    assert github.transport == "http" and dict(github.headers) == {"Authorization": "Bearer ghp-secret-token"}
    assert "ghp-secret-token" not in repr(github)  # headers and env never show in a repr (logs)
    assert files.transport == "stdio" and files.args == ("--root", "/srv")
    assert dict(files.env) == {"FILES_TOKEN": "none"}
    assert snap.observability.capture_content is True
    agent, plain = sorted(snap.clients.values(), key=lambda c: c.id)
    assert agent.tool_calls_per_min == 30
    assert usable(github, agent.mcp, "search_issues")
    assert not usable(github, agent.mcp, "delete_repo")  # the server's rules
    assert not usable(github, agent.mcp, "merge_pr")  # the client's rules
    assert not usable(files, agent.mcp, "read")  # a server it was not given
    assert plain.mcp == McpAccess() and not usable(github, plain.mcp, "search_issues")  # none by default
    assert usable(files, MASTER.mcp, "read")


def test_client_rules_see_the_own_and_the_aggregate_name():
    rules = McpAccess(None, ToolRules(allow=("*",), deny=("write",)))
    assert not rules.tool_allowed("files", "write") and rules.tool_allowed("files", "read")
    only = McpAccess(frozenset({"files"}), ToolRules(allow=("files__read",)))
    assert only.tool_allowed("files", "read") and not only.tool_allowed("files", "write")


def test_errors_name_the_path_and_line():
    found = errors("""
mcp_servers:
  - id: a__b
    url: http://x.test/mcp
  - id: both
    url: http://x.test/mcp
    command: run-it
  - id: neither
  - id: ok
    url: ftp://x.test
    timeout_s: 0
api_keys:
  - key: sk-some-key-00000
    limits: {tool_calls_per_min: 0}
    mcp: {servers: "*", tool: {}}
""")
    assert any(e.startswith("c.yaml:3: mcp_servers[0].id: ") and "'__'" in e for e in found), found
    assert any(e.startswith("c.yaml:5: mcp_servers[1]: ") and "exactly one of 'url'" in e for e in found), found
    assert any(e.startswith("c.yaml:8: mcp_servers[2]: ") for e in found), found
    assert any(e.startswith("c.yaml:10: mcp_servers[3].url: ") for e in found), found
    assert any(e.startswith("c.yaml:11: mcp_servers[3].timeout_s: ") for e in found), found
    assert any(e.startswith("c.yaml:14: api_keys[0].limits.tool_calls_per_min: ") for e in found), found
    assert any(e.startswith("c.yaml:15: api_keys[0].mcp.servers: ") for e in found), found
    assert any(e.startswith("c.yaml:15: api_keys[0].mcp.tool: unknown field") for e in found), found


def test_duplicates_and_unknown_names():
    assert errors("""
mcp_servers:
  - {id: a, url: "http://x.test/mcp"}
  - {id: a, command: run-it}
""") == ["c.yaml:4: mcp_servers[1].id: duplicate MCP server id 'a'"]
    snap = snapshot("""
mcp_servers:
  - {id: a, url: "http://x.test/mcp"}
api_keys:
  - {key: sk-some-key-00000, mcp: {servers: [a, b]}}
""")
    assert any("mcp.servers names 'b'" in w for w in snap.warnings)
