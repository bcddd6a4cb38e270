"""The Anthropic adapter as pure translation, on payloads written from the Anthropic API's documented shapes
(``payloads/anthropic/``), reached the way the gateway reaches it: through the registry."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.core.call import CHAT, EMBEDDINGS, Call
from gateway.core.policy import Limits
from gateway.core.pricing import Pricing
from gateway.core.targets import ProviderKey, ProviderSpec, Target
from gateway.errors import InvalidRequest
from gateway.providers.base import CLIENT_ERROR, KEY_REJECTED, OK, RATE_LIMITED, SERVER_ERROR
from gateway.providers.registry import adapter_for

PAYLOADS = Path(__file__).parent / "payloads" / "anthropic"
ANTHROPIC = adapter_for("anthropic")
KEY = ProviderKey("claude", 1, "sk-ant-api03-secret-upstream-key")


def provider(version: str | None = "2023-06-01") -> ProviderSpec:
    return ProviderSpec(id="claude", type="anthropic", protocol="anthropic", api_root="https://api.anthropic.com/v1",
                        keys=(KEY,), models=frozenset(), pricing=Pricing(), limits=Limits(), weight=1.0,
                        headers=(("anthropic-beta", "prompt-caching-2024-07-31"),), timeout_s=10, cooldown_s=60,
                        stream_usage=True, needs_key=True, api_version=version)


TARGET = Target(provider(), "claude-sonnet-4-5")


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def chat(body: dict[str, Any], *, stream: bool = False, wants_usage: bool = False, model: str = "smart") -> Call:
    return Call(CHAT, "/chat/completions", body, model, stream, wants_usage)


def sent(body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    request = ANTHROPIC.build_request(TARGET, KEY, chat(body, stream=stream))
    parsed: dict[str, Any] = orjson.loads(request.content)
    return parsed


def relay_all(name: str, *, wants_usage: bool = False, body: dict[str, Any] | None = None,
              piece: int = 7) -> tuple[list[Any], Any]:
    """Feed a recorded transcript in small pieces (events split across reads); the events' data, and the relay."""
    raw = (PAYLOADS / name).read_bytes()
    relay = ANTHROPIC.stream_relay(chat(body or {"messages": []}, stream=True, wants_usage=wants_usage))
    out: list[bytes] = []
    for i in range(0, len(raw), piece):
        out.extend(relay.feed(raw[i:i + piece]))
    events = [e.removeprefix(b"data: ").removesuffix(b"\n\n") for e in out]
    return [e.decode() if e == b"[DONE]" else orjson.loads(e) for e in events], relay


# ---------------------------------------------------------------------------------------------- requests
def test_a_full_chat_request_becomes_the_documented_messages_request():
    request = ANTHROPIC.build_request(TARGET, KEY, chat(load("chat_request.openai.json")))
    assert request.method == "POST" and request.url == "https://api.anthropic.com/v1/messages"
    assert orjson.loads(request.content) == load("chat_request.anthropic.json")
    assert request.headers["x-api-key"] == KEY.secret and "authorization" not in request.headers
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["anthropic-beta"] == "prompt-caching-2024-07-31"  # the provider's own headers
    assert request.headers["accept-encoding"] == "identity"


def test_the_client_body_is_not_mutated():
    body = load("chat_request.openai.json")
    before = json.dumps(body, sort_keys=True)
    ANTHROPIC.build_request(TARGET, KEY, chat(body))
    assert json.dumps(body, sort_keys=True) == before


def test_max_tokens_defaults_and_the_configured_version_is_sent():
    assert sent({"messages": [{"role": "user", "content": "hi"}]})["max_tokens"] == 4096
    assert sent({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50})["max_tokens"] == 50
    target = Target(provider("2024-01-01"), "claude-haiku-4-5")
    request = ANTHROPIC.build_request(target, KEY, chat({"messages": [{"role": "user", "content": "hi"}]}))
    assert request.headers["anthropic-version"] == "2024-01-01"
    unversioned = ANTHROPIC.build_request(Target(provider(None), "m"), KEY,
                                          chat({"messages": [{"role": "user", "content": "hi"}]}))
    assert unversioned.headers["anthropic-version"] == "2023-06-01"


