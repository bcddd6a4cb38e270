"""The OpenAI adapter as pure functions, on payloads recorded from the OpenAI API's documented shapes."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from gateway.config.schema import Limits, Pricing
from gateway.config.snapshot import ProviderKey, ProviderSpec, Target
from gateway.providers import azure, openai
from gateway.providers.base import error_message_from

PAYLOADS = Path(__file__).parent / "payloads"


def provider(protocol: str = "openai", root: str = "https://api.openai.com/v1", stream_usage: bool = True) -> ProviderSpec:
    return ProviderSpec(id="p", type="openai", protocol=protocol, api_root=root, keys=(), models=frozenset(),
                        pricing=Pricing(), limits=Limits(), weight=1.0, headers=(("X-Org", "org-1"),),
                        timeout_s=10, cooldown_s=60, stream_usage=stream_usage, needs_key=True,
                        api_version="2024-10-21")


KEY = ProviderKey("p", 1, "sk-secret-upstream-key")


def test_chat_request_rewrites_only_the_model_and_asks_for_stream_usage():
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2, "stream": True}
    request = openai.build_chat_request(Target(provider(), "gpt-4o-mini"), KEY, body, stream=True)
    assert request.url == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret-upstream-key"
    assert request.headers["X-Org"] == "org-1"
    sent = orjson.loads(request.content)
    assert sent == {**body, "model": "gpt-4o-mini", "stream_options": {"include_usage": True}}
    assert body["model"] == "fast"  # the client's body is not mutated


def test_azure_request_uses_the_deployment_path_and_api_key_header():
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    request = azure.build_chat_request(Target(provider("azure", "https://res.openai.azure.com"), "gpt4o-deploy"),
                                       KEY, body, stream=False)
    assert request.url == ("https://res.openai.azure.com/openai/deployments/gpt4o-deploy/chat/completions"
                           "?api-version=2024-10-21")
    assert request.headers["api-key"] == "sk-secret-upstream-key" and "authorization" not in request.headers
    assert "model" not in orjson.loads(request.content)


def test_recorded_response_is_translated_with_the_requested_model_and_usage():
    raw = (PAYLOADS / "openai_chat_response.json").read_bytes()
    out, usage = openai.translate_response(raw, "fast", {"messages": []})
    data = json.loads(out)
    assert data["model"] == "fast"
    assert data["choices"][0]["message"]["content"] == "Hello! How can I assist you today?"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.exact) == (19, 10, True)


def test_response_without_usage_is_counted_locally():
    raw = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": "x" * 40}}]})
    _, usage = openai.translate_response(raw, "m", {"messages": [{"role": "user", "content": "y" * 20}]})
    assert usage.exact is False and usage.completion_tokens == 10 and usage.prompt_tokens > 5


@pytest.mark.parametrize("split", [1, 7, 64, 100_000])
def test_recorded_stream_relays_event_by_event_whatever_the_chunking(split):
    raw = (PAYLOADS / "openai_chat_stream.txt").read_bytes()
    relay = openai.StreamRelay("fast", client_wants_usage=False, request_body={})
    events = []
    for i in range(0, len(raw), split):
        events.extend(relay.feed(raw[i:i + split]))
    assert relay.done and events[-1] == b"data: [DONE]\n\n"
    chunks = [orjson.loads(e[6:]) for e in events[:-1]]
    assert len(chunks) == 4  # the usage-only chunk is dropped: the client did not ask for it
    assert all(c["model"] == "fast" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello world"
    usage = relay.final_usage()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.exact) == (9, 2, True)


def test_stream_keeps_the_usage_chunk_when_asked_and_handles_crlf():
    raw = (PAYLOADS / "openai_chat_stream.txt").read_bytes().replace(b"\n", b"\r\n")
    relay = openai.StreamRelay("fast", client_wants_usage=True, request_body={})
    events = relay.feed(raw)
    assert len(events) == 6
    assert orjson.loads(events[4][6:])["usage"]["total_tokens"] == 11


def test_stream_without_usage_is_counted_locally():
    relay = openai.StreamRelay("m", client_wants_usage=False, request_body={"messages": [{"role": "user", "content": "abcd"}]})
    relay.feed(b'data: {"choices":[{"delta":{"content":"12345678"}}]}\n\ndata: [DONE]\n\n')
    usage = relay.final_usage()
    assert usage.exact is False and usage.completion_tokens == 2


def test_upstream_error_messages_are_scrubbed_of_keys():
    body = b'{"error": {"message": "Incorrect API key provided: sk-secret-upstream-key. See docs.", "code": "invalid_api_key"}}'
    message = error_message_from(body, "sk-secret-upstream-key")
    assert "sk-secret" not in message and "Incorrect API key provided" in message
    assert "sk-" not in error_message_from(b'{"error": {"message": "key sk-proj-abcdefghijkl is bad"}}', None)
