"""No route that carries text skips the guard stage.

Every route of the route table is either a text route, listed here with a request that sends a
secret on it, or listed as carrying no text to a model (with why); a new route fails the first
test until it is classified. Each text route's request must be refused with 400
``guardrail_blocked`` in the route's dialect, and none of the fake upstreams (nor the MCP server)
may have received anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gateway.api.admin import ADMIN_ROUTES
from gateway.api.routes import TABLE
from gateway.api.ui.resources import UI_ROUTES
from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini
from tests.fake_upstream import FakeUpstream
from tests.integration.guardrails.conftest import LEAKED_KEY, upstream_calls
from tests.integration.guardrails.fake_responses import FakeResponses
from tests.mcp_helpers import McpUpstream

SECRET = f"here is my key {LEAKED_KEY}"
BEARER = {"Authorization": f"Bearer {CLIENT_KEY}"}
ANTHROPIC = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
GOOGLE = {"x-goog-api-key": CLIENT_KEY}
MCP = {**BEARER, "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
       "Mcp-Method": "tools/call", "Mcp-Name": "demo__echo"}
MCP_META = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
USER = [{"role": "user", "content": SECRET}]


@dataclass(frozen=True)
class Case:
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=lambda: BEARER)
    dialect: str = "openai"


# the text routes (by their first path in the table) and the requests that carry a secret on them
TEXT_ROUTES: dict[str, list[Case]] = {
    "/v1/chat/completions": [Case("/v1/chat/completions", {"model": "plain", "messages": USER}),
                             Case("/v1/chat/completions", {"model": "plain", "messages": USER, "stream": True})],
    "/v1/completions": [Case("/v1/completions", {"model": "plain", "prompt": SECRET})],
    "/v1/embeddings": [Case("/v1/embeddings", {"model": "plain", "input": [SECRET]})],
    "/v1/images/generations": [Case("/v1/images/generations", {"model": "plain", "prompt": SECRET})],
    "/v1/moderations": [Case("/v1/moderations", {"input": SECRET})],
    "/v1/audio/speech": [Case("/v1/audio/speech", {"model": "plain", "input": SECRET, "voice": "alloy"})],
    "/v1/responses": [Case("/v1/responses", {"model": "resp-masked", "input": SECRET}),  # passed through
                      Case("/v1/responses", {"model": "claude-plain", "input": SECRET, "stream": True})],  # to chat
    "/v1/files": [Case("/v1/threads/thread_abc/messages", {"role": "user", "content": SECRET}),
                  Case("/v1/assistants", {"model": "plain", "instructions": SECRET})],
    "/v1/threads": [Case("/v1/threads", {"messages": USER})],
    "/v1/files/{object_id}": [Case("/v1/assistants/asst_abc", {"instructions": SECRET})],
    "/v1/threads/runs": [Case("/v1/threads/runs", {"assistant_id": "asst_abc", "thread": {"messages": USER}}),
                         Case("/v1/threads/thread_abc/runs/run_abc/submit_tool_outputs",
                              {"tool_outputs": [{"tool_call_id": "c", "output": SECRET}]})],
    "/v1/messages": [Case("/v1/messages", {"model": "claude-plain", "max_tokens": 10, "messages": USER}, ANTHROPIC,
                          "anthropic"),
                     Case("/v1/messages", {"model": "plain", "max_tokens": 10, "messages": USER, "stream": True},
                          ANTHROPIC, "anthropic")],
    "/v1beta/models/{model}:generateContent": [
        Case("/v1beta/models/gem-plain:generateContent", {"contents": [{"parts": [{"text": SECRET}]}]}, GOOGLE,
             "gemini")],
    "/v1beta/models/{model}:streamGenerateContent": [
        Case("/v1beta/models/plain:streamGenerateContent?alt=sse", {"contents": [{"parts": [{"text": SECRET}]}]},
             GOOGLE, "gemini")],
    "/v1/messages/count_tokens": [  # passed through to an Anthropic provider: the text leaves
        Case("/v1/messages/count_tokens", {"model": "claude-plain", "messages": USER}, ANTHROPIC, "anthropic")],
    "/v1beta/models/{model}:countTokens": [  # passed through to a Gemini provider: the text leaves
        Case("/v1beta/models/gem-plain:countTokens", {"contents": [{"parts": [{"text": SECRET}]}]}, GOOGLE,
             "gemini")],
    "/mcp": [Case("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "demo__echo", "arguments": {"text": SECRET}, "_meta": MCP_META}}, MCP, "mcp")],
}

# the routes that carry no text to a model, and why
NO_TEXT: dict[str, str] = {
    "/v1/models": "lists the models a key may use",
    "/v1/audio/transcriptions": "an audio upload, streamed through unread",
    "/v1/audio/translations": "an audio upload, streamed through unread",
    "/v1/files/{object_id}/content": "reads a file's bytes",
    "/v1/threads/{thread_id}/runs/{object_id}/steps": "reads a run's steps",
    "/v1beta/models": "lists the models a key may use (Google's shape)",
    "/health": "operations", "/health/liveliness": "operations", "/health/readiness": "operations",
    "/metrics": "operations", "/openapi.json": "operations", "/docs": "operations",
}


def test_every_route_is_either_a_text_route_or_known_to_carry_none() -> None:
    unclassified, both = [], []
    for route in TABLE:
        if route in ADMIN_ROUTES or route in UI_ROUTES:  # the admin API and the dashboard: no model behind them
            continue
        key = route.paths[0]
        if key in TEXT_ROUTES and key in NO_TEXT:
            both.append(key)
        elif key not in TEXT_ROUTES and key not in NO_TEXT:
            unclassified.append(key)
    assert unclassified == [], "classify these routes in TEXT_ROUTES (with a request) or NO_TEXT"
    assert both == []
    table = {route.paths[0] for route in TABLE}
    assert set(TEXT_ROUTES) - table == set() and set(NO_TEXT) - table == set()


def blocked_in(dialect: str, body: dict[str, Any]) -> tuple[str, str, str]:
    """(code, guardrail, entity) of a refusal in ``dialect``'s own error shape."""
    if dialect == "gemini":
        [info] = body["error"]["details"]
        return info["reason"], info["metadata"]["guardrail"], info["metadata"]["entity"]
    error = body["error"]["data"] if dialect == "mcp" else body["error"]
    if dialect == "anthropic":
        assert body["type"] == "error" and error["type"] == "invalid_request_error"
    return error["code"], error["guardrail"], error["entity"]


@pytest.mark.parametrize("case", [case for cases in TEXT_ROUTES.values() for case in cases],
                         ids=lambda case: case.path + (" stream" if case.body.get("stream") else ""))
def test_a_secret_never_leaves_on_any_text_route(guarded: Gateway, case: Case, fake_server: FakeUpstream,
                                                 claude_server: FakeAnthropic, gemini_server: FakeGemini,
                                                 responses_server: FakeResponses, mcp_upstream: McpUpstream) -> None:
    answer = httpx.post(guarded.base_url + case.path, json=case.body, headers=case.headers, timeout=30)
    assert answer.status_code == 400, answer.text
    assert blocked_in(case.dialect, answer.json()) == ("guardrail_blocked", "secrets", "openai_key")
    assert LEAKED_KEY not in answer.text
    assert upstream_calls(fake_server, claude_server, gemini_server, responses_server) == []
    assert not [e for e in mcp_upstream.events() if "echo" in e]
