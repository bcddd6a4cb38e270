"""One guarded gateway per test module, in front of the three fake upstreams (OpenAI-shaped,
Anthropic, Gemini) and a fake webhook, with the guards the tests of this package use:

- ``secrets`` (block, on input; API keys of OpenAI, Anthropic and AWS shapes, private keys, the
  providers' own keys) on every request (``guardrails.default``);
- per alias: ``masked`` (pii masked with restore), ``logged`` (pii only logged), ``orders`` (an
  operator pattern that blocks), ``leaky`` (a pattern that blocks answers: ``LEAK-`` and four
  digits), ``moderated`` (the fake upstream's moderations model, blocking violence); ``claude``
  and ``gem`` route masked requests to the Anthropic and Gemini fakes, ``claude-leaky`` and
  ``gem-leaky`` with the answer-blocking pattern, ``claude-plain`` and ``gem-plain`` with the
  default guards only (their requests pass through untranslated); ``masked-cached`` is
  ``masked`` with the response cache; ``resp-masked`` and
  ``resp-leaky`` route to a fake Responses API (``fake_responses.py``), passed through;
- per alias, one type and action each: ``iban-blocked`` (pii), ``gh-masked`` and ``gh-logged``
  (GitHub tokens: secrets), ``orders-masked`` (restored) and ``orders-logged`` (regex);
- per client: ``partner`` adds the webhook guard, ``tools`` pii (masked with restore) and the
  answer-blocking pattern (for MCP tool calls, which name no alias);
- an MCP server ``demo`` (``tests/mcp_upstream.py``) every client may use.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_HEADERS, CLIENT_KEY, Gateway
from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini
from tests.fake_upstream import FakeUpstream
from tests.fake_webhook import FakeWebhook
from tests.integration.guardrails.fake_responses import FakeResponses
from tests.mcp_helpers import McpUpstream

PARTNER_KEY = "sk-test-partner-key-0123456789"
TOOLS_KEY = "sk-test-tools-key-0123456789"
# a key of OpenAI's shape (never a real one): what the secrets guard blocks
LEAKED_KEY = "sk-proj-4fQ9xT2mLp8Rv1cZ7nWk3YbHs6Gd0Ae5"
EMAIL = "jane.roe@example.com"


ALIASES = """
model_aliases:
  plain: fake:fake-gpt-4o
  masked: {targets: [fake:fake-gpt-4o], guardrails: [pii]}
  logged: {targets: [fake:fake-gpt-4o], guardrails: [pii-log]}
  orders: {targets: [fake:fake-gpt-4o], guardrails: [orders]}
  leaky: {targets: [fake:fake-gpt-4o], guardrails: [no-leak]}
  moderated: {targets: [fake:fake-gpt-4o], guardrails: [moderation]}
  claude: {targets: [claude:claude-x], guardrails: [pii]}
  claude-plain: claude:claude-x
  gem: {targets: [gem:gemini-x], guardrails: [pii]}
  gem-plain: gem:gemini-x
  claude-leaky: {targets: [claude:claude-x], guardrails: [no-leak]}
  gem-leaky: {targets: [gem:gemini-x], guardrails: [no-leak]}
  resp-masked: {targets: [resp:resp-x], guardrails: [pii]}
  resp-leaky: {targets: [resp:resp-x], guardrails: [no-leak]}
  iban-blocked: {targets: [fake:fake-gpt-4o], guardrails: [iban-block]}
  gh-masked: {targets: [fake:fake-gpt-4o], guardrails: [gh-mask]}
  gh-logged: {targets: [fake:fake-gpt-4o], guardrails: [gh-log]}
  orders-masked: {targets: [fake:fake-gpt-4o], guardrails: [orders-mask]}
  orders-logged: {targets: [fake:fake-gpt-4o], guardrails: [orders-log]}
  masked-cached: {targets: [fake:fake-gpt-4o], guardrails: [pii], cache: {ttl_s: 600, max_mb: 1}}
"""
ORDER_ID = "[{name: order_id, pattern: 'ORD-[0-9]{6}'}]"
GUARDS = f"""
guardrails:
  default: [secrets]
  guards:
    - {{name: secrets, type: secrets, on: input, action: block,
       entities: [openai_key, anthropic_key, aws_access_key, private_key]}}
    - {{name: gh-mask, type: secrets, on: input, action: mask, entities: [github_token]}}
    - {{name: gh-log, type: secrets, on: input, action: log, entities: [github_token]}}
    - {{name: iban-block, type: pii, on: input, action: block, entities: [iban]}}
    - {{name: orders-mask, type: regex, on: both, action: mask, restore: true, patterns: {ORDER_ID}}}
    - {{name: orders-log, type: regex, on: input, action: log, patterns: {ORDER_ID}}}
    - {{name: orders, type: regex, on: input, action: block, patterns: {ORDER_ID}}}
    - {{name: pii, type: pii, on: both, action: mask, restore: true}}
    - {{name: pii-log, type: pii, on: input, action: log}}
    - {{name: no-leak, type: regex, on: output, action: block, patterns: [{{name: leak, pattern: 'LEAK-[0-9]{{4}}'}}]}}
    - {{name: moderation, type: moderation, on: input, action: block, provider: fake, categories: [violence]}}
