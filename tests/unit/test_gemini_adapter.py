"""The Gemini adapter as pure translation, on payloads written from the Gemini API's documented shapes
(``payloads/gemini/``), reached the way the gateway reaches it: through the registry."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.core.call import CHAT, COMPLETIONS, EMBEDDINGS, Call
from gateway.core.policy import Limits
from gateway.core.pricing import Pricing
from gateway.core.targets import ProviderKey, ProviderSpec, Target
from gateway.errors import InvalidRequest
from gateway.providers.base import CLIENT_ERROR, KEY_REJECTED, OK, RATE_LIMITED, SERVER_ERROR
from gateway.providers.registry import adapter_for

PAYLOADS = Path(__file__).parent / "payloads" / "gemini"
GEMINI = adapter_for("gemini")
ROOT = "https://generativelanguage.googleapis.com/v1beta"
SECRET = "AIzaSyFAKE-unit-test-key-000000000000000"
KEY = ProviderKey("g", 1, SECRET)


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def target(model: str = "gemini-2.5-flash") -> Target:
    spec = ProviderSpec(id="g", type="gemini", protocol="gemini", api_root=ROOT, keys=(KEY,), models=frozenset(),
                        pricing=Pricing(), limits=Limits(), weight=1.0, headers=(), timeout_s=10, cooldown_s=60,
                        stream_usage=True, needs_key=True, api_version=None)
    return Target(spec, model)


def chat(body: dict[str, Any], *, stream: bool = False, wants_usage: bool = False, dialect: str = "openai") -> Call:
    return Call(CHAT, "/chat/completions", body, "smart", stream, wants_usage, dialect)


def sent(call: Call, model: str = "gemini-2.5-flash") -> tuple[str, dict[str, Any], Any]:
    request = GEMINI.build_request(target(model), KEY, call)
    assert isinstance(request.content, bytes)
    return request.url, orjson.loads(request.content), request.headers


def relay_all(call: Call, raw: bytes, piece: int = 7) -> list[Any]:
    """Feed ``raw`` in small pieces (events split across reads); the events' parsed data."""
    relay = GEMINI.stream_relay(call)
    events = []
    for start in range(0, len(raw), piece):
        events += relay.feed(raw[start:start + piece])
    assert relay.done
    out = []
    for event in events:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        data = event[6:].strip()
        out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


# ---------------------------------------------------------------- requests

def test_the_whole_openai_request_translates_to_the_documented_gemini_request():
    url, body, headers = sent(chat(json.loads(payload("openai_tools_request.json"))))
    assert url == f"{ROOT}/models/gemini-2.5-flash:generateContent"
    assert body == json.loads(payload("gemini_tools_request.json"))


def test_the_key_goes_in_the_x_goog_api_key_header_never_in_the_url():
    url, _, headers = sent(chat({"messages": [{"role": "user", "content": "hi"}]}, stream=True))
    assert url == f"{ROOT}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert headers["x-goog-api-key"] == SECRET and SECRET not in url and "key=" not in url
    assert "authorization" not in headers and headers["accept"] == "text/event-stream"


def test_a_models_prefix_on_the_model_is_not_doubled():
    url, _, _ = sent(chat({"messages": [{"role": "user", "content": "hi"}]}), model="models/gemini-2.0-flash")
    assert url == f"{ROOT}/models/gemini-2.0-flash:generateContent"


def test_roles_and_system_instruction():
    _, body, _ = sent(chat({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]}))
    assert body == {"systemInstruction": {"parts": [{"text": "Be brief."}]}, "contents": [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "Bye"}]},
    ]}


@pytest.mark.parametrize(("choice", "config"), [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_tool_choice(choice, config):
    _, body, _ = sent(chat({"messages": [{"role": "user", "content": "x"}], "tool_choice": choice}))
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_json_object_response_format_asks_for_json():
    _, body, _ = sent(chat({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"},
                            "max_completion_tokens": 50, "stop": ["a", "b"], "seed": 7}))
    assert body["generationConfig"] == {"responseMimeType": "application/json", "maxOutputTokens": 50,
                                        "stopSequences": ["a", "b"], "seed": 7}


@pytest.mark.parametrize(("message", "field"), [
    ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://insecure.test/a.png"}}]},
     "messages[0].content[0]"),
    ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}]},
     "messages[0].content[0]"),
    ({"role": "tool", "tool_call_id": "call_nobody", "content": "42"}, "messages[0].tool_call_id"),
    ({"role": "narrator", "content": "x"}, "messages[0].role"),
])
def test_what_gemini_cannot_take_is_refused_naming_the_field(message, field):
    with pytest.raises(InvalidRequest) as info:
        GEMINI.build_request(target(), KEY, chat({"messages": [message]}))
    assert info.value.param == field


def test_a_legacy_completion_is_one_user_turn():
    call = Call(COMPLETIONS, "/completions", {"model": "m", "prompt": "Say hi", "max_tokens": 5}, "m")
    _, body, _ = sent(call)
    assert body == {"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}],
                    "generationConfig": {"maxOutputTokens": 5}}


