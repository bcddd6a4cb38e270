"""The tool loop for models of every provider type: an Anthropic and a Gemini model, whole and
streamed, each offered the MCP tools as functions in its own protocol, each call run on the MCP
server and the result given back in its own protocol."""

from __future__ import annotations

import json

from tests.conftest import Gateway
from tests.fake_anthropic import AnthropicBehaviour, FakeAnthropic
from tests.fake_gemini import FakeGemini, GeminiBehaviour
from tests.integration.mcp_loop.conftest import ADD, chat_bodies, respond, rows_of
from tests.mcp_helpers import McpUpstream


def test_an_anthropic_model_calls_the_tool(gateway: Gateway, claude_server: FakeAnthropic,
                                           mcp_upstream: McpUpstream) -> None:
    claude_server.script(AnthropicBehaviour(text="", tool_uses=[{"name": "mcp_demo__add", "input": {"a": 40, "b": 2},
                                                                 "id": "toolu_add"}]),
                         AnthropicBehaviour(text="It is 42."))
    raw = respond(gateway, raw=True, model="claude:claude-x", input="40+2?", tools=[ADD],
                                                          max_output_tokens=200)
    response = raw.parse()
    assert response.output_text == "It is 42."
    call = next(i for i in response.output if i.type == "mcp_call")
    assert (call.name, json.loads(call.arguments), call.output) == ("add", {"a": 40, "b": 2}, "42")
    assert "demo call add 40 2" in mcp_upstream.events()
    first, second = chat_bodies(claude_server)
    assert {t["name"] for t in first["tools"]} >= {"mcp_demo__add", "mcp_demo__echo"}
    assert "input_schema" in first["tools"][0]  # offered in Anthropic's words
    result = second["messages"][-1]["content"][0]
    assert (result["type"], result["tool_use_id"]) == ("tool_result", "toolu_add")
    assert "42" in json.dumps(result["content"])
    rows = rows_of(gateway, raw.headers["x-request-id"], 3)
    assert [(r["kind"], r["provider"]) for r in rows] == [("model", "claude"), ("mcp", "demo"), ("model", "claude")]


def test_an_anthropic_stream_calls_the_tool(gateway: Gateway, claude_server: FakeAnthropic,
                                            mcp_upstream: McpUpstream) -> None:
    claude_server.script(AnthropicBehaviour(text="Checking.", tool_uses=[{"name": "mcp_demo__echo",
                                                                          "input": {"text": "from claude"}}]),
                         AnthropicBehaviour(text="Echoed it back."))
    events = list(respond(gateway, model="claude:claude-x", input="echo", tools=[ADD], stream=True,
                                                max_output_tokens=200))
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert [i.type for i in final.output] == ["mcp_list_tools", "message", "mcp_call", "message"]
    assert final.output[1].content[0].text == "Checking." and final.output[3].content[0].text == "Echoed it back."
    assert final.output[2].output == "from claude"
    assert "response.mcp_call.completed" in [e.type for e in events]
    assert "demo echo from claude" in mcp_upstream.events()


def test_a_gemini_model_calls_the_tool(gateway: Gateway, gemini_server: FakeGemini,
                                       mcp_upstream: McpUpstream) -> None:
    gemini_server.script(GeminiBehaviour(function_call={"name": "mcp_demo__add", "args": {"a": 7, "b": 8}}),
                         GeminiBehaviour(text="Fifteen."))
    response = respond(gateway, model="gem:gemini-x", input="7+8?", tools=[ADD])
    assert response.output_text == "Fifteen."
    call = next(i for i in response.output if i.type == "mcp_call")
    assert (call.name, call.output, call.status) == ("add", "15", "completed")
    assert "demo call add 7 8" in mcp_upstream.events()
    first, second = chat_bodies(gemini_server)
    declared = {d["name"] for t in first["tools"] for d in t.get("functionDeclarations", [])}
    assert "mcp_demo__add" in declared
    answer = second["contents"][-1]["parts"][0]["functionResponse"]
    assert answer["name"] == "mcp_demo__add" and "15" in json.dumps(answer["response"])


def test_a_gemini_stream_calls_the_tool(gateway: Gateway, gemini_server: FakeGemini) -> None:
    gemini_server.script(GeminiBehaviour(function_call={"name": "mcp_demo__add", "args": {"a": 1, "b": 1}}),
                         GeminiBehaviour(text="Two."))
    events = list(respond(gateway, model="gem:gemini-x", input="1+1?", tools=[ADD], stream=True))
    final = events[-1].response
    assert events[-1].type == "response.completed"
    assert [i.type for i in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert final.output[1].output == "2" and final.output[2].content[0].text == "Two."
