"""The tool loop traced: one request span for the whole loop, with an attempt span per model round
and an ``execute_tool`` span per MCP call under it, the request's usage every round's."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MASTER_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream, prompt_tokens_of
from tests.integration.mcp_loop.conftest import ADD, chat_bodies, respond
from tests.mcp_helpers import McpUpstream, env_with_token
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan


@pytest.fixture
def traced(tmp_path: Path, fake: FakeUpstream, mcp_upstream: McpUpstream) -> Iterator[tuple[Gateway, OtlpReceiver]]:
    config = textwrap.dedent(f"""
    mcp_servers:
      - {{id: demo, url: "{mcp_upstream.url}", headers: {{Authorization: "Bearer ${{MCP_UPSTREAM_TOKEN}}"}}}}
    llm_providers:
      - {{id: fake, type: openai-compatible, base_url: "{fake.base_url}", api_keys: ["sk-upstream-key-one-111111"],
         models: [gpt-x]}}
    api_keys:
      - {{id: app, key: sk-test-client-key-0123456789, allowed_providers: ["*"], mcp: {{servers: ["*"]}}}}
    """)
    with OtlpReceiver() as receiver:
        gateway = Gateway(tmp_path, config, {**env_with_token(), "OTEL_BSP_SCHEDULE_DELAY": "100"})
        gateway.env_path.write_text(f"GATEWAY_MASTER_KEY={MASTER_KEY}\nOTEL_EXPORTER_OTLP_ENDPOINT={receiver.url}\n")
        gateway.start()
        yield gateway, receiver
        gateway.stop()


def test_one_span_for_the_loop_with_its_rounds_and_calls(traced: tuple[Gateway, OtlpReceiver],
                                                         fake: FakeUpstream, mcp_upstream: McpUpstream) -> None:
    gateway, receiver = traced
    fake.script(Behaviour(tool_calls=[{"name": "mcp_demo__add", "arguments": {"a": 1, "b": 2}, "id": "call_1"}]),
                Behaviour(text="Three."))
    respond(gateway, model="fake:gpt-x", input="1+2?", tools=[ADD], extra_headers={"x-request-id": "traced-loop"})

    def complete(spans: list[ReceivedSpan]) -> bool:
        return any(s.kind == "server" for s in spans) and len([s for s in spans if s.kind != "server"]) >= 3

    spans = receiver.wait_for(complete)
    [request] = [s for s in spans if s.kind == "server"]
    assert request.attributes["gateway.request.id"] == "traced-loop"
    children = [s for s in spans if s.parent_id == request.span_id]
    assert sorted(s.kind for s in children) == ["client", "client", "internal"]
    [tool] = [s for s in children if s.kind == "internal"]
    assert (tool.name, tool.attributes["gen_ai.tool.call.id"]) == ("execute_tool add", "call_1")
    assert tool.attributes["server.port"] == mcp_upstream.port
    first, second = chat_bodies(fake)
    assert request.attributes["gen_ai.usage.input_tokens"] == prompt_tokens_of(first) + prompt_tokens_of(second)
