"""The OpenAI and Azure adapters as pure translation, on payloads recorded from the OpenAI API's documented
shapes (``payloads/openai/``), reached the way the gateway reaches them: through the registry."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from gateway.core.call import CHAT, EMBEDDINGS, Call
from gateway.core.policy import Limits
from gateway.core.pricing import Pricing
from gateway.core.targets import ProviderKey, ProviderSpec, Target
from gateway.providers.base import CLIENT_ERROR, KEY_REJECTED, OK, RATE_LIMITED, SERVER_ERROR
from gateway.providers.registry import adapter_for

PAYLOADS = Path(__file__).parent / "payloads" / "openai"
OPENAI = adapter_for("openai")
AZURE = adapter_for("azure")


def provider(protocol: str = "openai", root: str = "https://api.openai.com/v1",
             stream_usage: bool = True) -> ProviderSpec:
    return ProviderSpec(id="p", type="openai", protocol=protocol, api_root=root, keys=(), models=frozenset(),
                        pricing=Pricing(), limits=Limits(), weight=1.0, headers=(("X-Org", "org-1"),),
                        timeout_s=10, cooldown_s=60, stream_usage=stream_usage, needs_key=True,
                        api_version="2024-10-21")


KEY = ProviderKey("p", 1, "sk-secret-upstream-key")


def chat(body: dict, *, stream: bool = False, wants_usage: bool = False, model: str = "fast") -> Call:
    return Call(CHAT, "/chat/completions", body, model, stream, wants_usage)


def test_chat_request_rewrites_only_the_model_and_asks_for_stream_usage():
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2, "stream": True}
    request = OPENAI.build_request(Target(provider(), "gpt-4o-mini"), KEY, chat(body, stream=True))
    assert request.url == "https://api.openai.com/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-secret-upstream-key"
    assert request.headers["X-Org"] == "org-1"
    assert request.headers["accept"] == "text/event-stream"
    sent = orjson.loads(request.content)
    assert sent == {**body, "model": "gpt-4o-mini", "stream_options": {"include_usage": True}}
    assert body["model"] == "fast"  # the client's body is not mutated


def test_a_provider_without_stream_usage_is_not_asked_for_it():
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    request = OPENAI.build_request(Target(provider(stream_usage=False), "m"), None, chat(body, stream=True))
    assert "stream_options" not in orjson.loads(request.content)
    assert "authorization" not in request.headers  # keyless


def test_embeddings_go_to_their_path_with_only_the_model_rewritten():
    body = {"model": "emb", "input": "hello"}
    request = OPENAI.build_request(Target(provider(), "text-embedding-3-small"), KEY,
                                   Call(EMBEDDINGS, "/embeddings", body, "emb"))
    assert request.url == "https://api.openai.com/v1/embeddings"
    assert orjson.loads(request.content) == {"model": "text-embedding-3-small", "input": "hello"}
    assert request.headers["accept"] == "application/json"


def test_azure_request_uses_the_deployment_path_and_api_key_header():
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
    request = AZURE.build_request(Target(provider("azure", "https://res.openai.azure.com"), "gpt4o-deploy"),
                                  KEY, chat(body))
    assert request.url == ("https://res.openai.azure.com/openai/deployments/gpt4o-deploy/chat/completions"
                           "?api-version=2024-10-21")
    assert request.headers["api-key"] == "sk-secret-upstream-key" and "authorization" not in request.headers
    assert "model" not in orjson.loads(request.content)
    assert body["model"] == "fast"


def test_recorded_response_is_translated_with_the_requested_model_and_usage():
    raw = (PAYLOADS / "chat_response.json").read_bytes()
    answer = OPENAI.parse_response(raw, chat({"messages": []}))
    data = json.loads(orjson.dumps(answer.data))
    assert data["model"] == "fast"
    assert data["choices"][0]["message"]["content"] == "Hello! How can I assist you today?"
    usage = answer.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.exact) == (19, 10, True)


def test_response_without_usage_is_counted_locally():
    raw = orjson.dumps({"choices": [{"message": {"role": "assistant", "content": "x" * 40}}]})
    usage = OPENAI.parse_response(raw, chat({"messages": [{"role": "user", "content": "y" * 20}]}, model="m")).usage
    assert usage.exact is False and usage.completion_tokens == 10 and usage.prompt_tokens > 5


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]"])
def test_an_answer_that_is_not_a_json_object_is_a_value_error(raw):
    with pytest.raises(ValueError):
        OPENAI.parse_response(raw, chat({}))


@pytest.mark.parametrize("split", [1, 7, 64, 100_000])
def test_recorded_stream_relays_event_by_event_whatever_the_chunking(split):
    raw = (PAYLOADS / "chat_stream.txt").read_bytes()
    relay = OPENAI.stream_relay(chat({}, stream=True))
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
    raw = (PAYLOADS / "chat_stream.txt").read_bytes().replace(b"\n", b"\r\n")
    relay = OPENAI.stream_relay(chat({}, stream=True, wants_usage=True))
    events = relay.feed(raw)
    assert len(events) == 6
    assert orjson.loads(events[4][6:])["usage"]["total_tokens"] == 11


def test_stream_without_usage_is_counted_locally():
    relay = OPENAI.stream_relay(chat({"messages": [{"role": "user", "content": "abcd"}]}, stream=True, model="m"))
    relay.feed(b'data: {"choices":[{"delta":{"content":"12345678"}}]}\n\ndata: [DONE]\n\n')
    usage = relay.final_usage()
    assert usage.exact is False and usage.completion_tokens == 2


def test_a_stream_cut_before_done_is_not_done():
    relay = OPENAI.stream_relay(chat({}, stream=True))
    relay.feed((PAYLOADS / "chat_stream.txt").read_bytes().split(b"data: [DONE]")[0])
    assert relay.done is False


def test_upstream_error_messages_are_scrubbed_of_keys():
    body = (b'{"error": {"message": "Incorrect API key provided: sk-secret-upstream-key. See docs.", '
            b'"code": "invalid_api_key"}}')
    message = OPENAI.error_message(body, "sk-secret-upstream-key")
    assert "sk-secret" not in message and "Incorrect API key provided" in message
    assert "sk-" not in OPENAI.error_message(b'{"error": {"message": "key sk-proj-abcdefghijkl is bad"}}', None)


@pytest.mark.parametrize("status, kind", [
    (200, OK), (429, RATE_LIMITED), (401, KEY_REJECTED), (403, KEY_REJECTED), (400, CLIENT_ERROR),
    (404, CLIENT_ERROR), (408, SERVER_ERROR), (500, SERVER_ERROR), (503, SERVER_ERROR),
])
def test_statuses_are_classified(status, kind):
    assert OPENAI.classify(status, []).kind == kind


def test_a_429_is_read_with_its_rate_limit_headers():
    headers = [(b"Retry-After", b"7"), (b"X-RateLimit-Remaining-Requests", b"0"),
               (b"x-ratelimit-reset-requests", b"6m0s"), (b"content-type", b"application/json")]
    verdict = OPENAI.classify(429, headers)
    assert verdict.kind == RATE_LIMITED and verdict.retry_after_s == 7.0
    assert verdict.headroom == {"retry-after": "7", "x-ratelimit-remaining-requests": "0",
                                "x-ratelimit-reset-requests": "6m0s"}
    reset_only = OPENAI.classify(429, [(b"x-ratelimit-reset-tokens", b"1.5s")])
    assert reset_only.retry_after_s == 1.5
    ok = OPENAI.classify(200, [(b"x-ratelimit-remaining-tokens", b"120")])
    assert ok.retry_after_s is None and ok.headroom == {"x-ratelimit-remaining-tokens": "120"}
