"""The Gemini adapter end to end: the official ``openai`` SDK → the real gateway → a Gemini-shaped fake
upstream (``tests/fake_gemini.py``) → back, for chat, system instructions, streams, tools, safety blocks,
429 RESOURCE_EXHAUSTED, a rejected key, a cut stream and embeddings."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageFunctionToolCall

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_gemini import DEFAULT_TEXT, FakeGemini, GeminiBehaviour

KEY_ONE = "AIzaSyFAKE-gemini-key-one-111111111111111"
KEY_TWO = "AIzaSyFAKE-gemini-key-two-222222222222222"
WEATHER_TOOL: ChatCompletionFunctionToolParam = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[FakeGemini]:
    server = FakeGemini()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gemini(gemini_server: FakeGemini) -> Iterator[FakeGemini]:
    gemini_server.reset()
    yield gemini_server
    gemini_server.reset()


def gemini_config(fake: FakeGemini, cooldown_s: float = 60) -> str:
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 5
      connect_timeout_s: 2
    llm_providers:
      - id: gemini
        type: gemini
        base_url: {fake.base_url}/v1beta
        api_keys: ["{KEY_ONE}", "{KEY_TWO}"]
        models: [gemini-2.5-flash, gemini-embedding-001]
        cooldown_s: {cooldown_s}
    model_aliases:
      smart: gemini:gemini-2.5-flash
    api_keys:
      - id: app
        key: {CLIENT_KEY}
    """)


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway], gemini: FakeGemini) -> Gateway:
    return start_gateway(gemini_config(gemini, cooldown_s=1))


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)


def no_key_in_urls(fake: FakeGemini) -> None:
    for request in fake.requests:
        assert "key=" not in request.path and KEY_ONE not in request.path and KEY_TWO not in request.path
        assert request.headers["x-goog-api-key"] in (KEY_ONE, KEY_TWO)


def test_chat_through_the_openai_sdk(gateway, gemini):
    answer = sdk(gateway).chat.completions.create(model="smart", messages=[{"role": "user", "content": "say hi"}],
                                                  temperature=0.2, max_tokens=20)
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert answer.choices[0].finish_reason == "stop" and answer.model == "smart"
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2, 5)
    [sent] = gemini.requests
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": "say hi"}]}],
                         "generationConfig": {"temperature": 0.2, "maxOutputTokens": 20}}
    no_key_in_urls(gemini)


def test_system_messages_become_the_system_instruction(gateway, gemini):
    sdk(gateway).chat.completions.create(model="gemini-2.5-flash", messages=[
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "Bye"}])
    sent = gemini.requests[-1].json
    assert sent["systemInstruction"] == {"parts": [{"text": "Answer in French."}]}
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]


def test_streaming_with_usage(gateway, gemini):
    gemini.set_default(GeminiBehaviour(text="one two three four", chunks=4, thoughts=7))
    chunks = list(sdk(gateway).chat.completions.create(
        model="smart", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count to four"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 4 + 7)  # thinking is billed as output
    assert gemini.requests[-1].path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    no_key_in_urls(gemini)


def test_tool_calls_and_tool_results(gateway, gemini):
    client = sdk(gateway)
    gemini.script(GeminiBehaviour(function_call={"name": "get_weather", "args": {"city": "Paris"}}))
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="smart", messages=messages, tools=[WEATHER_TOOL],
                                           tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    sent = gemini.requests[-1].json
    assert sent["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 21}'}]
    second = client.chat.completions.create(model="smart", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == DEFAULT_TEXT
    contents = gemini.requests[-1].json["contents"]
    # the call came without a thought signature: it goes back with the placeholder Gemini documents for that
    assert contents[1] == {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                                                                        "args": {"city": "Paris"}},
                                                       "thoughtSignature": "skip_thought_signature_validator"}]}
    assert contents[2] == {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                                           "response": {"celsius": 21}}}]}


