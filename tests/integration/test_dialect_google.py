"""Google's generateContent dialect inbound, end to end over plain HTTP in Google's shape.

Routed to the OpenAI-shaped fake upstream, the body is translated to OpenAI's chat shape and the
answer back to ``GenerateContentResponse``; routed to a Gemini provider (the Gemini fake) it
passes through untranslated. Errors come back as ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gateway.providers.registry import TYPES
from tests.conftest import CLIENT_KEY, Gateway, basic_config
from tests.fake_upstream import DEFAULT_TEXT, Behaviour, FakeUpstream, prompt_tokens_of

GOOG = {"x-goog-api-key": CLIENT_KEY}
WEATHER = {"functionDeclarations": [{"name": "get_weather", "description": "The weather in a city",
                                     "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                                                    "required": ["city"]}}]}


def generate(gateway: Gateway, model: str, body: dict[str, Any], action: str = "generateContent",
             headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}/v1beta/models/{model}:{action}", json=body,
                      headers=GOOG if headers is None else headers, params=params, timeout=30)


def sse_objects(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def test_generate_content_routed_to_openai_provider(gateway: Gateway, fake: FakeUpstream) -> None:
    answer = generate(gateway, "fast", {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "generationConfig": {"maxOutputTokens": 40, "temperature": 0.3, "stopSequences": ["END"]}})
    assert answer.status_code == 200, answer.text
    data = answer.json()
    candidate = data["candidates"][0]
    assert candidate["content"] == {"role": "model", "parts": [{"text": DEFAULT_TEXT}]}
    assert candidate["finishReason"] == "STOP" and data["modelVersion"] == "fast"
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.json["model"] == "fake-gpt-4o-mini"
    assert sent.json["messages"] == [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "Say hello"}]
    assert (sent.json["max_tokens"], sent.json["temperature"], sent.json["stop"]) == (40, 0.3, ["END"])
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] == prompt_tokens_of(sent.json)
    assert usage["candidatesTokenCount"] == len(DEFAULT_TEXT.split())
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]


def test_key_in_query_and_provider_model_in_path(gateway: Gateway, fake: FakeUpstream) -> None:
    answer = generate(gateway, "fake:fake-gpt-4o", {"contents": [{"parts": [{"text": "hi"}]}]}, headers={},
                      params={"key": CLIENT_KEY})
    assert answer.status_code == 200, answer.text
    assert fake.requests[-1].json["model"] == "fake-gpt-4o"


def test_stream_generate_content_sse(gateway: Gateway, fake: FakeUpstream) -> None:
    answer = generate(gateway, "fast", {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]},
                      action="streamGenerateContent", params={"alt": "sse"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    objects = sse_objects(answer.text)
    assert len(objects) >= 2
    text = "".join(p.get("text", "") for o in objects for c in o["candidates"] for p in c["content"]["parts"])
    assert text == DEFAULT_TEXT
    assert objects[-1]["candidates"][0]["finishReason"] == "STOP"
    assert objects[-1]["usageMetadata"]["candidatesTokenCount"] == len(DEFAULT_TEXT.split())
    assert fake.requests[-1].json["stream"] is True


def test_stream_generate_content_without_alt_is_a_json_array(gateway: Gateway, fake: FakeUpstream) -> None:
    answer = generate(gateway, "fast", {"contents": [{"parts": [{"text": "Say hello"}]}]},
                      action="streamGenerateContent")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    objects = answer.json()
    assert isinstance(objects, list) and len(objects) >= 2
    assert "".join(o["candidates"][0]["content"]["parts"][0].get("text", "") for o in objects) == DEFAULT_TEXT


def test_function_calls_and_responses(gateway: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(body={
        "id": "chatcmpl-t", "object": "chat.completion", "created": 1, "model": "x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                     "tool_calls": [{"id": "call_1", "type": "function",
                                     "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}))
    answer = generate(gateway, "fast", {"contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
                                        "tools": [WEATHER],
                                        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}})
    assert answer.status_code == 200, answer.text
    parts = answer.json()["candidates"][0]["content"]["parts"]
    assert parts == [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1"}}]
    sent = fake.requests[-1].json
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert sent["tool_choice"] == "required"
    # the next turn: the model's call and the function's response, matched by name (no ids, as Gemini 2.0 sends)
    answer = generate(gateway, "fast", {"tools": [WEATHER], "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]}]})
    assert answer.status_code == 200, answer.text
    messages = fake.requests[-1].json["messages"]
    call_id = messages[1]["tool_calls"][0]["id"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert messages[2] == {"role": "tool", "tool_call_id": call_id, "content": '{"temp":18}'}


def test_function_call_streamed(gateway: Gateway, fake: FakeUpstream) -> None:
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "x"}
    deltas = [{"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                               "function": {"name": "get_weather", "arguments": '{"ci'}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Rome"}'}}]}]
    events = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    fake.script(Behaviour(body=body, headers={"Content-Type": "text/event-stream"}))
    answer = generate(gateway, "fast", {"contents": [{"parts": [{"text": "Weather in Rome?"}]}], "tools": [WEATHER]},
                      action="streamGenerateContent", params={"alt": "sse"})
    last = sse_objects(answer.text)[-1]["candidates"][0]
    assert last["content"]["parts"] == [{"functionCall": {"name": "get_weather", "args": {"city": "Rome"},
                                                          "id": "call_9"}}]
    assert last["finishReason"] == "STOP"


def test_inline_image_becomes_an_image_part(gateway: Gateway, fake: FakeUpstream) -> None:
    answer = generate(gateway, "fast", {"contents": [{"parts": [
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}, {"text": "What is this?"}]}]})
    assert answer.status_code == 200, answer.text
    assert fake.requests[-1].json["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "text", "text": "What is this?"}]


def test_errors_in_google_shape(start_gateway: Callable[..., Gateway], fake: FakeUpstream) -> None:
    gateway = start_gateway(basic_config(fake).replace('allowed_providers: ["*"]',
                                                       'allowed_providers: ["*"]\n    limits: {req_per_min: 1}'))
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    denied = generate(gateway, "fast", body, headers={"x-goog-api-key": "sk-wrong-key-000000"})
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == 401 and denied.json()["error"]["status"] == "UNAUTHENTICATED"
    assert denied.json()["error"]["message"] == "Invalid API key."
    bad = generate(gateway, "fast", {"contents": []})
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT" and "contents" in bad.json()["error"]["message"]
    unknown = generate(gateway, "no-such-model", body)
    assert unknown.status_code == 400 and unknown.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert unknown.json()["error"]["details"][0]["reason"] == "model_not_found"
    assert generate(gateway, "fast", body).status_code == 200
    limited = generate(gateway, "fast", body)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED" and limited.json()["error"]["code"] == 429
    missing = generate(gateway, "fast", body, action="predict")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_cut_stream_ends_with_a_google_error(gateway: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(cut_after=2))
    answer = generate(gateway, "fast", {"contents": [{"parts": [{"text": "hi"}]}]},
                      action="streamGenerateContent", params={"alt": "sse"})
    last = sse_objects(answer.text)[-1]
    assert last["error"]["code"] == 502 and last["error"]["status"] == "UNAVAILABLE"


# ---------------------------------------------------------------- same-dialect pass-through

@pytest.fixture
def fake_gemini() -> Iterator[Any]:
    if TYPES["gemini"].adapter is None:
        pytest.skip("the Gemini adapter (gateway/providers/gemini/) is not there yet")
    from tests.fake_gemini import FakeGemini  # written with that adapter

    with FakeGemini() as server:
        yield server


def gemini_config(fake_gemini: Any) -> str:
    return textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 5
    llm_providers:
      - id: gem
        type: gemini
        base_url: {fake_gemini.base_url}/v1beta
        api_keys: ["AIza-upstream-key-11111111111"]
        models: [gemini-fake-flash]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0}}
    model_aliases:
      flash: gem:gemini-fake-flash
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """)


