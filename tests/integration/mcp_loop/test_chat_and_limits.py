"""The MCP tool on ``/v1/chat/completions`` (the calls in ``mcp_output``), what the gateway refuses
(approval, other servers, credentials), a guardrail that blocks a tool's result, limits that hold
across rounds, and a client that leaves mid-loop."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream, prompt_tokens_of
from tests.integration.mcp_loop.conftest import (
    ADD,
    GUARDED_KEY,
    NOMCP_KEY,
    TWO_KEY,
    TWO_STREAM_KEY,
    chat,
    chat_bodies,
    respond,
    rows_of,
)
from tests.mcp_helpers import McpUpstream, wait_for

ADD_CALL = {"name": "mcp_demo__add", "arguments": {"a": 2, "b": 3}, "id": "call_add"}
ASK = [{"role": "user", "content": "What is 2 + 3?"}]


def test_chat_completions_run_the_loop(gateway: Gateway, fake_server: FakeUpstream, mcp_upstream: McpUpstream) -> None:
    fake_server.script(Behaviour(text="Adding.", tool_calls=[ADD_CALL]), Behaviour(text="It is 5."))
    completion = chat(gateway, model="fake:gpt-x", messages=ASK, tools=[ADD])
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason, choice.message.tool_calls) == ("Adding.\n\nIt is 5.", "stop",
                                                                                         None)
    items = (completion.model_extra or {})["mcp_output"]
    assert [i["type"] for i in items] == ["mcp_list_tools", "mcp_call"]
    assert (items[1]["name"], json.loads(items[1]["arguments"]), items[1]["output"]) == ("add", {"a": 2, "b": 3}, "5")
    first, second = chat_bodies(fake_server)
    assert completion.usage is not None  # every round's
    assert completion.usage.prompt_tokens == prompt_tokens_of(first) + prompt_tokens_of(second)
    assert "demo call add 2 3" in mcp_upstream.events()
    assert not any(t.get("type") == "mcp" for t in first["tools"]) and second["messages"][-1]["content"] == "5"


def test_a_chat_stream_runs_the_loop(gateway: Gateway, fake_server: FakeUpstream) -> None:
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    fake_server.script(Behaviour(text="Adding.", tool_calls=[ADD_CALL]),
                       Behaviour(text="Now the weather.", tool_calls=[{"name": "get_weather", "arguments": {},
                                                                        "id": "call_w"}]))
    chunks = list(chat(gateway, model="fake:gpt-x", messages=ASK, tools=[ADD, weather],
                                                       stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Adding.\n\nNow the weather."
    items = [i for c in chunks for i in (c.model_extra or {}).get("mcp_output", [])]
    assert [(i["type"], i.get("output")) for i in items] == [("mcp_list_tools", None), ("mcp_call", "5")]
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert [(t.id, t.function.name if t.function else None) for t in calls] == [("call_w", "get_weather")]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    first, second = chat_bodies(fake_server)
    assert chunks[-1].usage.prompt_tokens == prompt_tokens_of(first) + prompt_tokens_of(second)


@pytest.mark.parametrize(("tool", "key", "param", "words"), [
    ({"type": "mcp", "server_label": "demo"}, CLIENT_KEY, "tools[0].require_approval", "without asking for approval"),
    ({**ADD, "require_approval": "always"}, CLIENT_KEY, "tools[0].require_approval", '"never"'),
    ({**ADD, "server_url": "https://mcp.example.com/mcp"}, CLIENT_KEY, "tools[0].server_url",
     "does not connect to other servers"),
    ({**ADD, "server_label": "elsewhere"}, CLIENT_KEY, "tools[0].server_label", "names no MCP server"),
    (ADD, NOMCP_KEY, "tools[0].server_label", "names no MCP server this key may use"),
    ({**ADD, "headers": {"Authorization": "Bearer x"}}, CLIENT_KEY, "tools[0].headers", "credentials"),
])
@pytest.mark.parametrize("path", ["/v1/responses", "/v1/chat/completions"])
def test_what_the_gateway_refuses(gateway: Gateway, fake_server: FakeUpstream, path: str, tool: dict[str, object],
                                  key: str, param: str, words: str) -> None:
    body = {"model": "fake:gpt-x", "tools": [tool], **({"input": "hi"} if "responses" in path else {"messages": ASK})}
    answer = httpx.post(gateway.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"]
    assert fake_server.count() == 0


def test_a_server_url_the_gateway_knows_is_accepted(gateway: Gateway, fake_server: FakeUpstream,
                                                    mcp_upstream: McpUpstream) -> None:
    fake_server.script(Behaviour(text="ok"), Behaviour(text="ok"))
    for url in (mcp_upstream.url, gateway.base_url + "/mcp/demo"):
        response = respond(gateway, model="fake:gpt-x", input="hi",
                                                 tools=[{**ADD, "server_label": "mine", "server_url": url}])
        assert response.output[0].type == "mcp_list_tools" and response.output[0].server_label == "mine"


def test_a_result_a_guardrail_blocks_fails_the_call(gateway: Gateway, fake_server: FakeUpstream) -> None:
    fake_server.script(Behaviour(tool_calls=[{"name": "mcp_leaky__whoami", "arguments": {}}]),
                       Behaviour(text="The tool's answer was withheld."))
    raw = respond(gateway, GUARDED_KEY, raw=True, model="fake:gpt-x", input="x",
                  tools=[{**ADD, "server_label": "leaky"}])
    response = raw.parse()
    call = next(i for i in response.output if i.type == "mcp_call")
    message = "The answer was blocked by guardrail 'no-leak' (leak)."
    assert call.status == "failed" and call.output is None
    assert call.error is not None and call.error.model_dump() == {"type": "http_error", "code": 400, "message": message}
    assert response.status == "completed" and response.output[-1].type == "message"
    second = chat_bodies(fake_server)[1]
    assert second["messages"][-1]["content"] == message and "LEAK-0042" not in json.dumps(second)
    rows = rows_of(gateway, raw.headers["x-request-id"], 3)
    [row] = [r for r in rows if r["kind"] == "mcp"]
    assert (row["provider"], row["model"], row["status"], row["error_code"]) == ("leaky", "whoami", 400,
                                                                                "guardrail_blocked")


def test_limits_hold_across_rounds(gateway: Gateway, fake_server: FakeUpstream) -> None:
    fake_server.script(*[Behaviour(tool_calls=[{"name": "mcp_demo__add", "arguments": {"a": n, "b": 1}}])
                         for n in range(2)], Behaviour(text="never sent"))
    with pytest.raises(openai.RateLimitError) as caught:
        respond(gateway, TWO_KEY, raw=True, model="fake:gpt-x", input="x", tools=[ADD])
    request_id = caught.value.response.headers["x-request-id"]
    rows = rows_of(gateway, request_id, 5)
    assert [(r["kind"], r["status"]) for r in rows] == [("model", 200), ("mcp", 200), ("model", 200), ("mcp", 200),
                                                        ("model", 429)]
    assert fake_server.count() == 2


def test_a_streamed_loop_a_limit_stops_fails_the_response(gateway: Gateway, fake_server: FakeUpstream) -> None:
    fake_server.script(*[Behaviour(tool_calls=[{"name": "mcp_demo__add", "arguments": {"a": n, "b": 1}}])
                         for n in range(2)], Behaviour(text="never sent"))
    events = list(respond(gateway, TWO_STREAM_KEY, model="fake:gpt-x", input="x", tools=[ADD], stream=True,
                          extra_headers={"x-request-id": "loop-limited-stream"}))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "rate_limit_exceeded"
    calls = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "mcp_call"]
    assert [c.output for c in calls] == ["1", "2"]
    rows = rows_of(gateway, "loop-limited-stream", 5)
    assert [(r["kind"], r["status"]) for r in rows] == [("model", 200), ("mcp", 200), ("model", 200), ("mcp", 200),
                                                        ("model", 429)]
    assert fake_server.count() == 2


def test_a_client_that_leaves_mid_loop_cancels_the_call(gateway: Gateway, fake_server: FakeUpstream,
                                                        mcp_upstream: McpUpstream) -> None:
    fake_server.script(Behaviour(tool_calls=[{"name": "mcp_demo__sleep", "arguments": {"seconds": 30}}]),
                       Behaviour(text="never sent"))
    before = mcp_upstream.events().count("demo sleep cancelled")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.base_url + "/v1/responses", timeout=httpx.Timeout(10, read=1.5),
                   headers={"Authorization": f"Bearer {CLIENT_KEY}", "x-request-id": "loop-left-whole"},
                   json={"model": "fake:gpt-x", "input": "sleep", "tools": [ADD]})
    wait_for(lambda: mcp_upstream.events().count("demo sleep cancelled") > before,
             what="the MCP server to see the cancel")
    rows = rows_of(gateway, "loop-left-whole", 2)
    assert [(r["kind"], r["status"]) for r in rows] == [("model", 200), ("mcp", 499)]
    time.sleep(0.5)
    assert fake_server.count() == 1  # no round after the client left


def test_a_streaming_client_that_leaves_mid_loop_cancels_the_call(gateway: Gateway, fake_server: FakeUpstream,
                                                                  mcp_upstream: McpUpstream) -> None:
    before = mcp_upstream.events().count("demo sleep cancelled")
    fake_server.script(Behaviour(tool_calls=[{"name": "mcp_demo__sleep", "arguments": {"seconds": 30}}]),
                       Behaviour(text="never sent"))
    stream = respond(gateway, model="fake:gpt-x", input="sleep", tools=[ADD], stream=True,
                                           extra_headers={"x-request-id": "loop-left-stream"})
    for event in stream:
        if event.type == "response.mcp_call.in_progress":
            break
    stream.close()
    wait_for(lambda: mcp_upstream.events().count("demo sleep cancelled") > before,
             what="the MCP server to see the cancel")
    rows = rows_of(gateway, "loop-left-stream", 2)
    assert [(r["kind"], r["status"]) for r in rows] == [("model", 200), ("mcp", 499)]
    time.sleep(0.5)
    assert fake_server.count() == 1