def test_a_single_system_prompt_is_a_string_and_a_stream_asks_for_events():
    body = sent({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                 "stop": "END", "stream": True, "stream_options": {"include_usage": True}}, stream=True)
    assert body["system"] == "Be brief." and body["stream"] is True and body["stop_sequences"] == ["END"]
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert "stream_options" not in body
    request = ANTHROPIC.build_request(TARGET, KEY, chat({"messages": [{"role": "user", "content": "x"}]},
                                                        stream=True))
    assert request.headers["accept"] == "text/event-stream"


def test_consecutive_turns_merge_and_tool_results_come_first_in_a_user_turn():
    body = sent({"messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": ""},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "user", "content": "note"},
        {"role": "tool", "tool_call_id": "t1", "content": "42"},
        {"role": "assistant", "content": "one"}, {"role": "assistant", "content": [{"type": "text", "text": "two"}]},
    ]})
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                                     {"type": "text", "text": "note"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
    ]


@pytest.mark.parametrize(("choice", "parallel", "expected"), [
    ("auto", None, {"type": "auto"}),
    ("none", None, {"type": "none"}),
    ("required", None, {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    (None, None, None),
])
def test_tool_choice(choice, parallel, expected):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
    if choice is not None:
        body["tool_choice"] = choice
    if parallel is not None:
        body["parallel_tool_calls"] = parallel
    out = sent(body)
    assert out.get("tool_choice") == expected
    assert out["tools"] == [{"name": "get_weather", "input_schema": {"type": "object"}}]


def test_json_object_is_a_forced_tool_and_json_schema_uses_its_schema():
    plain = sent({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}})
    assert plain["tools"] == [{"name": "json_answer", "description": "Give the answer as JSON.",
                               "input_schema": {"type": "object"}}]
    assert plain["tool_choice"] == {"type": "tool", "name": "json_answer"}
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    shaped = sent({"messages": [{"role": "user", "content": "hi"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "city", "description": "A city.", "schema": schema}}})
    assert shaped["tools"] == [{"name": "json_answer", "description": "A city.", "input_schema": schema}]


def test_json_with_the_clients_own_tools_is_asked_in_the_system_prompt():
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = sent({"messages": [{"role": "system", "content": "Sys."}, {"role": "user", "content": "hi"}],
                 "tools": tools, "response_format": {"type": "json_object"}})
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert "tool_choice" not in body
    assert body["system"][0] == {"type": "text", "text": "Sys."}
    assert "JSON" in body["system"][1]["text"]


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{"}}]}]},
     "messages[0].tool_calls[0]"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}, "tools[0]"),
])
def test_what_anthropic_cannot_take_is_a_clear_400(body, param):
    with pytest.raises(InvalidRequest) as info:
        sent(body)
    assert info.value.param == param and info.value.status == 400


def test_endpoints_other_than_chat_are_refused_with_the_provider_named():
    with pytest.raises(InvalidRequest, match="'claude'.*chat completions only"):
        ANTHROPIC.build_request(TARGET, KEY, Call(EMBEDDINGS, "/embeddings", {"input": "x"}, "m"))


def test_same_dialect_pass_through_sends_the_native_body():
    native = {"model": "alias", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    call = Call(CHAT, "/chat/completions", {"messages": []}, "alias", True, dialect="anthropic", native_body=native)
    body = orjson.loads(ANTHROPIC.build_request(TARGET, KEY, call).content)
    assert body == {**native, "model": "claude-sonnet-4-5", "stream": True}
    raw = (PAYLOADS / "message_response.json").read_bytes()
    answer = ANTHROPIC.parse_response(raw, call)
    assert answer.data == orjson.loads(raw)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2620, 91)
    relay = ANTHROPIC.stream_relay(call)
    transcript = (PAYLOADS / "stream_text.txt").read_bytes()
    out = b"".join(relay.feed(transcript))
    assert out == transcript and relay.done
    assert (relay.final_usage().prompt_tokens, relay.final_usage().completion_tokens) == (25, 15)


