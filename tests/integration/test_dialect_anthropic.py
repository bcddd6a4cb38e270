"""Anthropic's Messages API inbound (``POST /v1/messages``), end to end with the official ``anthropic`` SDK.

Routed to the OpenAI-shaped fake upstream, the body is translated to OpenAI's chat shape and the
answer back to Anthropic's Message and events; routed to an Anthropic provider (the Anthropic fake)
it passes through untranslated. Errors come back in Anthropic's shape.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import ToolParam

from gateway.providers.registry import TYPES
from tests.conftest import CLIENT_KEY, Gateway, basic_config
from tests.fake_upstream import DEFAULT_TEXT, Behaviour, FakeUpstream, prompt_tokens_of

TOOL: ToolParam = {"name": "get_weather", "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def sdk(gateway: Gateway, key: str = CLIENT_KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=30)


def tokens(gateway: Gateway, direction: str, provider: str) -> float:
    """``gateway_tokens_total`` for one direction and provider, summed over models."""
    total = 0.0
    for labels, value in re.findall(r"^gateway_tokens_total\{([^}]*)\} (\S+)$", gateway.metrics(), re.M):
        if f'direction="{direction}"' in labels and f'provider="{provider}"' in labels:
            total += float(value)
    return total


def tool_call_completion(arguments: str = '{"city": "Paris"}') -> dict[str, Any]:
    return {"id": "chatcmpl-tool1", "object": "chat.completion", "created": 1, "model": "x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None,
                "tool_calls": [{"id": "call_abc", "type": "function",
                                "function": {"name": "get_weather", "arguments": arguments}}]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}}


def tool_call_stream() -> str:
    base = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "x"}
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": "Let me check."},
        {"tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
    ]
    events = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39}})
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def test_message_whole_routed_to_openai_provider(gateway: Gateway, fake: FakeUpstream) -> None:
    message = sdk(gateway).messages.create(
        model="fast", max_tokens=50, system="Be brief.", stop_sequences=["END"],
        messages=[{"role": "user", "content": "Say hello"}], extra_body={"temperature": 0.2})
    assert message.type == "message" and message.role == "assistant" and message.model == "fast"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.api_key.startswith("sk-upstream-key-")  # type: ignore[union-attr]
    assert sent.json["model"] == "fake-gpt-4o-mini"
    assert sent.json["messages"] == [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Say hello"}]
    assert sent.json["max_tokens"] == 50 and sent.json["stop"] == ["END"] and sent.json["temperature"] == 0.2
    assert message.usage.input_tokens == prompt_tokens_of(sent.json)
    assert message.usage.output_tokens == len(DEFAULT_TEXT.split())
    assert tokens(gateway, "input", "fake") == message.usage.input_tokens  # accounted like an OpenAI call


def test_message_stream_events_in_anthropic_order(gateway: Gateway, fake: FakeUpstream) -> None:
    client = sdk(gateway)
    with client.messages.stream(model="fast", max_tokens=50,
                                messages=[{"role": "user", "content": "Say hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_TEXT
    assert final.stop_reason == "end_turn" and final.model == "fast"
    assert final.usage.output_tokens == len(DEFAULT_TEXT.split()) and final.usage.input_tokens > 0
    events = [e.type for e in client.messages.create(model="fast", max_tokens=50, stream=True,
                                                     messages=[{"role": "user", "content": "hi"}])]
    assert events[0] == "message_start" and events[1] == "content_block_start"
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[2:-3]) == {"content_block_delta"}
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}


def test_tools_whole_and_tool_results_translated(gateway: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(body=tool_call_completion()))
    client = sdk(gateway)
    message = client.messages.create(model="fast", max_tokens=100, tools=[TOOL],
                                     tool_choice={"type": "tool", "name": "get_weather"},
                                     messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}
    assert block.id == "call_abc"
    sent = fake.requests[-1].json
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city", "parameters": TOOL["input_schema"]}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    # the next turn: the tool's result goes back as an OpenAI tool message, before the user's text
    client.messages.create(model="fast", max_tokens=100, tools=[TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_abc", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_abc", "content": "18C, sunny"},
                                     {"type": "text", "text": "Thanks"}]}])
    sent = fake.requests[-1].json
    assert sent["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_abc", "content": "18C, sunny"}
    assert sent["messages"][3] == {"role": "user", "content": "Thanks"}


def test_tools_streamed_as_input_json_deltas(gateway: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(body=tool_call_stream(), headers={"Content-Type": "text/event-stream"}))
    client = sdk(gateway)
    with client.messages.stream(model="fast", max_tokens=100, tools=[TOOL],
                                messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in stream]
        final = stream.get_final_message()
    assert ("content_block_delta", "input_json_delta") in kinds and ("content_block_delta", "text_delta") in kinds
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == "Let me check."  # type: ignore[union-attr]
    tool = final.content[1]
    assert tool.type == "tool_use" and tool.input == {"city": "Paris"} and tool.id == "call_abc"
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (30, 9)


def test_images_base64_and_url_become_image_parts(gateway: Gateway, fake: FakeUpstream) -> None:
    sdk(gateway).messages.create(model="fast", max_tokens=20, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What are these?"}]}])
    parts = fake.requests[-1].json["messages"][0]["content"]
    assert parts == [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                     {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                     {"type": "text", "text": "What are these?"}]


def test_count_tokens_is_an_estimate(gateway: Gateway, fake: FakeUpstream) -> None:
    client = sdk(gateway)
    short = client.messages.count_tokens(model="fast", messages=[{"role": "user", "content": "hi"}])
    long = client.messages.count_tokens(model="fast", system="x" * 400,
                                        messages=[{"role": "user", "content": "hi " * 200}])
    assert 0 < short.input_tokens < long.input_tokens
    assert fake.count() == 0  # nothing was sent upstream
    with pytest.raises(anthropic.BadRequestError):
        client.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "hi"}])


def test_bearer_key_and_api_prefix(gateway: Gateway, fake: FakeUpstream) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url + "/api", auth_token=CLIENT_KEY, api_key=None,
                                 max_retries=0)
    message = client.messages.create(model="fast", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == DEFAULT_TEXT  # type: ignore[union-attr]


def test_errors_in_anthropic_shape(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gateway = start_gateway(basic_config(fake).replace('allowed_providers: ["*"]',
                                                       'allowed_providers: ["*"]\n    limits: {req_per_min: 1}'))
    with pytest.raises(anthropic.AuthenticationError) as denied:
        sdk(gateway, "sk-wrong-key-000000").messages.create(model="fast", max_tokens=10,
                                                           messages=[{"role": "user", "content": "hi"}])
    assert denied.value.status_code == 401
    assert denied.value.body == {"type": "error", "error": {"type": "authentication_error",
                                                            "message": "Invalid API key."}}
    raw = httpx.post(gateway.base_url + "/v1/messages", headers={"x-api-key": CLIENT_KEY},
                     json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
    assert raw.status_code == 400
    assert raw.json()["type"] == "error" and raw.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in raw.json()["error"]["message"]
    client = sdk(gateway)
    client.messages.create(model="fast", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="fast", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert limited.value.status_code == 429 and int(limited.value.response.headers["retry-after"]) >= 1
    assert limited.value.body["type"] == "error"  # type: ignore[index]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    missing = httpx.post(gateway.base_url + "/v1/messages/nope", headers={"x-api-key": CLIENT_KEY}, json={})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_cut_stream_ends_with_an_anthropic_error_event(gateway: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(cut_after=2))
    with pytest.raises(anthropic.APIStatusError) as broken:  # the SDK raises on an ``error`` event
        events = list(sdk(gateway).messages.create(model="fast", max_tokens=10, stream=True,
                                                   messages=[{"role": "user", "content": "hi"}]))
        assert events  # not reached
    assert "stream" in str(broken.value.message).lower() or "provider" in str(broken.value.message).lower()


# ---------------------------------------------------------------- same-dialect pass-through

@pytest.fixture
def fake_anthropic() -> Iterator[Any]:
    if TYPES["anthropic"].adapter is None:
        pytest.skip("the Anthropic adapter (gateway/providers/anthropic/) is not there yet")
    from tests.fake_anthropic import FakeAnthropic  # written with that adapter

    with FakeAnthropic() as server:
        yield server


def anthropic_config(fake_anthropic: Any) -> str:
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 5
    llm_providers:
      - id: claude
        type: anthropic
        base_url: {fake_anthropic.base_url}
        api_keys: ["sk-ant-upstream-key-1111111"]
        models: [claude-fake-1]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0}}
    model_aliases:
      smart: claude:claude-fake-1
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """)


