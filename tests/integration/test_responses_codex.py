"""``/v1/responses`` as Codex uses it, through the real gateway with the official SDK: translated to
chat for a chat-only provider (every item and tool kind Codex sends, the answer mapped back, the
stream always ending in ``response.completed`` with usage) and passed through untouched to a
Responses-native one (reasoning items, encrypted content, session headers)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.test_openai_surface import last_access, recent_row

GRAMMAR = 'start: "*** Begin Patch" LF hunk+ "*** End Patch"\nhunk: /.+/ LF'
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "name": "exec_command", "description": "Runs a command", "strict": False,
     "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"],
                    "additionalProperties": False}},
    {"type": "custom", "name": "apply_patch", "description": "Edit files",
     "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}},
    {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents",
     "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn one",
                "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}}]},
    {"type": "tool_search", "execution": "client", "description": "Find tools",
     "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
    {"type": "web_search", "external_web_access": False, "search_content_types": ["text", "image"]},
]
HISTORY: list[dict[str, Any]] = [
    {"type": "message", "id": "msg_1", "role": "developer", "content": [{"type": "input_text", "text": "Be Codex."}]},
    {"type": "message", "id": "msg_2", "role": "user", "content": [{"type": "input_text", "text": "Read it."}]},
    {"type": "reasoning", "id": "rs_1", "summary": [], "content": None, "encrypted_content": "gAAAA-opaque"},
    {"type": "function_call", "status": "completed", "id": "fc_1", "name": "exec_command",
     "arguments": '{"cmd": "cat secret.txt"}', "call_id": "call_a"},
    {"type": "function_call_output", "id": "fco_1", "call_id": "call_a", "output": "Output:\nPINEAPPLE-42\n"},
    {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_b", "name": "apply_patch",
     "input": "*** Begin Patch\n*** End Patch"},
    {"type": "custom_tool_call_output", "call_id": "call_b", "output": "Done!"},
]


def codex_body(**extra: Any) -> dict[str, Any]:
    """A request shaped as Codex 0.169 sends it (fewer and shorter items)."""
    return {"model": "chatonly:chatty", "input": HISTORY, "tools": TOOLS, "tool_choice": "auto",
            "parallel_tool_calls": True, "reasoning": {"effort": "medium", "summary": "auto"}, "store": False,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "session-1",
            "text": {"verbosity": "low"}, "client_metadata": {"session_id": "session-1"}, **extra}


def counted(row: dict[str, Any]) -> tuple[int, int, int, int]:
    """A ledger row's tokens: (in, of them read from a cache, out, of them reasoning)."""
    return row["tokens_in"], row["cache_read_tokens"], row["tokens_out"], row["reasoning_tokens"]


def config(fake: FakeUpstream, fake2: FakeUpstream) -> str:
    return textwrap.dedent(f"""
    server:
      request_timeout_s: 20
    llm_providers:
      - id: native
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-native-key-111111"]
        models: [gpt-native]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0, cache_read_token_cost: 0.1}}
      - id: chatonly
        type: openai-compatible
        base_url: {fake2.base_url}
        api_keys: ["sk-chat-only-key-333333"]
        models: [chatty]
        endpoints: [chat]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0, cache_read_token_cost: 0.1}}
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """)


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream, fake2: FakeUpstream) -> Gateway:
    return start_gateway(config(fake, fake2))


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def create(gateway: Gateway, body: dict[str, Any], **extra: Any) -> Any:
    """``responses.create`` with ``body`` (its fields the SDK does not name go as extra_body)."""
    named = {k: v for k, v in body.items() if k != "client_metadata"}
    return sdk(gateway).responses.create(**named, **extra, extra_body={"client_metadata": body["client_metadata"]})


def chat_answer(message: dict[str, Any], finish: str, usage: dict[str, Any]) -> dict[str, Any]:
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "chatty",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage}


def chat_stream(deltas: list[dict[str, Any]], finish: str, usage: dict[str, Any] | None) -> Behaviour:
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "chatty"}
    events = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage is not None:
        events.append({**base, "choices": [], "usage": usage})
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return Behaviour(body=body, headers={"Content-Type": "text/event-stream"})


