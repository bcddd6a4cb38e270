"""Google's dialect as Gemini CLI uses it, through the real gateway: its router request (a JSON
schema with upper-case types), its tool turns (call ids, the thought-signature placeholder, thought
parts) translated for an OpenAI provider and passed untouched to a Gemini one (with
``x-goog-api-client``); reasoning and usage details back in Gemini's words; ``countTokens`` and
``models.list``."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_gemini import FakeGemini, GeminiBehaviour, prompt_tokens_of
from tests.fake_upstream import Behaviour, FakeUpstream
from tests.integration.test_dialect_google import generate, sse_objects
from tests.integration.test_openai_surface import recent_row

PLACEHOLDER = "skip_thought_signature_validator"
ROUTER_SCHEMA = {"type": "OBJECT", "properties": {"complexity_reasoning": {"type": "STRING"},
                                                 "complexity_score": {"type": "INTEGER"}},
                 "required": ["complexity_reasoning", "complexity_score"]}
READ_FILE = {"functionDeclarations": [{"name": "read_file", "description": "Reads a file",
                                       "parametersJsonSchema": {"type": "object", "properties": {
                                           "file_path": {"type": "string"}}, "required": ["file_path"],
                                           "$schema": "http://json-schema.org/draft-07/schema#"}}]}
TOOL_TURN: dict[str, Any] = {
    "systemInstruction": {"parts": [{"text": "You are Gemini CLI."}]},
    "contents": [
        {"role": "user", "parts": [{"text": "<session_context>"}, {"text": "Read secret.txt"}]},
        {"role": "model", "parts": [{"text": "Looking at the file.", "thought": True},
                                    {"functionCall": {"id": "read_file_1_0", "name": "read_file",
                                                      "args": {"file_path": "/w/secret.txt"}},
                                     "thoughtSignature": PLACEHOLDER}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "read_file_1_0", "name": "read_file",
                                                         "response": {"output": "PINEAPPLE-42"}}}]}],
    "tools": [READ_FILE, {"googleSearch": {}}],
    "generationConfig": {"temperature": 1, "topP": 0.95, "topK": 64,
                         "thinkingConfig": {"includeThoughts": True, "thinkingLevel": "HIGH"}}}


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    server = FakeGemini()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def counted(row: dict[str, Any]) -> tuple[int, int, int, int]:
    """A ledger row's tokens: (in, of them read from a cache, out, of them reasoning)."""
    return row["tokens_in"], row["cache_read_tokens"], row["tokens_out"], row["reasoning_tokens"]


def config(fake: FakeUpstream, gemini: FakeGemini) -> str:
    return textwrap.dedent(f"""
    server:
      request_timeout_s: 10
    llm_providers:
      - id: oa
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        models: [fake-gpt-4o]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0, cache_read_token_cost: 0.25}}
      - id: gem
        type: gemini
        base_url: {gemini.base_url}/v1beta
        api_keys: ["AIza-upstream-key-11111111111"]
        models: [gemini-fake-flash]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0, cache_read_token_cost: 0.25}}
    model_aliases:
      fast: oa:fake-gpt-4o
      flash: gem:gemini-fake-flash
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """)


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream, gemini: FakeGemini) -> Gateway:
    return start_gateway(config(fake, gemini))


def test_the_router_request_asks_an_openai_provider_for_json(gw: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(text='{"complexity_reasoning": "easy", "complexity_score": 1}'))
    answer = generate(gw, "fast", {
        "contents": [{"role": "user", "parts": [{"text": "Read secret.txt"}]}],
        "systemInstruction": {"parts": [{"text": "Score it."}]},
        "generationConfig": {"temperature": 1, "topK": 64, "responseMimeType": "application/json",
                             "responseJsonSchema": ROUTER_SCHEMA,
                             "thinkingConfig": {"includeThoughts": True, "thinkingLevel": "HIGH"}}})
    assert answer.status_code == 200, answer.text
    text = answer.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text)["complexity_score"] == 1
    sent = fake.requests[-1].json
    assert sent["response_format"]["json_schema"]["schema"] == {
        "type": "object", "properties": {"complexity_reasoning": {"type": "string"},
                                         "complexity_score": {"type": "integer"}},
        "required": ["complexity_reasoning", "complexity_score"]}
    assert sent["reasoning_effort"] == "high" and "top_k" not in sent


