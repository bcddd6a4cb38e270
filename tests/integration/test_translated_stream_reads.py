"""A stream the gateway translates for another dialect, read from the upstream many events at a
time (one write holding the whole stream, as a fast upstream or a coalescing network sends it):
each dialect's client gets the text exactly and the upstream's usage, the tokens are counted,
and an OpenAI client of the same stream still sees the model it asked for."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from tests.conftest import CLIENT_KEY, Gateway
from tests.fake_upstream import Behaviour, FakeUpstream

TEXTS = ["Hello", ' "quoted" ', "back\\slash", "line\nbreak", "été ✓", ' "usage": {"x": 1} ', "usage", "end."]
USAGE = {"prompt_tokens": 21, "completion_tokens": 13, "total_tokens": 34}


def one_read_stream(spaced: bool) -> str:
    """The whole stream as one body: text chunks with ``"usage": null`` (what OpenAI sends when usage is
    asked for), the finish, the usage chunk and ``[DONE]``; the upstream's own model in every chunk."""
    seps = (", ", ": ") if spaced else (",", ":")
    base = {"id": "chatcmpl-burst", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model-x"}
    chunks: list[dict[str, Any]] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                          "finish_reason": None}], "usage": None}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}], "usage": None}
               for t in TEXTS]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
    chunks.append({**base, "choices": [], "usage": USAGE})
    return "".join(f"data: {json.dumps(c, separators=seps)}\n\n" for c in chunks) + "data: [DONE]\n\n"


@pytest.fixture
def gw(start_gateway: Callable[..., Gateway], fake: FakeUpstream, fake2: FakeUpstream) -> Gateway:
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
      - id: chatonly
        type: openai-compatible
        base_url: {fake2.base_url}
        api_keys: ["sk-chat-only-key-333333"]
        models: [chatty]
        endpoints: [chat]
    model_aliases:
      fast: oai:fake-gpt-4o
      kept: {{targets: [chatonly:chatty], cache: {{ttl_s: 60, max_mb: 1}}}}
    api_keys:
      - id: app
        key: {CLIENT_KEY}
        allowed_providers: ["*"]
    """))


def script(fake: FakeUpstream, spaced: bool) -> None:
    fake.script(Behaviour(body=one_read_stream(spaced), headers={"Content-Type": "text/event-stream"}))


def output_tokens(gateway: Gateway, provider: str) -> float:
    return sum(float(value) for labels, value in
               re.findall(r"^gateway_tokens_total\{([^}]*)\} (\S+)$", gateway.metrics(), re.M)
               if 'direction="output"' in labels and f'provider="{provider}"' in labels)


@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_anthropic_and_google_clients_get_the_text_and_usage_of_a_one_read_stream(
        gw: Gateway, fake: FakeUpstream, spaced: bool) -> None:
    script(fake, spaced)
    client = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    with client.messages.stream(model="fast", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "".join(TEXTS) and final.model == "fast" and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (21, 13)

    script(fake, spaced)
    google = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(base_url=gw.base_url, timeout=30_000))
    pieces = list(google.models.generate_content_stream(model="fast", contents="hi"))
    assert "".join(p.text or "" for p in pieces) == "".join(TEXTS)
    assert pieces[-1].usage_metadata is not None and pieces[-1].usage_metadata.candidates_token_count == 13
    assert pieces[-1].model_version == "fast"
    assert output_tokens(gw, "oai") == 26  # both answers counted with the upstream's exact usage


def test_an_openai_client_of_the_same_stream_still_gets_the_model_it_asked_for(gw: Gateway, fake: FakeUpstream) -> None:
    script(fake, False)
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)
    chunks = list(client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert {c.model for c in chunks} == {"fast"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(TEXTS)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 13


def test_a_responses_stream_over_chat_from_one_read_is_exact_and_served_again_from_the_cache(
        gw: Gateway, fake2: FakeUpstream) -> None:
    fake2.script(Behaviour(body=one_read_stream(True), headers={"Content-Type": "text/event-stream"}))
    client = openai.OpenAI(base_url=gw.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30)
    for expected in ("miss", "hit"):
        raw = client.responses.with_raw_response.create(model="kept", input="hi", stream=True)
        assert raw.headers["x-cache"] == expected
        events = list(raw.parse())
        deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        completed = events[-1]
        assert deltas == "".join(TEXTS) and completed.type == "response.completed"
        assert completed.response.model == "kept"
        assert completed.response.usage is not None and completed.response.usage.output_tokens == 13
    assert fake2.count() == 1
    again = client.responses.with_raw_response.create(model="kept", input="hi", stream=True, extra_headers={
        "Cache-Control": "no-cache"})
    list(again.parse())
    assert again.headers["x-cache"] == "miss" and fake2.count() == 2  # the request's Cache-Control is heard