USAGE = {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940,
         "prompt_tokens_details": {"cached_tokens": 600}, "completion_tokens_details": {"reasoning_tokens": 25}}
CALLS = [{"id": "call_x", "type": "function", "function": {"name": "apply_patch",
                                                          "arguments": '{"input": "*** Begin Patch\\n*** End Patch"}'}},
         {"id": "call_y", "type": "function", "function": {"name": "multi_agent_v1__spawn_agent",
                                                          "arguments": '{"task": "lint"}'}}]


def test_a_codex_request_is_translated_to_chat(gw: Gateway, fake2: FakeUpstream) -> None:
    answer = create(gw, codex_body())
    assert answer.status == "completed"
    sent = fake2.requests[-1].json
    assert sent["messages"] == [
        {"role": "system", "content": "Be Codex."},
        {"role": "user", "content": "Read it."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "exec_command",
                                                              "arguments": '{"cmd": "cat secret.txt"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "Output:\nPINEAPPLE-42\n"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_b", "type": "function", "function": {
                "name": "apply_patch", "arguments": '{"input":"*** Begin Patch\\n*** End Patch"}'}}]},
        {"role": "tool", "tool_call_id": "call_b", "content": "Done!"}]
    names = [t["function"]["name"] for t in sent["tools"]]
    assert names == ["exec_command", "apply_patch", "multi_agent_v1__spawn_agent"]
    patch = sent["tools"][1]["function"]
    assert patch["parameters"]["properties"] == {"input": {"type": "string"}} and GRAMMAR in patch["description"]
    assert sent["tools"][0]["function"]["strict"] is False
    assert (sent["reasoning_effort"], sent["verbosity"], sent["prompt_cache_key"]) == ("medium", "low", "session-1")
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("auto", True)
    for dropped in ("store", "include", "client_metadata", "reasoning", "text", "input"):
        assert dropped not in sent