def test_a_tool_turn_reaches_an_openai_provider_without_gemini_signatures(gw: Gateway, fake: FakeUpstream) -> None:
    answer = generate(gw, "fast", TOOL_TURN, action="streamGenerateContent", params={"alt": "sse"})
    assert answer.status_code == 200, answer.text
    raw = fake.requests[-1]
    assert PLACEHOLDER not in json.dumps(raw.json) and "thought" not in json.dumps(raw.json)
    assert raw.json["messages"] == [
        {"role": "system", "content": "You are Gemini CLI."},
        {"role": "user", "content": [{"type": "text", "text": "<session_context>"},
                                     {"type": "text", "text": "Read secret.txt"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "read_file_1_0", "type": "function",
             "function": {"name": "read_file", "arguments": '{"file_path":"/w/secret.txt"}'}}]},
        {"role": "tool", "tool_call_id": "read_file_1_0", "content": '{"output":"PINEAPPLE-42"}'}]
    assert [t["function"]["name"] for t in raw.json["tools"]] == ["read_file"]  # googleSearch left out
    assert "$schema" in raw.json["tools"][0]["function"]["parameters"]
    last = sse_objects(answer.text)[-1]
    assert last["candidates"][0]["finishReason"] == "STOP"


def test_reasoning_and_usage_details_come_back_in_geminis_words(gw: Gateway, fake: FakeUpstream) -> None:
    usage = {"prompt_tokens": 700, "completion_tokens": 50, "total_tokens": 750,
             "prompt_tokens_details": {"cached_tokens": 500}, "completion_tokens_details": {"reasoning_tokens": 30}}
    fake.script(Behaviour(body={"id": "chatcmpl-r", "object": "chat.completion", "created": 1, "model": "x",
                                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                    "role": "assistant", "content": "It is PINEAPPLE-42.",
                                    "reasoning_content": "The file says so."}}], "usage": usage}))
    answer = generate(gw, "fast", TOOL_TURN)
    data = answer.json()
    assert data["candidates"][0]["content"]["parts"] == [{"text": "The file says so.", "thought": True},
                                                         {"text": "It is PINEAPPLE-42."}]
    assert data["usageMetadata"] == {"promptTokenCount": 700, "candidatesTokenCount": 20, "totalTokenCount": 750,
                                     "cachedContentTokenCount": 500, "thoughtsTokenCount": 30}
    row = recent_row(gw)
    assert counted(row) == (700, 500, 50, 30)
    assert row["cost"] == pytest.approx((200 * 1.0 + 500 * 0.25 + 50 * 2.0) / 1000)
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "x"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Hm."},
                                    "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {"content": "Done."}, "finish_reason": "stop"}]},
              {**base, "choices": [], "usage": usage}]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    fake.script(Behaviour(body=body, headers={"Content-Type": "text/event-stream"}))
    streamed = sse_objects(generate(gw, "fast", TOOL_TURN, action="streamGenerateContent",
                                    params={"alt": "sse"}).text)
    assert streamed[0]["candidates"][0]["content"]["parts"] == [{"text": "Hm.", "thought": True}]
    assert streamed[-1]["candidates"][0]["finishReason"] == "STOP"
    assert streamed[-1]["usageMetadata"] == data["usageMetadata"]


def test_a_stream_without_usage_still_reports_an_estimate(gw: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(usage=False))
    objects = sse_objects(generate(gw, "fast", TOOL_TURN, action="streamGenerateContent", params={"alt": "sse"}).text)
    meta = objects[-1]["usageMetadata"]
    assert meta["promptTokenCount"] > 0 and meta["candidatesTokenCount"] > 0
    assert objects[-1]["candidates"][0]["finishReason"] == "STOP"