# ---------------------------------------------------------------- answers

def test_a_text_answer_gives_its_thoughts_as_reasoning_content_and_counts_them_as_output():
    answer = GEMINI.parse_response(payload("generate_response.json"), chat({"messages": []}))
    data = answer.data
    assert data["object"] == "chat.completion" and data["model"] == "smart"
    assert data["id"] == "chatcmpl-m5jQaPy0GfWkvdIPkpeJ-Ac"
    assert data["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop", "message": {
        "role": "assistant",
        "content": "The sky looks blue because air molecules scatter short blue wavelengths more than red ones "
                   "(Rayleigh scattering).", "reasoning_content": "Let me think about the sky."}}]
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.exact) == (11, 72, True)
    assert data["usage"] == {"prompt_tokens": 11, "completion_tokens": 72, "total_tokens": 83,
                             "completion_tokens_details": {"reasoning_tokens": 53}}


def test_function_calls_become_tool_calls_with_ids_that_carry_the_thought_signature_back():
    answer = GEMINI.parse_response(payload("function_call_response.json"), chat({"messages": []}))
    choice = answer.data["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "get_weather", {"location": "Paris", "unit": "celsius"}),
        ("function", "get_time", {"timezone": "Europe/Paris"})]
    assert len({c["id"] for c in calls}) == 2 and all(c["id"].startswith("call_") for c in calls)
    # the next turn sends the calls back: the signature returns to its call, the results get their names
    follow_up = {"messages": [{"role": "user", "content": "weather?"}, choice["message"],
                              {"role": "tool", "tool_call_id": calls[0]["id"], "content": '{"t": 21}'},
                              {"role": "tool", "tool_call_id": calls[1]["id"], "content": "14:05"}]}
    _, body, _ = sent(chat(follow_up))
    assert body["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"location": "Paris", "unit": "celsius"}},
         "thoughtSignature": "CiQBVKhc7oXq2Ue0gB9bGg1M0n3oTzqJ5nq9bzU7zXm1r0y0="},
        {"functionCall": {"name": "get_time", "args": {"timezone": "Europe/Paris"}}}]}
    assert body["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"t": 21}}},
        {"functionResponse": {"name": "get_time", "response": {"result": "14:05"}}}]}


def test_a_blocked_prompt_is_a_content_filter_answer_with_a_refusal():
    answer = GEMINI.parse_response(payload("blocked_prompt_response.json"), chat({"messages": []}))
    choice = answer.data["choices"][0]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"] == {"role": "assistant", "content": None,
                                 "refusal": "The provider blocked this prompt (SAFETY)."}
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (14, 0)


@pytest.mark.parametrize(("reason", "expected"), [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop"),
])
def test_finish_reasons(reason, expected):
    raw = json.loads(payload("safety_finish_response.json"))
    raw["candidates"][0]["finishReason"] = reason
    answer = GEMINI.parse_response(orjson.dumps(raw), chat({"messages": []}))
    assert answer.data["choices"][0]["finish_reason"] == expected


def test_something_that_is_not_a_gemini_answer_is_refused():
    with pytest.raises(ValueError):
        GEMINI.parse_response(b'{"choices": []}', chat({"messages": []}))


def test_a_legacy_completion_answer_is_a_text_completion():
    call = Call(COMPLETIONS, "/completions", {"model": "m", "prompt": "Say hi"}, "m")
    data = GEMINI.parse_response(payload("safety_finish_response.json"), call).data
    assert data["object"] == "text_completion"
    assert data["choices"] == [{"index": 0, "text": "Here is how you", "logprobs": None,
                                "finish_reason": "content_filter"}]


# ---------------------------------------------------------------- streams

def test_a_stream_becomes_openai_chunks_with_usage_last_when_asked():
    events = relay_all(chat({"messages": []}, stream=True, wants_usage=True), payload("stream.txt"))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"smart"} and len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas) == "The quick brown fox jumps over the lazy dog."
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, None, "stop"]
    assert chunks[-1] == {**chunks[-1], "choices": [],
                          "usage": {"prompt_tokens": 8, "completion_tokens": 22, "total_tokens": 30,
                                    "completion_tokens_details": {"reasoning_tokens": 12}}}


def test_a_stream_without_usage_asked_still_accounts_it():
    call = chat({"messages": []}, stream=True)
    relay = GEMINI.stream_relay(call)
    events = relay.feed(payload("stream.txt"))
    assert b'"usage"' not in b"".join(events) and events[-1] == b"data: [DONE]\n\n"
    usage = relay.final_usage()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.exact) == (8, 22, True)


def test_a_streamed_function_call_is_one_tool_call_delta():
    events = relay_all(chat({"messages": []}, stream=True), payload("stream_function_call.txt"))
    choice = events[0]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["delta"]["tool_calls"]
    assert call["index"] == 0 and call["function"] == {"name": "get_weather", "arguments": '{"location":"Paris"}'}
    assert call["id"].endswith("__thought__EjQKMgEMOdbH")
    assert events[-1] == "[DONE]"