"""


def guard_config(fake: FakeUpstream, claude: FakeAnthropic, gemini: FakeGemini, responses: FakeResponses,
                 hook: FakeWebhook, mcp_url: str | None = None) -> str:
    """The config (see the module docstring); ``mcp_url``: an MCP server ``demo`` every client may use."""
    mcp = "{servers: [\"*\"]}" if mcp_url else "{}"
    servers = f"mcp_servers:\n  - id: demo\n    url: {mcp_url}\n    price_per_call_usd: 0.01\n" if mcp_url else ""
    providers = textwrap.dedent(f"""
    server: {{listen: "127.0.0.1:2906", request_timeout_s: 10}}
    llm_providers:
      - {{id: fake, type: openai-compatible, base_url: "{fake.base_url}", api_keys: ["sk-upstream-key-one-111111"],
         models: [fake-gpt-4o]}}
      - {{id: claude, type: anthropic, base_url: "{claude.base_url}", api_keys: ["sk-ant-upstream-fake-0000000001"],
         anthropic_version: "2023-06-01", models: [claude-x]}}
      - {{id: gem, type: gemini, base_url: "{gemini.base_url}/v1beta",
         api_keys: ["AIzaFakeUpstreamKey000000000000000000001"], models: [gemini-x]}}
      - {{id: resp, type: openai, base_url: "{responses.base_url}/v1", api_keys: ["sk-upstream-responses-0000000001"],
         models: [resp-x]}}
    api_keys:
      - {{id: app, key: {CLIENT_KEY}, mcp: {mcp}}}
      - {{id: partner, key: {PARTNER_KEY}, guardrails: [hook], mcp: {mcp}}}
      - {{id: tools, key: {TOOLS_KEY}, guardrails: [pii, no-leak], mcp: {mcp}}}
    """)
    hook_guard = (f'    - {{name: hook, type: webhook, on: input, action: block, url: "{hook.url}", timeout_s: 1, '
                  "on_error: block}\n")
    return servers + providers + ALIASES + GUARDS + hook_guard


@pytest.fixture(scope="session")
def claude_server() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gemini_server() -> Iterator[FakeGemini]:
    server = FakeGemini()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def responses_server() -> Iterator[FakeResponses]:
    server = FakeResponses()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def webhook() -> Iterator[FakeWebhook]:
    with FakeWebhook() as hook:
        yield hook


@pytest.fixture(scope="module")
def mcp_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[McpUpstream]:
    upstream = McpUpstream(tmp_path_factory.mktemp("mcp"), "demo")
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeUpstream, claude_server: FakeAnthropic,
            gemini_server: FakeGemini, responses_server: FakeResponses, webhook: FakeWebhook,
            mcp_upstream: McpUpstream) -> Iterator[Gateway]:
    config = guard_config(fake_server, claude_server, gemini_server, responses_server, webhook, mcp_upstream.url)
    gateway = Gateway(tmp_path_factory.mktemp("guarded"), config)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(autouse=True)
def fresh(fake_server: FakeUpstream, claude_server: FakeAnthropic, gemini_server: FakeGemini,
          responses_server: FakeResponses, webhook: FakeWebhook) -> Iterator[None]:
    """Every test starts with the fakes' records empty and their default answers."""
    for server in (fake_server, claude_server, gemini_server, responses_server):
        server.reset()
    webhook.answer()
    webhook.requests.clear()
    yield


def upstream_calls(*servers: FakeUpstream) -> list[Any]:
    """Every request the fakes received (chat, embeddings, messages, generate, the rest of the surface)."""
    found: list[Any] = []
    for server in servers:
        found += server.requests
        found += server.surface.calls
    return found


def recent_rows(gateway: Gateway, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The ledger's latest ``count`` rows (or more), newest first, once written."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = httpx.get(gateway.base_url + "/admin/v1/requests/recent", params={"limit": 200},
                         headers=ADMIN_HEADERS, timeout=5).json()["requests"]
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"the ledger holds {len(rows)} rows, not {count}")


def row_of(gateway: Gateway, request_id: str) -> dict[str, Any]:
    """The ledger row of one request (its ``x-request-id``), once written."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for row in recent_rows(gateway, 0):
            if row["request_id"] == request_id:
                return row
        time.sleep(0.1)
    raise AssertionError(f"no ledger row for request {request_id}")
