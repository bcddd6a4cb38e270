"""Output guards on streams, through the official ``openai`` SDK: a chat stream masked and restored
across chunk boundaries, a block mid-stream ending with an error event and nothing of the match
sent; the Responses API passed through (text and function-call deltas, the ``.done`` events and
the final response agreeing with what was streamed) and translated to chat."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_anthropic import FakeAnthropic
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.guardrails.conftest import EMAIL, row_of
from tests.integration.guardrails.fake_responses import FakeResponses

ANSWER = "Write to <EMAIL_1> or call +44 20 7946 0958 today, said bob@example.org."
GUARDED = f"Write to {EMAIL} or call <PHONE_1> today, said <EMAIL_2>."
LEAKY = "Part one is fine. The code is LEAK-0042 and more text after it, which never arrives."


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


@pytest.mark.parametrize("chunks", [3, 17, len(ANSWER)])  # a character a chunk: every boundary is cut
def test_a_chat_stream_is_masked_and_restored_across_chunks(guarded: Gateway, fake_server: FakeUpstream,
                                                           chunks: int) -> None:
    fake_server.set_default(Behaviour(text=ANSWER, chunks=chunks))
    stream = sdk(guarded).chat.completions.create(model="masked", stream=True, stream_options={"include_usage": True},
                                                  messages=[{"role": "user", "content": f"Mail {EMAIL}"}])
    pieces, finish, usage = [], None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == GUARDED
    assert finish == "stop" and usage is not None and usage.completion_tokens > 0
    assert fake_server.requests[-1].json["messages"] == [{"role": "user", "content": "Mail <EMAIL_1>"}]


def test_a_block_mid_stream_ends_it_with_an_error_event(guarded: Gateway, fake_server: FakeUpstream) -> None:
    fake_server.set_default(Behaviour(text=LEAKY, chunks=20))
    stream = sdk(guarded).chat.completions.with_raw_response.create(
        model="leaky", stream=True, messages=[{"role": "user", "content": "the code?"}])
    request_id = stream.headers["x-request-id"]
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream.parse():
            received += [c.delta.content or "" for c in chunk.choices]
    assert caught.value.body == {"message": "The answer was blocked by guardrail 'no-leak' (leak).",
                                 "type": "invalid_request_error", "code": "guardrail_blocked",
                                 "guardrail": "no-leak", "entity": "leak"}
    text = "".join(received)
    assert LEAKY.startswith(text) and "LEAK" not in text  # what came before, nothing of the match
    row = row_of(guarded, request_id)
    assert (row["status"], row["error_code"], row["guardrails"]) == (200, "guardrail_blocked",
                                                                     "no-leak:block:output:1:leak")


def test_a_tool_call_streamed_is_guarded_too(guarded: Gateway, fake_server: FakeUpstream) -> None:
    events = [{"role": "assistant", "content": None, "tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                                                     "function": {"name": "mail", "arguments": ""}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": '{"to": "<EMA'}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": 'IL_1>", "cc": "ops@exa'}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": 'mple.org"}'}}]}]
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in events]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    fake_server.set_default(Behaviour(body=body + "data: [DONE]\n\n", headers={"Content-Type": "text/event-stream"}))
    stream = sdk(guarded).chat.completions.create(model="masked", stream=True,
                                                  messages=[{"role": "user", "content": f"mail {EMAIL}"}])
    arguments = "".join(tc.function.arguments or "" for chunk in stream for c in chunk.choices
                        for tc in c.delta.tool_calls or () if tc.function is not None)
    assert arguments == f'{{"to": "{EMAIL}", "cc": "<EMAIL_2>"}}'


def test_responses_passed_through_whole_and_streamed(guarded: Gateway, responses_server: FakeResponses) -> None:
    responses_server.text = "Dear <EMAIL_1>, I copied ops@example.org."
    responses_server.arguments = '{"to": "<EMAIL_1>", "cc": "eve@example.net"}'
    expected_text = f"Dear {EMAIL}, I copied <EMAIL_2>."
    expected_arguments = f'{{"to": "{EMAIL}", "cc": "<EMAIL_3>"}}'
    client = sdk(guarded)
    whole = client.responses.create(model="resp-masked", input=f"Mail {EMAIL}", instructions="Be brief.")
    assert whole.output_text == expected_text
    assert responses_server.requests[-1].json["input"] == "Mail <EMAIL_1>"
    kinds: list[str] = []
    deltas: dict[str, list[str]] = {"text": [], "arguments": []}
    done: dict[str, Any] = {}
    for event in client.responses.create(model="resp-masked", input=f"Mail {EMAIL}", stream=True):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas["text"].append(event.delta)
        elif event.type == "response.function_call_arguments.delta":
            deltas["arguments"].append(event.delta)
        elif event.type in ("response.output_text.done", "response.function_call_arguments.done",
                            "response.completed"):
            done[event.type] = event
    assert "".join(deltas["text"]) == expected_text and "".join(deltas["arguments"]) == expected_arguments
    assert done["response.output_text.done"].text == expected_text
    assert done["response.function_call_arguments.done"].arguments == expected_arguments
    final = done["response.completed"].response
    assert final.output_text == expected_text and final.output[1].arguments == expected_arguments
    assert kinds[-1] == "response.completed" and "error" not in kinds


def test_a_responses_stream_blocked_ends_with_its_error_event(guarded: Gateway,
                                                               responses_server: FakeResponses) -> None:
    responses_server.text = LEAKY
    events = list(sdk(guarded).responses.create(model="resp-leaky", input="the code?", stream=True))
    error = events[-1]
    assert error.type == "error" and error.code == "guardrail_blocked"
    assert error.message == "The answer was blocked by guardrail 'no-leak' (leak)."
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert LEAKY.startswith(text) and "LEAK" not in text
    assert not any(e.type in ("response.output_text.done", "response.completed") for e in events)


def test_responses_translated_to_chat_are_guarded(guarded: Gateway, claude_server: FakeAnthropic) -> None:
    claude_server.set_default(Behaviour(text="Dear <EMAIL_1>, noted.", chunks=5))
    client = sdk(guarded)
    whole = client.responses.create(model="claude", input=f"Mail {EMAIL}")
    assert whole.output_text == f"Dear {EMAIL}, noted."
    assert "<EMAIL_1>" in str(claude_server.requests[-1].json["messages"]) and EMAIL not in str(
        claude_server.requests[-1].json)
    streamed = [e.delta for e in client.responses.create(model="claude", input=f"Mail {EMAIL}", stream=True)
                if e.type == "response.output_text.delta"]
    assert "".join(streamed) == f"Dear {EMAIL}, noted."
    claude_server.set_default(Behaviour(text=LEAKY, chunks=9))
    events = list(client.responses.create(model="claude-leaky", input="the code?", stream=True))
    # the Responses stream's own end for a failure: response.failed, its error naming the guard
    failed: Any = events[-1]
    assert failed.type == "response.failed" and failed.response.error.code == "guardrail_blocked"
    assert failed.response.error.to_dict()["guardrail"] == "no-leak"
    assert "LEAK" not in "".join(e.delta for e in events if e.type == "response.output_text.delta")


def test_a_cached_answer_is_restored_with_each_requests_own_values(guarded: Gateway,
                                                                  fake_server: FakeUpstream) -> None:
    """The cache is looked up by the request as the upstream saw it (masked): two clients' addresses
    share an entry, and each gets its own address back, never the other's."""
    fake_server.set_default(Behaviour(text="Sent to <EMAIL_1>.", chunks=4))
    client = sdk(guarded)
    answers: list[tuple[str, str | None]] = []
    for email, stream in (("ann@example.com", False), ("bob@example.org", False), ("cid@example.net", True)):
        raw = client.chat.completions.with_raw_response.create(
            model="masked-cached", stream=stream, messages=[{"role": "user", "content": f"Mail {email}"}])
        parsed: Any = raw.parse()
        text = ("".join(c.delta.content or "" for chunk in parsed for c in chunk.choices) if stream
                else parsed.choices[0].message.content)
        answers.append((raw.headers["x-cache"], text))
    assert answers == [("miss", "Sent to ann@example.com."), ("hit", "Sent to bob@example.org."),
                       ("hit", "Sent to cid@example.net.")]
    assert len(fake_server.requests) == 1
