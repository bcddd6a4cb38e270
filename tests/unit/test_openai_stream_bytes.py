"""The OpenAI stream relay's byte path: the same events as the JSON path, without a JSON
round trip for the usual content delta; anything it is unsure of goes the JSON way."""

from __future__ import annotations

import json

import orjson

from gateway.core.call import CHAT, Call
from gateway.core.sse import data_of
from gateway.providers.base import Relay
from gateway.providers.registry import adapter_for

OPENAI = adapter_for("openai")
DONE = b"data: [DONE]\n\n"
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


def translated_relay(wants_usage: bool = True) -> Relay:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    return OPENAI.stream_relay(Call(CHAT, "/chat/completions", body, "asked", True, wants_usage, translated=True))


def without_model(events: list[bytes]) -> list[object]:
    out = []
    for data in data_of(b"".join(events)):
        parsed = data if data == b"[DONE]" else orjson.loads(data)
        if isinstance(parsed, dict):
            parsed.pop("model", None)
        out.append(parsed)
    return out


def test_a_translated_stream_passes_a_read_of_plain_events_on_as_it_came():
    texts = ['a"b', "c\\d", "é\n", " usage", 'x "usage": {"y": 1}']
    plain = b"".join(event(delta(t, usage=None), spaced=s) for t in texts for s in (False, True))
    usage = {**BASE, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
    r = translated_relay()
    out = r.feed(plain + event(usage, spaced=True) + b"data: [DONE]\n\n")
    assert out[0] == plain  # the model as the upstream wrote it: the translator writes its own
    assert without_model(out) == without_model(relay(wants_usage=True).feed(plain + event(usage) + DONE))
    got = r.final_usage()
    assert r.done and (got.prompt_tokens, got.completion_tokens, got.exact) == (3, 4, True)


def test_a_translated_relay_gives_what_the_plain_one_does_however_the_stream_comes():
    usage = {**BASE, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}}
    streams = [
        event(delta("one", usage=None)) + event(delta("two"), spaced=True) + event(usage) + DONE,
        event(delta("a")) + b": keep-alive\n\n" + event(delta("b")) + DONE,  # a comment between events
        (event(delta("a")) + event(delta("b")) + DONE).replace(b"\n", b"\r\n"),
        event(delta("a")) + b"data: {\"id\": \"c1\",\ndata: \"choices\": []}\n\n" + event(delta("b")) + DONE,
        event(delta("a")) + event({**delta("b"), "usage": usage["usage"]}) + event(delta("c")) + DONE,
        event(delta("a")) + event(usage).replace(b'"usage":', b'"usage" :') + DONE,
    ]
    for raw in streams:
        for size in (1, 7, 64, len(raw)):
            for with_usage in (True, False):
                fast, plain = translated_relay(with_usage), relay(wants_usage=with_usage)
                pieces = [raw[i:i + size] for i in range(0, len(raw), size)]
                fast_out = [e for p in pieces for e in fast.feed(p)]
                plain_out = [e for p in pieces for e in plain.feed(p)]
                assert without_model(fast_out) == without_model(plain_out), (raw, size)
                assert fast.done == plain.done and fast.final_usage() == plain.final_usage()


def test_without_usage_a_translated_read_counts_its_content_as_the_plain_relay_does():
    raw = b"".join(event(delta(t)) for t in ('a"b\\cé\nz', "more", "words here")) + DONE
    fast, plain = translated_relay(), relay()
    fast.feed(raw)
    plain.feed(raw)
    assert fast.final_usage() == plain.final_usage() and fast.final_usage().exact is False