def test_a_streamed_tool_call(gateway, gemini):
    gemini.set_default(GeminiBehaviour(function_call={"name": "get_weather", "args": {"city": "Oslo"}}))
    chunks = list(sdk(gateway).chat.completions.create(model="smart", stream=True, tools=[WEATHER_TOOL],
                                                       messages=[{"role": "user", "content": "Oslo?"}]))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].id
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments or "") == {"city": "Oslo"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_safety_blocks_end_with_content_filter(gateway, gemini):
    client = sdk(gateway)
    gemini.script(GeminiBehaviour(block_reason="SAFETY"), GeminiBehaviour(text="Here is how", finish_reason="SAFETY"),
                  GeminiBehaviour(block_reason="PROHIBITED_CONTENT"))
    blocked = client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "bad"}])
    assert blocked.choices[0].finish_reason == "content_filter"
    assert blocked.choices[0].message.refusal == "The provider blocked this prompt (SAFETY)."
    cut = client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "bad"}])
    assert cut.choices[0].finish_reason == "content_filter" and cut.choices[0].message.content == "Here is how"
    streamed = list(client.chat.completions.create(model="smart", stream=True,
                                                   messages=[{"role": "user", "content": "bad"}]))
    assert [c.choices[0].finish_reason for c in streamed if c.choices] == ["content_filter"]


def test_429_resource_exhausted_cools_the_key_for_its_retry_delay(gateway, gemini):
    gemini.set_default(GeminiBehaviour(status=429, retry_delay="12s"), key=KEY_ONE)
    gemini.set_default(GeminiBehaviour(text="from key two"), key=KEY_TWO)
    client = sdk(gateway)
    for _ in range(2):  # keys take turns: within two requests key one is tried first once
        answer = client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content == "from key two"  # the client never sees the 429
    assert gemini.count(KEY_ONE) == 1
    gemini.set_default(None, key=KEY_ONE)  # key one would answer now, if it were asked
    time.sleep(1.5)  # longer than this provider's cooldown_s (1): only RetryInfo's 12 s keeps key one resting
    for _ in range(4):
        client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "x"}])
    assert gemini.count(KEY_ONE) == 1 and gemini.count(KEY_TWO) == 6
    metrics = gateway.metrics()
    assert "gateway_key_cooldowns_total" in metrics and KEY_ONE not in metrics


def test_a_key_gemini_calls_invalid_is_quarantined_and_the_next_key_answers(gateway, gemini):
    gemini.set_default(GeminiBehaviour(status=400, api_key_invalid=True), key=KEY_ONE)
    gemini.set_default(GeminiBehaviour(text="good key"), key=KEY_TWO)
    client = sdk(gateway)
    for _ in range(3):
        answer = client.chat.completions.create(model="smart", messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].message.content == "good key"
    assert gemini.count(KEY_ONE) <= 1  # rejected once, then left alone
    assert KEY_ONE not in gateway.logs()


def test_a_cut_stream_ends_with_an_sse_error_event(gateway, gemini):
    gemini.set_default(GeminiBehaviour(text="a b c d e f", chunks=3, cut_after=1))
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                      timeout=30) as client, \
            client.stream("POST", "/v1/chat/completions", json={
                "model": "smart", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as response:
        events = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    assert response.status_code == 200
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "a b"
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["code"] == "stream_interrupted"
    assert gemini.count() == 1  # nothing is retried once bytes reached the client


def test_embeddings_single_and_batch(gateway, gemini):
    client = sdk(gateway)
    one = client.embeddings.create(model="gemini-embedding-001", input="hello world")
    assert [round(v, 5) for v in one.data[0].embedding] == [0.1, 0.2, 0.3]
    assert one.model == "gemini-embedding-001"
    assert gemini.requests[-1].path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert gemini.requests[-1].json == {"content": {"parts": [{"text": "hello world"}]}}
    batch = client.embeddings.create(model="gemini-embedding-001", input=["a", "b", "c"], dimensions=3)
    assert [d.index for d in batch.data] == [0, 1, 2]
    assert [round(d.embedding[0], 5) for d in batch.data] == [0.1, 0.2, 0.3]
    sent = gemini.requests[-1]
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.json["requests"][2] == {"model": "models/gemini-embedding-001",
                                        "content": {"parts": [{"text": "c"}]}, "outputDimensionality": 3}
    no_key_in_urls(gemini)


def test_what_gemini_cannot_take_is_a_clear_400_and_nothing_is_sent(gateway, gemini):
    with pytest.raises(openai.BadRequestError) as info:
        sdk(gateway).chat.completions.create(model="smart", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://insecure.test/cat.png"}}]}])
    assert "data: URLs (base64) or https URLs" in str(info.value)
    assert gemini.requests == []
    # One refusal, not one per key: the translation fails the same way on every key.
    attempts = [line for line in gateway.metrics().splitlines()
                if line.startswith("gateway_upstream_attempts_total{") and 'provider="gemini"' in line]
    assert attempts == [], attempts
