"""The Responses and Google dialects' stream translations: plain text chunks are rewritten from their
bytes (``api/anthropic/text_run.py``), and what the client gets is what reading every chunk gives, whatever
the text holds (quotes, backslashes, escapes, non-ASCII), in one read or chunk by chunk."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from gateway.api.google.stream import ResponseChunks
from gateway.api.openai.responses_stream import ChatToResponseEvents

TEXTS = ["Hello", ' "quoted" ', "back\\slash", "ends with \\", 'mixed \\" and \\\\"', "line\nbreak", "été ✓",
         "tab\there", "}],\"finish_reason\":null}]", "100% %d %b", "\u2028sep"]
USAGE = {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
    return b"data: " + orjson.dumps(data) + b"\n\n"


def stream() -> list[bytes]:
    items = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": t}) for t in TEXTS]
    return [*items, chunk({}, "stop"), b"data: " + orjson.dumps({"id": "chatcmpl-1", "choices": [],
                                                                 "usage": USAGE}) + b"\n\n", b"data: [DONE]\n\n"]


def sse_data(out: list[bytes]) -> list[dict[str, Any]]:
    text = b"".join(out).decode().replace("\r\n", "\n")
    return [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: ")]


@pytest.mark.parametrize("joined", [True, False], ids=["one read", "chunk by chunk"])
def test_a_responses_stream_carries_the_text_exactly(joined: bool) -> None:
    translator = ChatToResponseEvents({"model": "m", "input": "hi"}, {"messages": []})
    items = [b"".join(stream())] if joined else stream()
    out = translator.start() + [e for item in items for e in translator.feed_item(item)]
    events = sse_data(out)
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert deltas == TEXTS
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed["type"] == "response.completed"
    assert completed["response"]["output"][0]["content"][0]["text"] == "".join(TEXTS)
    assert completed["response"]["usage"]["output_tokens"] == 9


@pytest.mark.parametrize("joined", [True, False], ids=["one read", "chunk by chunk"])
def test_a_google_stream_carries_the_text_exactly(joined: bool) -> None:
    chunks = ResponseChunks("m", {"messages": []})
    items = [b"".join(stream())] if joined else stream()
    objects = sse_data([b"data: " + obj + b"\n\n" for item in items for obj in chunks.feed(item)])
    texts = [p["text"] for o in objects for c in o["candidates"] for p in c["content"]["parts"] if p.get("text")]
    assert texts == TEXTS
    assert all(o["responseId"] == "chatcmpl-1" and o["modelVersion"] == "m" for o in objects)
    assert objects[-1]["candidates"][0]["finishReason"] == "STOP"
    assert objects[-1]["usageMetadata"]["candidatesTokenCount"] == 9