def tokens(gateway: Gateway, direction: str, provider: str) -> float:
    total = 0.0
    for labels, value in re.findall(r"^gateway_tokens_total\{([^}]*)\} (\S+)$", gateway.metrics(), re.M):
        if f'direction="{direction}"' in labels and f'provider="{provider}"' in labels:
            total += float(value)
    return total


def test_pass_through_to_gemini_provider_untranslated(start_gateway: Callable[..., Gateway],
                                                      fake_gemini: Any) -> None:
    gateway = start_gateway(gemini_config(fake_gemini))
    body = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}, "maxOutputTokens": 30}}
    answer = generate(gateway, "flash", body)
    assert answer.status_code == 200, answer.text
    sent = fake_gemini.requests[-1]
    assert sent.path.startswith("/v1beta/models/gemini-fake-flash:generateContent")
    assert sent.json == body  # untranslated: safetySettings and thinkingConfig as the client sent them
    assert sent.api_key == "AIza-upstream-key-11111111111" and CLIENT_KEY not in sent.path
    data = answer.json()
    assert data["responseId"].startswith("fake")  # the upstream's own answer
    assert data["candidates"][0]["content"]["parts"] == [{"text": "Hello from the fake Gemini"}]
    assert tokens(gateway, "input", "gem") == data["usageMetadata"]["promptTokenCount"] == 2
    assert tokens(gateway, "output", "gem") == data["usageMetadata"]["candidatesTokenCount"] == 5


def test_pass_through_stream_untranslated(start_gateway: Callable[..., Gateway], fake_gemini: Any) -> None:
    gateway = start_gateway(gemini_config(fake_gemini))
    body = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}
    answer = generate(gateway, "flash", body, action="streamGenerateContent", params={"alt": "sse"})
    assert answer.status_code == 200, answer.text
    objects = sse_objects(answer.text)
    assert all(o["responseId"].startswith("fake") for o in objects)
    assert "".join(o["candidates"][0]["content"]["parts"][0]["text"] for o in objects) == "Hello from the fake Gemini"
    assert objects[-1]["usageMetadata"]["candidatesTokenCount"] == 5
    assert fake_gemini.requests[-1].path.startswith("/v1beta/models/gemini-fake-flash:streamGenerateContent")
    as_array = generate(gateway, "flash", body, action="streamGenerateContent")  # no alt=sse: one JSON array
    assert [o["candidates"][0]["content"]["parts"][0]["text"] for o in as_array.json()] == [
        o["candidates"][0]["content"]["parts"][0]["text"] for o in objects]
