"""The OpenAI stream relay's byte path: the same events as the JSON path, without a JSON
round trip for the usual content delta; anything it is unsure of goes the JSON way."""

from __future__ import annotations

import json

import orjson

from gateway.core.call import CHAT, Call
from gateway.providers.base import Relay
from gateway.providers.registry import adapter_for

OPENAI = adapter_for("openai")
BASE = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model"}


def relay(wants_usage: bool = False, messages: list[dict[str, str]] | None = None) -> Relay:
    body = {"messages": messages or [{"role": "user", "content": "hi"}]}
    return OPENAI.stream_relay(Call(CHAT, "/chat/completions", body, "asked", True, wants_usage))


def event(data: dict[str, object], spaced: bool = False) -> bytes:
    return b"data: " + json.dumps(data, separators=(", ", ": ") if spaced else (",", ":")).encode() + b"\n\n"


def delta(text: str, **extra: object) -> dict[str, object]:
    return {**BASE, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}], **extra}


def test_a_content_delta_keeps_its_bytes_but_the_model():
    raw = event(delta("tok", usage=None))  # OpenAI sends "usage": null on every chunk when usage is asked for
    [out] = relay().feed(raw)
    assert out == raw.replace(b'"upstream-model"', b'"asked"')


def test_spaced_nested_or_odd_models_take_the_json_path_and_come_out_the_same():
    odd: list[dict[str, object]] = [delta("a", model=None), {"meta": {"model": "inner"}, **delta("b")},
                                    {"choices": [], "model": "late"}, {**delta("c"), "id": 'q"model":"x'}]
    for data in odd:
        for spaced in (False, True):
            [out] = relay().feed(event(data, spaced))
            parsed = orjson.loads(out[6:])
            assert parsed["model"] == "asked"
            assert parsed.get("meta", {}).get("model", "inner") == "inner"


def test_the_usage_chunk_is_read_and_dropped_unless_asked_for():
    usage = {**BASE, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    raw = event(delta("x", usage=None)) + event(usage) + b"data: [DONE]\n\n"
    quiet, loud = relay(), relay(wants_usage=True)
    assert len(quiet.feed(raw)) == 2 and len(loud.feed(raw)) == 3
    for r in (quiet, loud):
        got = r.final_usage()
        assert r.done and (got.prompt_tokens, got.completion_tokens, got.exact) == (3, 4, True)


def test_without_usage_the_escaped_content_is_counted_as_text():
    r = relay(messages=[{"role": "user", "content": "abcd"}])
    # 8 characters once unescaped (a quote, a backslash, an e-acute, a newline among them): 2 tokens
    r.feed(event(delta('a"b\\cé\nz')) + event(delta("", usage=None)) + b"data: [DONE]\n\n")
    usage = r.final_usage()
    assert usage.exact is False and usage.completion_tokens == 2


def test_events_split_anywhere_come_out_whole():
    raw = event(delta("one")) + b": keep-alive\n\n" + event(delta("two"), spaced=True) + b"data: [DONE]\n\n"
    for size in (1, 5, 17, len(raw)):
        r = relay()
        out = [e for i in range(0, len(raw), size) for e in r.feed(raw[i:i + size])]
        assert [orjson.loads(e[6:])["choices"][0]["delta"]["content"] for e in out[:-1]] == ["one", "two"]
        assert r.done