def test_a_stream_cut_before_its_finish_reason_is_not_done():
    raw = payload("stream.txt")
    cut = raw[: raw.index(b"data:", 10)]  # only the first event arrives
    relay = GEMINI.stream_relay(chat({"messages": []}, stream=True))
    assert relay.feed(cut) and not relay.done


def test_a_blocked_prompt_in_a_stream_ends_it_with_content_filter():
    raw = b"data: " + orjson.dumps(json.loads(payload("blocked_prompt_response.json"))) + b"\r\n\r\n"
    events = relay_all(chat({"messages": []}, stream=True), raw)
    assert events[0]["choices"][0]["finish_reason"] == "content_filter"
    assert events[0]["choices"][0]["delta"]["refusal"] == "The provider blocked this prompt (SAFETY)."
    assert events[-1] == "[DONE]"


def test_same_dialect_pass_through_sends_and_relays_gemini_untranslated():
    native = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"temperature": 1}}
    call = chat(native, stream=True, dialect="gemini")
    url, body, _ = sent(call)
    assert body == native and url.endswith(":streamGenerateContent?alt=sse")
    relay = GEMINI.stream_relay(call)
    raw = payload("stream.txt")
    events = relay.feed(raw)
    assert b"".join(events) == raw and relay.done
    assert relay.final_usage().total_tokens == 30
    whole = GEMINI.parse_response(payload("generate_response.json"), chat(native, dialect="gemini"))
    assert whole.data == json.loads(payload("generate_response.json")) and whole.usage.total_tokens == 83


# ---------------------------------------------------------------- embeddings

def test_one_input_goes_to_embed_content():
    call = Call(EMBEDDINGS, "/embeddings", {"model": "emb", "input": "hello world", "dimensions": 5}, "emb")
    url, body, _ = sent(call, model="gemini-embedding-001")
    assert url == f"{ROOT}/models/gemini-embedding-001:embedContent"
    assert body == {"content": {"parts": [{"text": "hello world"}]}, "outputDimensionality": 5}
    data = GEMINI.parse_response(payload("embed_response.json"), call).data
    assert data["object"] == "list" and data["model"] == "emb"
    assert data["data"] == [{"object": "embedding", "index": 0,
                             "embedding": [0.013168523, -0.008711934, -0.046782676, 0.00069968984, -0.009518873]}]
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_a_list_goes_to_batch_embed_contents_and_base64_is_honoured():
    body = {"model": "emb", "input": ["one", "two"], "encoding_format": "base64"}
    call = Call(EMBEDDINGS, "/embeddings", body, "emb")
    url, sent_body, _ = sent(call, model="gemini-embedding-001")
    assert url == f"{ROOT}/models/gemini-embedding-001:batchEmbedContents"
    assert sent_body == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "one"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "two"}]}}]}
    data = GEMINI.parse_response(payload("batch_embed_response.json"), call).data
    decoded = [struct.unpack("<3f", base64.b64decode(item["embedding"])) for item in data["data"]]
    assert [[round(v, 4) for v in vector] for vector in decoded] == [[0.0123, -0.0456, 0.0789],
                                                                     [-0.0321, 0.0654, -0.0987]]


# ---------------------------------------------------------------- errors

def test_429_resource_exhausted_cools_the_key_for_its_retry_delay():
    verdict = GEMINI.classify(429, [(b"content-type", b"application/json")], payload("error_429.json"))
    assert verdict.kind == RATE_LIMITED and verdict.retry_after_s == 12.0
    assert GEMINI.classify(429, [(b"Retry-After", b"3")], payload("error_429.json")).retry_after_s == 3.0
    assert GEMINI.classify(429, [], b"").retry_after_s is None


def test_an_invalid_key_is_rejected_not_the_request():
    assert GEMINI.classify(400, [], payload("error_api_key_invalid.json")).kind == KEY_REJECTED
    assert GEMINI.classify(403, [], payload("error_permission_denied.json")).kind == KEY_REJECTED
    assert GEMINI.classify(400, [], payload("error_invalid_argument.json")).kind == CLIENT_ERROR
    assert GEMINI.classify(503, [], b"").kind == SERVER_ERROR
    assert GEMINI.classify(200, [], b"").kind == OK


def test_error_messages_carry_the_status_and_never_the_key():
    assert GEMINI.error_message(payload("error_api_key_invalid.json"), SECRET) == (
        "API key not valid. Please pass a valid API key. (INVALID_ARGUMENT)")
    leaky = orjson.dumps([{"error": {"code": 400, "message": f"bad key {SECRET} and AIzaSyOTHERkeyOTHERkey0123456789",
                                     "status": "INVALID_ARGUMENT"}}])
    message = GEMINI.error_message(leaky, SECRET)
    assert "AIza" not in message and message.startswith("bad key [redacted] and [redacted]")