def test_pass_through_to_anthropic_provider_untranslated(start_gateway: Callable[..., Gateway],
                                                         fake_anthropic: Any) -> None:
    gateway = start_gateway(anthropic_config(fake_anthropic))
    body = {"model": "smart", "max_tokens": 64, "system": [{"type": "text", "text": "Be brief.",
                                                            "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
            "top_k": 5, "thinking": {"type": "disabled"}}
    answer = httpx.post(gateway.base_url + "/v1/messages", headers={"x-api-key": CLIENT_KEY}, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    sent = fake_anthropic.requests[-1]
    # untranslated: fields no OpenAI body has (top_k, thinking, cache_control) arrive as the client sent them
    assert sent.json == {**body, "model": "claude-fake-1"}
    assert sent.api_key == "sk-ant-upstream-key-1111111"
    data = answer.json()
    assert data["id"].startswith("msg_fake") and data["type"] == "message"
    assert data["usage"]["cache_read_input_tokens"] == 0  # Anthropic's own usage fields, kept
    # accounted from the native usage: Anthropic's input_tokens (7 = 2 + 2 words + 3) and output_tokens
    assert tokens(gateway, "input", "claude") == data["usage"]["input_tokens"] == 7
    assert tokens(gateway, "output", "claude") == data["usage"]["output_tokens"] == 5


def test_pass_through_stream_untranslated(start_gateway: Callable[..., Gateway], fake_anthropic: Any) -> None:
    gateway = start_gateway(anthropic_config(fake_anthropic))
    with sdk(gateway).messages.stream(model="smart", max_tokens=64,
                                      messages=[{"role": "user", "content": "Say hello"}]) as stream:
        final = stream.get_final_message()
    assert final.id.startswith("msg_fake")
    assert "".join(b.text for b in final.content if b.type == "text") == "Hello from the fake upstream"
    assert fake_anthropic.requests[-1].json["stream"] is True
    body = {"model": "smart", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", gateway.base_url + "/v1/messages", headers={"x-api-key": CLIENT_KEY}, json=body) as raw:
        text = raw.read().decode()
    assert "event: ping" in text  # the Anthropic upstream's own event: only a pass-through keeps it
    assert text.rstrip().endswith('data: {"type": "message_stop"}')  # as the upstream wrote it (json.dumps)