# ---------------------------------------------------------------------------------------------- answers
def test_a_message_becomes_a_chat_completion_with_tool_calls_and_cache_usage():
    answer = ANTHROPIC.parse_response((PAYLOADS / "message_response.json").read_bytes(), chat({"messages": []}))
    expected = load("message_response.openai.json")
    assert abs(answer.data.pop("created") - time.time()) < 60
    assert answer.data == expected
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.exact) == (2620, 91, True)


@pytest.mark.parametrize(("stop", "finish"), [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                                              ("tool_use", "tool_calls"), ("refusal", "content_filter")])
def test_finish_reasons(stop, finish):
    raw = orjson.dumps({"id": "m", "type": "message", "content": [{"type": "text", "text": "x"}],
                        "stop_reason": stop, "usage": {"input_tokens": 1, "output_tokens": 1}})
    assert ANTHROPIC.parse_response(raw, chat({"messages": []})).data["choices"][0]["finish_reason"] == finish


def test_a_forced_json_tool_comes_back_as_the_content():
    raw = orjson.dumps({"id": "m", "type": "message", "stop_reason": "tool_use",
                        "content": [{"type": "tool_use", "id": "t", "name": "json_answer", "input": {"city": "Paris"}}],
                        "usage": {"input_tokens": 5, "output_tokens": 7}})
    body = {"messages": [], "response_format": {"type": "json_object"}}
    choice = ANTHROPIC.parse_response(raw, chat(body)).data["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": '{"city":"Paris"}'}
    assert choice["finish_reason"] == "stop"


def test_an_answer_that_is_not_a_message_is_refused():
    with pytest.raises(ValueError):
        ANTHROPIC.parse_response((PAYLOADS / "error_overloaded.json").read_bytes(), chat({"messages": []}))


# ---------------------------------------------------------------------------------------------- streams
def test_a_text_stream_becomes_chunks_with_usage_last_when_asked():
    events, relay = relay_all("stream_text.txt", wants_usage=True)
    assert events[-1] == "[DONE]" and relay.done
    chunks = events[:-1]
    assert {c["id"] for c in chunks} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert {c["model"] for c in chunks} == {"smart"} and {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Hello! How can I help you today?"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 25
    assert chunks[-1]["usage"]["completion_tokens"] == 15
    usage = relay.final_usage()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.exact) == (25, 15, True)


def test_without_include_usage_there_is_no_usage_chunk():
    events, _ = relay_all("stream_text.txt", piece=1)
    assert all("usage" not in e for e in events[:-1]) and events[-1] == "[DONE]"


def test_tool_use_streams_as_indexed_tool_call_deltas():
    events, relay = relay_all("stream_tools.txt")
    deltas = [e["choices"][0] for e in events[:-1]]
    calls: dict[int, dict[str, str]] = {}
    for choice in deltas:
        for call in choice["delta"].get("tool_calls", []):
            entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.get("id", "")
            entry["name"] += call.get("function", {}).get("name", "")
            entry["arguments"] += call["function"].get("arguments", "")
    assert calls == {0: {"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
                         "arguments": '{"location": "San Francisco, CA"}'},
                     1: {"id": "toolu_02T1x1fJ34qAmk2tNTrN7Up6", "name": "get_time", "arguments": '{"tz": "PST"}'}}
    assert deltas[-1]["finish_reason"] == "tool_calls"
    assert "".join(c["delta"].get("content") or "" for c in deltas) == "Okay, let's check the weather."
    assert relay.final_usage().completion_tokens == 89


def test_a_forced_json_tool_streams_as_content():
    body = {"messages": [], "response_format": {"type": "json_object"}}
    events, _ = relay_all("stream_tools.txt", body=body)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text.endswith('{"location": "San Francisco, CA"}{"tz": "PST"}')
    assert all("tool_calls" not in e["choices"][0]["delta"] for e in events[:-1])
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


