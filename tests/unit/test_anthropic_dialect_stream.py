"""The Anthropic dialect's stream translation: plain text chunks are rewritten from their bytes, and
the result is the same as reading every chunk (whatever the text holds: quotes, backslashes, escapes)."""

from __future__ import annotations

import json

import orjson
import pytest

from gateway.api.anthropic.stream import MessageEvents
from gateway.api.anthropic.text_run import text_span

TEXTS = ["Hello", ' "quoted" ', "back\\slash", "ends with \\", 'mixed \\" and \\\\"', "line\nbreak", "été ✓",
         "tab\there", "}],\"finish_reason\":null}]", ""]


def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
    return b"data: " + orjson.dumps(data) + b"\n\n"


def texts_of(events: list[bytes]) -> list[str]:
    out = []
    for event in b"".join(events).split(b"\n\n"):
        if b"text_delta" in event:
            out.append(json.loads(event.split(b"data: ", 1)[1])["delta"]["text"])
    return out


@pytest.mark.parametrize("joined", [True, False], ids=["one read", "chunk by chunk"])
def test_text_pieces_come_through_exactly(joined: bool) -> None:
    stream = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": t}) for t in TEXTS]
    stream += [chunk({}, "stop"), b"data: " + orjson.dumps({"id": "chatcmpl-1", "choices": [], "usage": {
        "prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}}) + b"\n\n", b"data: [DONE]\n\n"]
    events = MessageEvents("m", 5)
    out = events.feed(b"".join(stream)) if joined else [e for item in stream for e in events.feed(item)]
    assert texts_of(out) == [t for t in TEXTS if t]
    names = [e.split(b"\n", 1)[0] for e in b"".join(out).split(b"\n\n") if e]
    assert names[:2] == [b"event: message_start", b"event: content_block_start"]
    assert names[-3:] == [b"event: content_block_stop", b"event: message_delta", b"event: message_stop"]
    assert b'"output_tokens":9' in b"".join(out)  # message_delta's usage


def plain_text(event: bytes) -> bytes | None:
    span = text_span(event)
    return None if span is None else event[span[0]:span[1]]


def test_only_a_plain_text_chunk_is_rewritten_from_its_bytes() -> None:
    assert plain_text(chunk({"content": 'a "b"'})) == b'a \\"b\\"'
    assert plain_text(chunk({"content": "x"}, "stop")) is None  # finishing
    assert plain_text(chunk({"content": "x", "reasoning_content": "y"})) is None
    assert plain_text(chunk({"content": "x"}, usage={"prompt_tokens": 1})) is None
    assert plain_text(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})) is None
    two = chunk({"content": "x"}).replace(b'"finish_reason":null}]', b'"finish_reason":null},{"index":1}]')
    assert plain_text(two) is None  # two choices


@pytest.mark.parametrize("odd", [
    {"content": "x", "reasoning_content": "y"},  # a field beside the text: an unescaped quote more
    {"content": ""},  # an empty piece
    {"content": "ends with \\"},  # an escaped backslash: the quote count would be ambiguous
])
def test_a_run_with_one_odd_chunk_is_read_chunk_by_chunk(odd: dict[str, object]) -> None:
    texts = ["one", "two", "three", "four"]
    stream = [chunk({"role": "assistant", "content": ""}), chunk({"content": texts[0]})]
    stream += [chunk({"content": texts[1]}), chunk(odd), chunk({"content": texts[2]}), chunk({"content": texts[3]})]
    events = MessageEvents("m", 5, thinking=True)
    out = events.feed(stream[0] + stream[1]) + events.feed(b"".join(stream[2:]))
    expected = texts[:2] + [str(odd["content"])] * bool(odd["content"]) + texts[2:]
    assert texts_of(out) == expected
    reasoning = [json.loads(e.split(b"data: ", 1)[1]) for e in b"".join(out).split(b"\n\n") if b"thinking_delta" in e]
    assert [r["delta"]["thinking"] for r in reasoning] == (["y"] if "reasoning_content" in odd else [])


def test_a_run_of_text_chunks_is_rewritten_at_once_and_reads_the_same() -> None:
    texts = ["Hello", ' "quoted" ', "été ✓", "line\nbreak", "tab\there", "}],\"finish_reason\":null}]", "end."]
    stream = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": t}) for t in texts]
    stream += [chunk({}, "stop"), b"data: [DONE]\n\n"]
    out = MessageEvents("m", 5).feed(b"".join(stream))
    assert texts_of(out) == texts
    # the first text opens the block, the second shows the bytes the chunks share, the rest go in one pass
    assert max(item.count(b"event: content_block_delta") for item in out) == len(texts) - 2
    assert all(json.loads(e.split(b"data: ", 1)[1]) for e in b"".join(out).split(b"\n\n") if e)  # every event is JSON
