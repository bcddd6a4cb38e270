"""One gateway for the tool-loop tests: an MCP server ``demo`` (``tests/mcp_upstream.py``, priced
0.01 per call), one whose ``whoami`` answers ``LEAK-0042`` (``leaky``) and one that is down
(``down``), in front of four model upstreams: ``fake`` (an OpenAI-compatible chat upstream),
``native`` (type openai: it serves ``/v1/responses`` itself), ``claude`` (Anthropic) and ``gem``
(Gemini). ``routing.max_tool_rounds`` is 2.

Clients: ``app`` may use every server; ``limited`` only ``demo`` without its ``echo`` and ``sleep``;
``guarded`` has the ``no-leak`` guard (blocks ``LEAK-`` and four digits in answers and tool results);
``two`` and ``two-stream`` may make two requests a minute; ``nomcp`` may use no MCP server.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ADMIN_HEADERS, CLIENT_KEY, Gateway, free_port
from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini
from tests.fake_upstream import FakeUpstream
from tests.mcp_helpers import UPSTREAM_TOKEN, McpUpstream, env_with_token

LIMITED_KEY = "sk-test-limited-key-0123456789"
GUARDED_KEY = "sk-test-guarded-key-0123456789"
TWO_KEY = "sk-test-two-requests-key-012345"
TWO_STREAM_KEY = "sk-test-two-streams-key-0123456"
NOMCP_KEY = "sk-test-no-mcp-key-0123456789"
ADD = {"type": "mcp", "server_label": "demo", "require_approval": "never"}


def loop_config(mcp_url: str, leaky_url: str, fake: FakeUpstream, native: FakeUpstream, claude: FakeAnthropic,
                gem: FakeGemini) -> str:
    return textwrap.dedent(f"""
    server: {{listen: "127.0.0.1:2906", request_timeout_s: 20}}
    routing: {{max_tool_rounds: 2}}
    mcp_servers:
      - id: demo
        url: {mcp_url}
        headers: {{Authorization: "Bearer ${{MCP_UPSTREAM_TOKEN}}"}}
        price_per_call_usd: 0.01
      - id: leaky
        url: {leaky_url}
      - id: down
        url: http://127.0.0.1:{free_port()}/mcp
        timeout_s: 2
    llm_providers:
      - {{id: fake, type: openai-compatible, base_url: "{fake.base_url}", api_keys: ["sk-upstream-key-one-111111"],
         models: [gpt-x], pricing: {{input_token_cost: 1.0, output_token_cost: 2.0}}}}
      - {{id: native, type: openai, base_url: "{native.base_url}/v1", api_keys: ["sk-upstream-native-222222"],
         models: [native-x]}}
      - {{id: claude, type: anthropic, base_url: "{claude.base_url}", api_keys: ["sk-ant-upstream-fake-0000000001"],
         anthropic_version: "2023-06-01", models: [claude-x]}}
      - {{id: gem, type: gemini, base_url: "{gem.base_url}/v1beta",
         api_keys: ["AIzaFakeUpstreamKey000000000000000000001"], models: [gemini-x]}}
    guardrails:
      guards:
        - {{name: no-leak, type: regex, on: output, action: block,
           patterns: [{{name: leak, pattern: 'LEAK-[0-9]{{4}}'}}]}}
    api_keys:
      - {{id: app, key: {CLIENT_KEY}, allowed_providers: ["*"], mcp: {{servers: ["*"]}}}}
      - {{id: limited, key: {LIMITED_KEY}, allowed_providers: ["*"],
         mcp: {{servers: [demo], tools: {{deny: [echo, sleep]}}}}}}
      - {{id: guarded, key: {GUARDED_KEY}, allowed_providers: ["*"], guardrails: [no-leak],
         mcp: {{servers: [demo, leaky]}}}}
      - {{id: two, key: {TWO_KEY}, allowed_providers: ["*"], limits: {{req_per_min: 2}}, mcp: {{servers: [demo]}}}}
      - {{id: two-stream, key: {TWO_STREAM_KEY}, allowed_providers: ["*"], limits: {{req_per_min: 2}},
         mcp: {{servers: [demo]}}}}
      - {{id: nomcp, key: {NOMCP_KEY}, allowed_providers: ["*"]}}
    """)


@pytest.fixture(scope="session")
def claude_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(scope="session")
def gemini_server() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture(scope="module")
def mcp_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpUpstream]:
    upstream = McpUpstream(tmp_path_factory.mktemp("mcp"), "demo", "--token", UPSTREAM_TOKEN)
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def leaky_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpUpstream]:
    """An MCP server whose ``whoami`` answers what the ``no-leak`` guard blocks."""
    upstream = McpUpstream(tmp_path_factory.mktemp("mcp"), "LEAK-0042")
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeUpstream, fake_server_2: FakeUpstream,
            claude_server: FakeAnthropic, gemini_server: FakeGemini, mcp_upstream: McpUpstream,
            leaky_upstream: McpUpstream) -> Iterator[Gateway]:
    config = loop_config(mcp_upstream.url, leaky_upstream.url, fake_server, fake_server_2, claude_server,
                         gemini_server)
    gateway = Gateway(tmp_path_factory.mktemp("loop"), config, env_with_token())
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(autouse=True)
def fresh(fake_server: FakeUpstream, fake_server_2: FakeUpstream, claude_server: FakeAnthropic,
          gemini_server: FakeGemini) -> Iterator[None]:
    for server in (fake_server, fake_server_2, claude_server, gemini_server):
        server.reset()
    yield


def sdk(gateway: Gateway, key: str = CLIENT_KEY, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=key, max_retries=0, **kwargs)


def respond(gateway: Gateway, key: str = CLIENT_KEY, *, raw: bool = False, **body: Any) -> Any:
    """``responses.create`` with the official SDK (``raw``: ``with_raw_response``, for the headers)."""
    client = sdk(gateway, key)
    return (client.responses.with_raw_response.create if raw else client.responses.create)(**body)


def chat(gateway: Gateway, key: str = CLIENT_KEY, **body: Any) -> Any:
    """``chat.completions.create`` with the official SDK."""
    return sdk(gateway, key).chat.completions.create(**body)


def rows_of(gateway: Gateway, request_id: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The ledger rows of one request (oldest first), once ``count`` of them are written."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = httpx.get(gateway.base_url + "/admin/v1/requests/recent", params={"limit": 500},
                         headers=ADMIN_HEADERS, timeout=5).json()["requests"]
        found = [row for row in rows if row["request_id"] == request_id][::-1]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"request {request_id} has {len(found)} ledger rows, not {count}: {found}")


def chat_bodies(server: FakeUpstream) -> list[dict[str, Any]]:
    """The bodies of the chat (or messages, or generate) requests a fake received, in order."""
    return [r.json for r in server.requests if r.method == "POST" and isinstance(r.json, dict)]
