"""What a span may say of a request's content (only with ``capture_content``), in the GenAI
conventions' shapes, bounded; finish reasons from OpenAI's, Anthropic's and Gemini's answers; and
nothing an upstream sends, however malformed, makes it raise."""

from __future__ import annotations

import json

import pytest

from gateway.observability import trace_content as content


def test_messages_in_the_conventions_shape():
    body = {"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is in"}, {"type": "image_url", "image_url": {}}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "function": {"name": "look", "arguments": "{\"x\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
    ]}
    assert json.loads(content.input_messages(body) or "") == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "what is in"}, {"type": "image_url"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "look", "arguments": "{\"x\":1}"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "result": "a cat"}]},
    ]
    assert json.loads(content.input_messages({"prompt": "once upon"}) or "") == [
        {"role": "user", "parts": [{"type": "text", "content": "once upon"}]}]


def test_text_and_attributes_are_bounded_the_oldest_messages_dropped_first():
    long = "x" * (content.MAX_TEXT + 100)
    (message,) = json.loads(content.input_messages({"messages": [{"role": "user", "content": long}]}) or "")
    assert message["parts"][0]["content"] == "x" * content.MAX_TEXT + content.TRUNCATED
    many = [{"role": "user", "content": f"message {n} " + "y" * 3000} for n in range(20)]
    kept = content.input_messages({"messages": many}) or ""
    assert len(kept) <= content.MAX_JSON
    assert "message 19 " in kept and "message 0 " not in kept


@pytest.mark.parametrize(("answer", "reasons", "text"), [
    ({"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}, ["stop"], "hi"),
    ({"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}, ["end_turn"], "hi"),
    ({"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}]}, ["STOP"], "hi"),
])
def test_whole_answers_of_each_protocol(answer, reasons, text):
    assert content.finish_reasons(answer) == reasons
    (message,) = json.loads(content.output_messages(answer) or "")
    assert message["parts"] == [{"type": "text", "content": text}] and message["finish_reason"] == reasons[0]


def test_streams_give_their_finish_reasons_and_text():
    events = (b'data: {"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}\n\n'
              b'data: {"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    assert content.stream_finish_reasons(events) == ["stop"]
    assert content.stream_finish_reasons(b'event: message_delta\ndata: {"delta":{"stop_reason":"max_tokens"}}') == [
        "max_tokens"]
    texts: dict[int, list[str]] = {}
    assert content.stream_texts(events, texts, 4) == 0  # the budget bounds what is kept
    assert texts == {0: ["Hel", "l"]}
    assert json.loads(content.streamed_output(texts, ["stop"]) or "") == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hell"}], "finish_reason": "stop"}]


@pytest.mark.parametrize("answer", [
    {"choices": 5}, {"choices": "stop"}, {"choices": [None, 3, {"message": 7, "finish_reason": 1}]},
    {"candidates": {"a": 1}}, {"content": "text"}, {"stop_reason": None}, {},
])
def test_a_malformed_answer_never_raises(answer):
    content.finish_reasons(answer)
    content.output_messages(answer)


def test_a_malformed_stream_event_never_raises():
    texts: dict[int, list[str]] = {}
    chunk = (b'data: {"choices":[{"index":"a","delta":{"content":"x"}}]}\n'
             b'data: {"choices":7}\ndata: {"candidates":[{"index":-3,"content":{"parts":5}}]}\ndata: [1,2]\ndata: {\n')
    content.stream_texts(chunk, texts, 100)
    assert texts == {0: ["x"]}
    assert content.input_messages({"messages": [None, {"content": 5}, {"role": "tool", "content": {"a": 1}}]})
