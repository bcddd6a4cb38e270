"""Google's dialect through Google's own SDK (``google-genai``), pointed at the gateway by its base URL:
whole and streamed answers, function calls, token counts and the model list, routed to an
OpenAI-shaped provider (translated) and to a Gemini provider (passed through)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator

import pytest
from google import genai
from google.genai import types

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_gemini import FakeGemini
from tests.fake_upstream import DEFAULT_TEXT, Behaviour, FakeUpstream, prompt_tokens_of


@pytest.fixture
def gemini_server() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


@pytest.fixture
def gateway_both(start_gateway: Callable[..., Gateway], fake: FakeUpstream, gemini_server: FakeGemini) -> Gateway:
    return start_gateway(textwrap.dedent(f"""
    server:
      listen: "127.0.0.1:2906"
      request_timeout_s: 10
    llm_providers:
      - id: oai
        type: openai-compatible
        base_url: {fake.base_url}
        api_keys: ["sk-upstream-key-one-111111"]
        models: [fake-gpt-4o]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0}}
      - id: gem
        type: gemini
        base_url: {gemini_server.base_url}/v1beta
        api_keys: ["AIza-upstream-key-11111111111"]
        models: [gemini-fake-flash]
        pricing: {{input_token_cost: 1.0, output_token_cost: 2.0}}
    model_aliases:
      fast: oai:fake-gpt-4o
      flash: gem:gemini-fake-flash
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """))


def sdk(gateway: Gateway) -> genai.Client:
    return genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gateway.base_url, timeout=30_000))


def test_generate_content_translated_whole_and_streamed(gateway_both: Gateway, fake: FakeUpstream) -> None:
    client = sdk(gateway_both)
    answer = client.models.generate_content(
        model="fast", contents="Say hello",
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=40))
    assert answer.text == DEFAULT_TEXT
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.json["max_tokens"] == 40
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    usage = answer.usage_metadata
    assert usage is not None and usage.prompt_token_count == prompt_tokens_of(sent.json)
    assert usage.candidates_token_count == len(DEFAULT_TEXT.split())
    assert answer.candidates is not None and answer.candidates[0].finish_reason == types.FinishReason.STOP
    streamed = "".join(chunk.text or "" for chunk in client.models.generate_content_stream(
        model="fast", contents="Say hello"))
    assert streamed == DEFAULT_TEXT


def test_function_call_through_the_sdk(gateway_both: Gateway, fake: FakeUpstream) -> None:
    fake.script(Behaviour(body={
        "id": "chatcmpl-t", "object": "chat.completion", "created": 1, "model": "x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                     "tool_calls": [{"id": "call_1", "type": "function",
                                     "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}))
    weather = types.FunctionDeclaration(
        name="get_weather", description="The weather in a city",
        parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)},
                                required=["city"]))
    client = sdk(gateway_both)  # kept: a Client closes its connections when it is collected
    answer = client.models.generate_content(
        model="fast", contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[types.Tool(function_declarations=[weather])],
                                           automatic_function_calling=types.AutomaticFunctionCallingConfig(
                                               disable=True)))
    calls = answer.function_calls
    assert calls is not None and [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert fake.requests[-1].json["tools"][0]["function"]["name"] == "get_weather"


def test_pass_through_count_tokens_and_models(gateway_both: Gateway, fake: FakeUpstream,
                                              gemini_server: FakeGemini) -> None:
    client = sdk(gateway_both)
    answer = client.models.generate_content(model="flash", contents="Say hello")
    assert answer.text == "Hello from the fake Gemini"
    assert gemini_server.requests[-1].path.startswith("/v1beta/models/gemini-fake-flash:generateContent")
    assert gemini_server.requests[-1].api_key == "AIza-upstream-key-11111111111"
    counted = client.models.count_tokens(model="flash", contents="Say hello")
    assert counted.total_tokens is not None and counted.total_tokens > 0
    assert gemini_server.requests[-1].path.startswith("/v1beta/models/gemini-fake-flash:countTokens")
    estimated = client.models.count_tokens(model="fast", contents="Say hello to everyone here")
    assert estimated.total_tokens is not None and estimated.total_tokens > 0
    names = {model.name for model in client.models.list()}
    assert {"models/fast", "models/flash"} <= names