def test_custom_and_namespaced_calls_come_back_as_codex_reads_them(gw: Gateway, fake2: FakeUpstream) -> None:
    fake2.script(Behaviour(body=chat_answer({"content": None, "tool_calls": CALLS}, "tool_calls", USAGE)))
    answer = create(gw, codex_body())
    custom, spawn = (item.model_dump(exclude_none=True) for item in answer.output)
    assert custom == {"type": "custom_tool_call", "id": custom["id"], "call_id": "call_x", "name": "apply_patch",
                      "input": "*** Begin Patch\n*** End Patch", "status": "completed"}
    assert (spawn["type"], spawn["name"], spawn["namespace"], spawn["arguments"]) == (
        "function_call", "spawn_agent", "multi_agent_v1", '{"task": "lint"}')
    assert answer.usage is not None
    assert answer.usage.model_dump(exclude_none=True) == {
        "input_tokens": 900, "input_tokens_details": {"cached_tokens": 600}, "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 25}, "total_tokens": 940}


def test_a_translated_stream_ends_in_completed_with_the_usage(gw: Gateway, fake2: FakeUpstream) -> None:
    fake2.script(chat_stream([
        {"role": "assistant", "reasoning_content": "Let me look."},
        {"content": "Reading "}, {"content": "it."},
        {"tool_calls": [{"index": 0, "id": "call_x", "type": "function",
                         "function": {"name": "exec_command", "arguments": '{"cmd":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ' "cat x"}'}}]},
        {"tool_calls": [{"index": 1, "id": "call_y", "type": "function",
                         "function": {"name": "apply_patch", "arguments": '{"input": "P"}'}}]}],
        "tool_calls", USAGE))
    events = list(create(gw, codex_body(), stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    done = [e.item.model_dump(exclude_none=True) for e in events if e.type == "response.output_item.done"]
    assert [(d["type"], d.get("name")) for d in done] == [
        ("reasoning", None), ("message", None), ("function_call", "exec_command"), ("custom_tool_call", "apply_patch")]
    assert done[0]["content"] == [{"type": "reasoning_text", "text": "Let me look."}]
    assert done[1]["content"][0]["text"] == "Reading it."
    assert (done[2]["arguments"], done[2]["call_id"]) == ('{"cmd": "cat x"}', "call_x")
    assert (done[3]["input"], done[3]["call_id"]) == ("P", "call_y")
    completed = events[-1].response
    assert [item.type for item in completed.output] == ["reasoning", "message", "function_call", "custom_tool_call"]
    assert completed.usage is not None and completed.usage.input_tokens_details.cached_tokens == 600
    assert completed.usage.output_tokens_details.reasoning_tokens == 25
    assert len({e.sequence_number for e in events}) == len(events)
    line = last_access(gw, "responses")
    assert (line["prompt_tokens"], line["completion_tokens"], line["usage_exact"], line["error"]) == (
        900, 40, True, None)
    row = recent_row(gw)
    assert counted(row) == (900, 600, 40, 25)
    assert row["cost"] == pytest.approx((300 * 1.0 + 600 * 0.1 + 40 * 2.0) / 1000)


def test_a_stream_without_usage_still_completes_with_an_estimate(gw: Gateway, fake2: FakeUpstream) -> None:
    fake2.script(chat_stream([{"role": "assistant", "content": "The secret word is PINEAPPLE-42."}], "stop", None))
    events = list(create(gw, codex_body(), stream=True))
    completed = events[-1]
    assert completed.type == "response.completed"
    usage = completed.response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


def test_a_stream_that_breaks_off_ends_in_response_failed(gw: Gateway, fake2: FakeUpstream) -> None:
    fake2.script(Behaviour(cut_after=1))
    events = list(create(gw, codex_body(), stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None and events[-1].response.status == "failed"


def test_a_stopped_answer_is_incomplete(gw: Gateway, fake2: FakeUpstream) -> None:
    fake2.script(Behaviour(body=chat_answer({"content": "Half"}, "length", USAGE)))
    answer = create(gw, codex_body(max_output_tokens=5))
    assert answer.status == "incomplete" and answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "max_output_tokens"
    assert fake2.requests[-1].json["max_tokens"] == 5


def test_previous_response_id_is_unknown_when_translating(gw: Gateway, fake2: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(gw).responses.create(model="chatonly:chatty", input="and then?", previous_response_id="resp_abc")
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"
    assert "resp_abc" in caught.value.message
    assert fake2.count() == 0


def test_images_and_files_reach_chat(gw: Gateway, fake2: FakeUpstream) -> None:
    sdk(gw).responses.create(model="chatonly:chatty", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}]}])
    assert fake2.requests[-1].json["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}]}]


def test_a_native_upstream_gets_the_request_untouched(gw: Gateway, fake: FakeUpstream) -> None:
    fake.surface.script_responses([
        {"type": "reasoning", "id": "rs_9", "summary": [], "encrypted_content": "gAAAA-next"},
        {"type": "function_call", "id": "fc_9", "call_id": "call_9", "name": "exec_command",
         "arguments": '{"cmd": "ls"}', "status": "completed"}], cached_tokens=2, reasoning_tokens=3)
    body = {**codex_body(), "model": "native:gpt-native", "stream": True}
    headers = {"Authorization": f"Bearer {CLIENT_KEY}", "session-id": "s-1", "thread-id": "t-1",
               "originator": "codex_exec", "x-codex-turn-metadata": '{"turn": 1}', "x-other": "not passed"}
    with httpx.stream("POST", gw.base_url + "/v1/responses", json=body, headers=headers, timeout=30) as answer:
        text = "".join(answer.iter_text())
    assert answer.status_code == 200, text
    sent = fake.surface.calls_to("/v1/responses")[-1]
    assert sent.json == {**body, "model": "gpt-native"}  # reasoning items, include, store, custom tools: as sent
    assert sent.headers["session-id"] == "s-1" and sent.headers["x-codex-turn-metadata"] == '{"turn": 1}'
    assert sent.headers["originator"] == "codex_exec" and "x-other" not in sent.headers
    assert sent.api_key == "sk-native-key-111111"
    completed = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")][-1]
    assert completed["type"] == "response.completed"
    assert completed["response"]["output"][0]["encrypted_content"] == "gAAAA-next"
    usage = completed["response"]["usage"]
    line = last_access(gw, "responses")
    assert (line["prompt_tokens"], line["completion_tokens"], line["usage_exact"]) == (
        usage["input_tokens"], usage["output_tokens"], True)
    assert (usage["input_tokens_details"], usage["output_tokens_details"]) == (
        {"cached_tokens": 2}, {"reasoning_tokens": 3})
    row = recent_row(gw)
    assert (row["tokens_in"], row["tokens_out"]) == (usage["input_tokens"], usage["output_tokens"])
    assert (row["cache_read_tokens"], row["reasoning_tokens"]) == (2, 3)
    assert row["cost"] == pytest.approx(((usage["input_tokens"] - 2) * 1.0 + 2 * 0.1 + usage["output_tokens"] * 2.0)
                                        / 1000)


SIGNED = [{"type": "reasoning.text", "text": "Need the file.", "signature": "sig-abc", "format": "anthropic-claude-v1"}]


def test_signed_reasoning_goes_round_trip_in_encrypted_content(gw: Gateway, fake2: FakeUpstream) -> None:
    """A provider's signed reasoning (chat's reasoning_details) comes back in the reasoning item's
    encrypted_content; the item sent back with the history reaches the provider again."""
    call = {"id": "call_r", "type": "function", "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'}}
    fake2.script(Behaviour(body=chat_answer({"content": None, "reasoning_content": "Need the file.",
                                             "reasoning_details": SIGNED, "tool_calls": [call]}, "tool_calls", USAGE)))
    first = create(gw, codex_body(input="List files."))
    reasoning, function = (item.model_dump(exclude_none=True) for item in first.output)
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"].startswith("gw-reasoning-1:")
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Need the file."}]
    history = [{"type": "message", "role": "user", "content": "List files."}, reasoning, function,
               {"type": "function_call_output", "call_id": "call_r", "output": "a.txt"}]
    create(gw, codex_body(input=history))
    assistant = fake2.requests[-1].json["messages"][1]
    assert assistant == {"role": "assistant", "content": None, "reasoning_content": "Need the file.",
                         "reasoning_details": SIGNED,
                         "tool_calls": [{"id": "call_r", "type": "function",
                                         "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'}}]}
    # streamed: the signature comes in its own delta, the text in reasoning_content
    fake2.script(chat_stream([{"role": "assistant", "reasoning_content": "Need the file."},
                              {"reasoning_details": [{**SIGNED[0], "text": None, "index": 0}]},
                              {"tool_calls": [{"index": 0, **call}]}], "tool_calls", USAGE))
    events = list(create(gw, codex_body(input="List files."), stream=True))
    done = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "reasoning"]
    assert len(done) == 1 and done[0].encrypted_content is not None
    assert events[-1].response.output[0].encrypted_content == done[0].encrypted_content
    # without include, no encrypted content (as OpenAI answers)
    fake2.script(Behaviour(body=chat_answer({"content": "Hi", "reasoning_content": "Hm.", "reasoning_details": SIGNED},
                                            "stop", USAGE)))
    plain = sdk(gw).responses.create(model="chatonly:chatty", input="Hi")
    assert plain.output[0].type == "reasoning" and plain.output[0].encrypted_content is None


def test_a_client_leaving_once_the_stream_completed_is_not_a_client_closed(gw: Gateway, fake: FakeUpstream) -> None:
    """Codex closes its connection as soon as response.completed arrives, while the provider may
    still be ending its stream: the request was answered whole (200, its usage and cost)."""
    fake.surface.responses_linger_s = 1.0
    body = {"model": "native:gpt-native", "input": "one two three", "stream": True}
    with httpx.stream("POST", gw.base_url + "/v1/responses", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as answer:
        for line in answer.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["type"] == "response.completed":
                break  # leave at once, as Codex does
    row = recent_row(gw)
    assert (row["status"], row["error_code"], row["tokens_in"]) == (200, None, 3)
    assert row["cost"] > 0
