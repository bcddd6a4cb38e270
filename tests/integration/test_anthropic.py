"""``type: anthropic`` end to end: the official OpenAI SDK -> the gateway -> a fake Anthropic Messages upstream."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageFunctionToolCall

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_anthropic import AnthropicBehaviour, FakeAnthropic
from tests.fake_upstream import DEFAULT_TEXT

KEY_1 = "sk-ant-api03-test-key-one-1111111111"
KEY_2 = "sk-ant-api03-test-key-two-2222222222"
MODEL = "claude-sonnet-4-5"
WEATHER_TOOL: ChatCompletionFunctionToolParam = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def upstream(anthropic_server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    anthropic_server.reset()
    yield anthropic_server
    anthropic_server.reset()


def config(fake: FakeAnthropic, keys: str = f'api_keys: ["{KEY_1}", "{KEY_2}"]', extra: str = "") -> str:
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 5
    routing:
      cooldown_s: 60
    llm_providers:
      - id: claude
        type: anthropic
        base_url: {fake.base_url}
        {keys}
        anthropic_version: "2023-06-01"
        models: [{MODEL}]
    api_keys:
      - id: app
        key: {CLIENT_KEY}
    """) + textwrap.dedent(extra)


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], upstream: FakeAnthropic) -> Gateway:
    return start_gateway(config(upstream))


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def sent(fake: FakeAnthropic, n: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[n].json
    return body


def test_plain_chat(gw: Gateway, upstream: FakeAnthropic) -> None:
    answer = sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello to me"}])
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert answer.choices[0].finish_reason == "stop" and answer.model == MODEL
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3 + 4, len(DEFAULT_TEXT.split()))
    request = upstream.requests[-1]
    assert request.path == "/v1/messages"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.api_key in (KEY_1, KEY_2) and "authorization" not in request.headers
    assert request.json == {"model": MODEL, "max_tokens": 4096,
                            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello to me"}]}]}


def test_system_prompt_sampling_and_multi_turn(gw: Gateway, upstream: FakeAnthropic) -> None:
    sdk(gw).chat.completions.create(model=MODEL, max_tokens=300, temperature=0.2, top_p=0.5, stop=["END"], messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"}, {"role": "user", "content": "and again"}])
    body = sent(upstream)
    assert body["system"] == "You are terse."
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["stop_sequences"]) == (300, 0.2, 0.5, ["END"])
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]  # the two user turns merged
    assert len(body["messages"][2]["content"]) == 2


def test_streaming_with_usage(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.set_default(AnthropicBehaviour(text="one two three four five six", chunks=3, cache_read_tokens=100))
    stream = sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "count"}],
                                             stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five six"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3 + 1 + 100, 6)
    assert last.usage.prompt_tokens_details is not None and last.usage.prompt_tokens_details.cached_tokens == 100
    assert sent(upstream)["stream"] is True