def test_an_error_event_becomes_an_openai_error_event_and_the_stream_is_not_done():
    events, relay = relay_all("stream_error.txt")
    assert events[-1] == {"error": {"message": "The provider's stream failed: Overloaded", "type": "provider_error",
                                    "code": "overloaded_error"}}
    assert not relay.done and "[DONE]" not in events


def test_a_cut_stream_is_not_done_and_counts_what_it_saw():
    raw = (PAYLOADS / "stream_text.txt").read_bytes()
    relay = ANTHROPIC.stream_relay(chat({"messages": [{"role": "user", "content": "hello there"}]}, stream=True))
    relay.feed(raw[: raw.index(b"event: message_delta")])
    assert not relay.done
    assert relay.final_usage().prompt_tokens == 25  # message_start's usage is exact for the prompt


# ---------------------------------------------------------------------------------------------- errors, verdicts
def test_error_messages_name_the_type_and_never_the_key():
    assert ANTHROPIC.error_message((PAYLOADS / "error_overloaded.json").read_bytes(), None) == \
        "Overloaded (overloaded_error)"
    message = ANTHROPIC.error_message((PAYLOADS / "error_auth.json").read_bytes(), KEY.secret)
    assert "sk-ant" not in message and message.startswith("invalid x-api-key")
    body = b'{"type":"error","error":{"type":"invalid_request_error","message":"bad ' + KEY.secret.encode() + b'"}}'
    assert KEY.secret not in ANTHROPIC.error_message(body, KEY.secret)


@pytest.mark.parametrize(("status", "kind"), [(200, OK), (429, RATE_LIMITED), (529, RATE_LIMITED), (401, KEY_REJECTED),
                                              (403, KEY_REJECTED), (400, CLIENT_ERROR), (413, CLIENT_ERROR),
                                              (500, SERVER_ERROR), (503, SERVER_ERROR)])
def test_classification(status, kind):
    assert ANTHROPIC.classify(status, []).kind == kind


def rfc3339(seconds_from_now: float) -> bytes:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat().replace("+00:00", "Z").encode()


def test_anthropic_ratelimit_headers_become_headroom_and_the_rest():
    headers = [(b"anthropic-ratelimit-requests-limit", b"50"), (b"anthropic-ratelimit-requests-remaining", b"0"),
               (b"anthropic-ratelimit-requests-reset", rfc3339(30)),
               (b"anthropic-ratelimit-tokens-remaining", b"12000"),
               (b"anthropic-ratelimit-tokens-reset", rfc3339(90)), (b"content-type", b"application/json")]
    verdict = ANTHROPIC.classify(429, headers)
    assert verdict.kind == RATE_LIMITED
    assert verdict.headroom["x-ratelimit-remaining-requests"] == "0"
    assert verdict.headroom["x-ratelimit-remaining-tokens"] == "12000"
    assert 25 < float(verdict.headroom["x-ratelimit-reset-requests"]) <= 30
    assert verdict.retry_after_s is not None and 85 < verdict.retry_after_s <= 90  # the longer reset, no retry-after
    with_retry = ANTHROPIC.classify(429, [*headers, (b"retry-after", b"7")])
    assert with_retry.retry_after_s == 7.0
    ok = ANTHROPIC.classify(200, headers)
    assert ok.kind == OK and ok.headroom["x-ratelimit-remaining-tokens"] == "12000"


def test_a_529_without_headers_rests_the_key_for_the_default_cooldown():
    verdict = ANTHROPIC.classify(529, [(b"content-type", b"application/json")])
    assert verdict.kind == RATE_LIMITED and verdict.retry_after_s is None


def test_input_token_limits_stand_in_for_the_token_limit_and_a_bad_reset_is_ignored():
    verdict = ANTHROPIC.classify(200, [(b"anthropic-ratelimit-input-tokens-remaining", b"900"),
                                       (b"anthropic-ratelimit-input-tokens-reset", b"not a time")])
    assert verdict.headroom["x-ratelimit-remaining-tokens"] == "900"
    assert "x-ratelimit-reset-tokens" not in verdict.headroom
