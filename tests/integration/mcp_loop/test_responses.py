"""``/v1/responses`` with the Responses API's remote MCP tool, through the official ``openai`` SDK:
the gateway lists the server's tools, offers them to the model as functions, runs the model's calls
on the MCP server, gives the results back and calls the model again until it answers; whole and
streamed, the answer carrying ``mcp_list_tools`` and ``mcp_call`` items, every round and every call
in the ledger."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Gateway
from tests.fake_upstream import Behaviour, FakeUpstream, prompt_tokens_of
from tests.integration.mcp_loop.conftest import ADD, chat_bodies, respond, rows_of
from tests.mcp_helpers import McpUpstream

ADD_CALL = {"name": "mcp_demo__add", "arguments": {"a": 2, "b": 3}, "id": "call_add"}


def test_a_whole_response_runs_the_call_and_answers(gateway: Gateway, fake_server: FakeUpstream,
                                                    mcp_upstream: McpUpstream) -> None:
    fake_server.script(Behaviour(text="Let me add.", tool_calls=[ADD_CALL]), Behaviour(text="The sum is 5."))
    raw = respond(gateway, raw=True, model="fake:gpt-x", input="What is 2 + 3?",
                  tools=[{**ADD, "allowed_tools": ["add", "echo"]}])
    response = raw.parse()
    assert response.status == "completed" and response.output_text == "Let me add.The sum is 5."  # every message
    kinds = [item.type for item in response.output]
    assert kinds == ["mcp_list_tools", "message", "mcp_call", "message"]
    listed, said, call, answer = response.output
    assert listed.server_label == "demo" and sorted(t.name for t in listed.tools) == ["add", "echo"]
    assert listed.tools[0].input_schema["type"] == "object" and listed.error is None
    assert said.content[0].text == "Let me add."
    assert (call.name, call.server_label, json.loads(call.arguments), call.output, call.status, call.error) == \
        ("add", "demo", {"a": 2, "b": 3}, "5", "completed", None)
    assert answer.content[0].text == "The sum is 5."
    assert "demo call add 2 3" in mcp_upstream.events()  # the MCP server ran the call with the model's arguments

    first, second = chat_bodies(fake_server)
    offered = {t["function"]["name"] for t in first["tools"]}
    assert offered == {"mcp_demo__add", "mcp_demo__echo"}  # only the allowed tools, as functions
    assert all(t["type"] == "function" for t in first["tools"])
    assert second["messages"][-2]["tool_calls"][0]["function"] == {"name": "mcp_demo__add",
                                                                   "arguments": '{"a": 2, "b": 3}'}
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_add", "content": "5"}

    rows = rows_of(gateway, raw.headers["x-request-id"], 3)
    models = [r for r in rows if r["kind"] == "model"]
    tools = [r for r in rows if r["kind"] == "mcp"]
    assert [(r["tokens_in"], r["status"]) for r in models] == [(prompt_tokens_of(first), 200),
                                                               (prompt_tokens_of(second), 200)]
    assert [(r["provider"], r["model"], r["status"], r["cost"]) for r in tools] == [("demo", "add", 200, 0.01)]
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens == sum(r["tokens_in"] for r in models)
    assert usage.output_tokens == sum(r["tokens_out"] for r in models)


def test_a_streamed_response_sends_the_mcp_events(gateway: Gateway, fake_server: FakeUpstream,
                                                  mcp_upstream: McpUpstream) -> None:
    fake_server.script(Behaviour(tool_calls=[{"name": "mcp_demo__echo", "arguments": {"text": "hi there"}}]),
                       Behaviour(text="It said hi there."))
    events = list(respond(gateway, model="fake:gpt-x", input="Echo hi there", stream=True,
                                                tools=[ADD]))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    mcp = [k for k in kinds if "mcp" in k or k.startswith("response.output_item")]
    assert mcp == ["response.output_item.added", "response.mcp_list_tools.in_progress",
                   "response.mcp_list_tools.completed", "response.output_item.done",
                   "response.output_item.added", "response.mcp_call_arguments.delta",
                   "response.mcp_call_arguments.done", "response.mcp_call.in_progress",
                   "response.mcp_call.completed", "response.output_item.done",
                   "response.output_item.added", "response.output_item.done"]
    assert kinds[-1] == "response.completed"
    sequence = [e.sequence_number for e in events]
    assert sequence == list(range(len(events)))
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert [i.type for i in done] == ["mcp_list_tools", "mcp_call", "message"]
    assert done[1].output == "hi there" and done[1].status == "completed"
    assert [e.output_index for e in events if e.type == "response.output_item.done"] == [0, 1, 2]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "It said hi there."
    final = events[-1].response
    assert [i.type for i in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert final.output[1].output == "hi there" and final.usage is not None and final.usage.input_tokens > 0
    assert "demo echo hi there" in mcp_upstream.events()


def test_a_responses_native_upstream_gets_chat_with_functions(gateway: Gateway, fake_server_2: FakeUpstream) -> None:
    fake_server_2.script(Behaviour(tool_calls=[ADD_CALL]), Behaviour(text="5 it is."))
    response = respond(gateway, model="native:native-x", input="2+3?", tools=[ADD])
    assert response.output_text == "5 it is." and [i.type for i in response.output][1] == "mcp_call"
    assert fake_server_2.surface.calls_to("/v1/responses") == []  # never passed through
    assert fake_server_2.count() == 2
    assert not any(t.get("type") == "mcp" for body in chat_bodies(fake_server_2) for t in body.get("tools", []))


def test_a_tool_outside_the_key_s_policy_is_not_offered(gateway: Gateway, fake_server: FakeUpstream) -> None:
    from tests.integration.mcp_loop.conftest import LIMITED_KEY

    fake_server.script(Behaviour(text="Fine."))
    response = respond(gateway, LIMITED_KEY, model="fake:gpt-x", input="hi", tools=[ADD])
    listed = response.output[0]
    names = {t.name for t in listed.tools}
    assert "add" in names and "echo" not in names and "sleep" not in names
    [body] = chat_bodies(fake_server)
    offered = {t["function"]["name"] for t in body["tools"]}
    assert offered == {f"mcp_demo__{n}" for n in names}


def test_a_server_that_cannot_list_is_reported_and_the_model_answers(gateway: Gateway,
                                                                     fake_server: FakeUpstream) -> None:
    fake_server.script(Behaviour(text="Done without tools."))
    response = respond(gateway, model="fake:gpt-x", input="hi",
                       tools=[ADD, {"type": "mcp", "server_label": "down", "require_approval": "never"}])
    listed = [i for i in response.output if i.type == "mcp_list_tools"]
    assert [(i.server_label, bool(i.error)) for i in listed] == [("demo", False), ("down", True)]
    assert "could not list its tools" in (listed[1].error or "")
    assert response.output_text == "Done without tools."


def test_a_model_that_keeps_calling_tools_stops_at_max_tool_rounds(gateway: Gateway, fake_server: FakeUpstream,
                                                                   mcp_upstream: McpUpstream) -> None:
    calls = [Behaviour(tool_calls=[{"name": "mcp_demo__add", "arguments": {"a": n, "b": 100}}]) for n in range(5)]
    fake_server.script(*calls)
    raw = respond(gateway, raw=True, model="fake:gpt-x", input="loop", tools=[ADD])
    response = raw.parse()
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_tool_rounds"
    calls_made = [i for i in response.output if i.type == "mcp_call"]
    assert [(json.loads(c.arguments)["a"], c.status) for c in calls_made] == [(0, "completed"), (1, "completed"),
                                                                             (2, "incomplete")]
    assert fake_server.count() == 3  # two rounds of calls, then one more answer: no fourth model call
    events = mcp_upstream.events()
    assert "demo call add 1 100" in events and "demo call add 2 100" not in events
    rows = rows_of(gateway, raw.headers["x-request-id"], 5)
    assert sorted(r["kind"] for r in rows) == ["mcp", "mcp", "model", "model", "model"]


def test_mcp_call_items_sent_back_continue_the_conversation(gateway: Gateway, fake_server: FakeUpstream) -> None:
    client_tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    fake_server.script(Behaviour(tool_calls=[ADD_CALL, {"name": "get_weather", "arguments": {}, "id": "call_w"}]))
    response = respond(gateway, model="fake:gpt-x", input="add, then weather",
                                             tools=[ADD, client_tool])
    assert [i.type for i in response.output] == ["mcp_list_tools", "mcp_call", "function_call"]
    assert response.output[2].name == "get_weather" and response.output[2].call_id == "call_w"
    fake_server.script(Behaviour(text="5 and sunny."))
    history: list[Any] = [{"role": "user", "content": "add, then weather"},
                          *[i.model_dump(exclude_none=True) for i in response.output],
                          {"type": "function_call_output", "call_id": "call_w", "output": "sunny"}]
    again = respond(gateway, model="fake:gpt-x", input=history, tools=[ADD, client_tool])
    assert again.output_text == "5 and sunny."
    messages = chat_bodies(fake_server)[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "mcp_demo__add"
    assert messages[2] == {"role": "tool", "tool_call_id": response.output[1].id, "content": "5"}
    assert messages[3]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_tool_that_fails_is_a_failed_call_the_model_reads(gateway: Gateway, fake_server: FakeUpstream,
                                                            mcp_upstream: McpUpstream) -> None:
    fake_server.script(Behaviour(tool_calls=[{"name": "mcp_demo__fail", "arguments": {}, "id": "call_f"}]),
                       Behaviour(text="The tool failed."))
    events = list(respond(gateway, model="fake:gpt-x", input="fail please", tools=[ADD], stream=True))
    kinds = [e.type for e in events]
    assert "response.mcp_call.failed" in kinds and "response.mcp_call.completed" not in kinds
    [call] = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "mcp_call"]
    assert call.status == "failed" and call.output is None
    assert call.error.type == "mcp_tool_execution_error"
    [content] = call.error.content
    assert content["text"].startswith("Error executing tool fail")  # the server's own words
    assert chat_bodies(fake_server)[1]["messages"][-1]["content"] == content["text"]  # what the model read
    assert "demo call fail" in mcp_upstream.events()