def test_a_gemini_provider_gets_the_cli_turn_untouched(gw: Gateway, gemini: FakeGemini) -> None:
    gemini.script(GeminiBehaviour(text="It is PINEAPPLE-42.", thoughts=7, cached=3))
    headers = {"x-goog-api-key": CLIENT_KEY, "x-goog-api-client": "google-genai-sdk/1.30.0 gl-node/v20.20.2"}
    answer = generate(gw, "flash", TOOL_TURN, action="streamGenerateContent", params={"alt": "sse"}, headers=headers)
    assert answer.status_code == 200, answer.text
    sent = gemini.requests[-1]
    assert sent.json == TOOL_TURN  # thought parts, the placeholder, googleSearch, topK: as the client sent them
    assert sent.headers["x-goog-api-client"] == "google-genai-sdk/1.30.0 gl-node/v20.20.2"
    assert sent.api_key == "AIza-upstream-key-11111111111"
    meta = sse_objects(answer.text)[-1]["usageMetadata"]
    assert (meta["thoughtsTokenCount"], meta["cachedContentTokenCount"]) == (7, 3)
    row = recent_row(gw)
    prompt, out = meta["promptTokenCount"], meta["candidatesTokenCount"] + 7
    assert counted(row) == (prompt, 3, out, 7)
    assert row["cost"] == pytest.approx(((prompt - 3) * 1.0 + 3 * 0.25 + out * 2.0) / 1000)


def test_count_tokens_passes_to_gemini_and_is_estimated_elsewhere(gw: Gateway, gemini: FakeGemini) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "one two three four"}]}]}
    counted = generate(gw, "flash", body, action="countTokens")
    assert counted.status_code == 200, counted.text
    assert counted.json() == {"totalTokens": prompt_tokens_of(body)}
    assert counted.headers["x-gateway-token-count"] == "provider"
    assert gemini.requests[-1].path == "/v1beta/models/gemini-fake-flash:countTokens"
    wrapped = {"generateContentRequest": {"model": "models/flash", **body}}
    assert generate(gw, "flash", wrapped, action="countTokens").json()["totalTokens"] == prompt_tokens_of(body)
    assert gemini.requests[-1].json["generateContentRequest"]["model"] == "models/gemini-fake-flash"
    estimated = generate(gw, "fast", body, action="countTokens")
    assert estimated.status_code == 200 and estimated.headers["x-gateway-token-count"] == "estimate"
    assert estimated.json()["totalTokens"] > 0


def test_models_list_in_googles_shape(gw: Gateway) -> None:
    listed = httpx.get(gw.base_url + "/v1beta/models", headers={"x-goog-api-key": CLIENT_KEY}, timeout=10)
    assert listed.status_code == 200, listed.text
    names = [m["name"] for m in listed.json()["models"]]
    assert "models/fast" in names and "models/flash" in names
    assert all("generateContent" in m["supportedGenerationMethods"] for m in listed.json()["models"])
    page = httpx.get(gw.base_url + "/v1beta/models", params={"pageSize": 1, "key": CLIENT_KEY}, timeout=10).json()
    assert len(page["models"]) == 1 and page["nextPageToken"]
    rest = httpx.get(gw.base_url + "/v1beta/models", params={"pageSize": 100, "pageToken": page["nextPageToken"]},
                     headers={"x-goog-api-key": CLIENT_KEY}, timeout=10).json()
    assert [m["name"] for m in rest["models"]] == names[1:] and "nextPageToken" not in rest
    denied = httpx.get(gw.base_url + "/v1beta/models", headers={"x-goog-api-key": "wrong"}, timeout=10)
    assert denied.status_code == 401 and denied.json()["error"]["status"] == "UNAUTHENTICATED"