def test_tools_and_tool_results(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.script(AnthropicBehaviour(text="Let me look.", tool_uses=[
        {"id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]))
    client = sdk(gw)
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    answer = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL],
                                            tool_choice="required")
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me look."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "toolu_01", "get_weather", {"city": "Paris"})
    assert sent(upstream)["tools"][0]["input_schema"]["required"] == ["city"]
    assert sent(upstream)["tool_choice"] == {"type": "any"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": "toolu_01", "content": "15 degrees"}]
    final = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert final.choices[0].message.content == DEFAULT_TEXT  # the fake accepted the tool_use/tool_result turns
    turns = sent(upstream)["messages"]
    assert turns[1]["content"][1] == {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                                      "input": {"city": "Paris"}}
    assert turns[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "15 degrees"}]}


def test_streamed_tool_call_deltas(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.script(AnthropicBehaviour(text="", tool_uses=[
        {"id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"id": "toolu_b", "name": "get_weather", "input": {"city": "Lyon"}}]))
    stream = sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "both"}],
                                             tools=[WEATHER_TOOL], stream=True)
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            if delta.function is not None:
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert {i: (c["id"], c["name"], json.loads(c["arguments"])) for i, c in calls.items()} == {
        0: ("toolu_a", "get_weather", {"city": "Paris"}), 1: ("toolu_b", "get_weather", {"city": "Lyon"})}


def test_images_by_url_and_base64(gw: Gateway, upstream: FakeAnthropic) -> None:
    sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}}]}])
    assert sent(upstream)["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}}]


def test_json_response_format_comes_back_as_content(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.script(AnthropicBehaviour(text="", tool_uses=[{"name": "json_answer", "input": {"city": "Paris"}}]))
    answer = sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a city"}],
                                             response_format={"type": "json_object"})
    assert json.loads(answer.choices[0].message.content or "") == {"city": "Paris"}
    assert answer.choices[0].finish_reason == "stop" and not answer.choices[0].message.tool_calls
    assert sent(upstream)["tool_choice"] == {"type": "tool", "name": "json_answer"}


def rfc3339(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def test_a_429_with_anthropic_headers_cools_the_key(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.set_default(AnthropicBehaviour(status=429, headers={
        "retry-after": "40", "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": rfc3339(40), "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": rfc3339(40)}), key=KEY_1)
    client = sdk(gw)
    for _ in range(4):
        answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == DEFAULT_TEXT
    assert upstream.count(KEY_1) == 1  # asked once; cooling from then on
    assert upstream.count(KEY_2) == 4


def test_a_529_overloaded_cools_the_key_like_a_429(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.set_default(AnthropicBehaviour(status=529), key=KEY_2)
    client = sdk(gw)
    for _ in range(4):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert upstream.count(KEY_2) == 1 and upstream.count(KEY_1) == 4
    assert 'gateway_key_cooldowns_total{provider="claude"} 1.0' in gw.metrics()


def test_headroom_from_a_successful_answer_steers_to_the_other_key(gw: Gateway, upstream: FakeAnthropic) -> None:
    exhausted = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": rfc3339(40)}
    upstream.set_default(AnthropicBehaviour(headers=exhausted), key=KEY_1)
    client = sdk(gw)
    for _ in range(4):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert upstream.count(KEY_1) == 1 and upstream.count(KEY_2) == 3


def test_every_key_overloaded_is_a_429_for_the_client(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.set_default(AnthropicBehaviour(status=529, headers={"retry-after": "20"}))
    with pytest.raises(openai.RateLimitError) as info:
        sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert 15 <= int(info.value.response.headers["retry-after"]) <= 20


def test_a_cut_stream_ends_with_an_error_event(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.script(AnthropicBehaviour(text="one two three four", chunks=4, cut_after=5))
    stream = sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    seen = []
    with pytest.raises(openai.APIError, match="broke off|ended before it was complete"):
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen)  # some text came through before the cut


def test_an_error_event_mid_stream_reaches_the_client(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.script(AnthropicBehaviour(text="one two three", chunks=3, error_after=4))
    stream = sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)
    with pytest.raises(openai.APIError, match="Overloaded"):
        list(stream)


def test_an_upstream_400_is_told_with_anthropics_message(gw: Gateway, upstream: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as info:  # only a system prompt: Anthropic needs a message
        sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "alone"}])
    assert "at least one message is required" in str(info.value)
    assert upstream.count() == 1  # not retried on the other key


def test_what_anthropic_cannot_take_is_a_400_before_any_upstream_call(gw: Gateway, upstream: FakeAnthropic) -> None:
    with pytest.raises(openai.BadRequestError, match="input_audio"):
        sdk(gw).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}])
    assert upstream.count() == 0


def test_a_rejected_key_is_quarantined_and_its_secret_never_shown(gw: Gateway, upstream: FakeAnthropic) -> None:
    upstream.set_default(AnthropicBehaviour(status=401, body={"type": "error", "error": {
        "type": "authentication_error", "message": f"invalid x-api-key {KEY_1}"}}), key=KEY_1)
    client = sdk(gw)
    for _ in range(3):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert upstream.count(KEY_1) == 1 and upstream.count(KEY_2) == 3
    assert KEY_1 not in gw.logs() and KEY_1 not in gw.metrics()


def test_keys_come_from_claude_api_key_and_its_siblings(start_gateway: Callable[..., Gateway],
                                                         upstream: FakeAnthropic) -> None:
    env = {"ANTHROPIC_API_KEY": "", "CLAUDE_API_KEY": KEY_1, "CLAUDE_API_KEY_2": KEY_2}
    gateway = start_gateway(config(upstream, keys=""), env)
    client = sdk(gateway)
    for _ in range(2):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert upstream.count(KEY_1) == 1 and upstream.count(KEY_2) == 1
