"""The tool loop's pure parts: the function names MCP tools are offered under, and reading one
round's chat stream (what passes on, what the loop keeps)."""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.core.mcp import function_name
from gateway.pipeline.tool_round import RoundReader

FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def test_a_plain_tool_keeps_its_name() -> None:
    assert function_name("github", "search_issues") == "mcp_github__search_issues"


def test_names_that_do_not_fit_are_cleaned_shortened_and_kept_apart() -> None:
    dotted = function_name("files.v2", "read.file")
    long_a = function_name("demo", "a" * 120 + "x")
    long_b = function_name("demo", "a" * 120 + "y")
    for name in (dotted, long_a, long_b):
        assert FUNCTION_NAME.match(name), name
    assert dotted.startswith("mcp_files_v2__read_file_") and dotted != function_name("files_v2", "read_file")
    assert long_a != long_b and len(long_a) == 64
    assert function_name("demo", "a" * 120 + "x") == long_a  # the same tool, the same name


def _event(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, int] | None = None,
           choices: bool = True) -> bytes:
    chunk: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                             "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if not choices:
        chunk["choices"] = []
    if usage is not None:
        chunk["usage"] = usage
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _data(events: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for item in events:
        for event in item.split(b"\n\n"):
            if event.startswith(b"data: {"):
                out.append(json.loads(event[6:]))
    return out


def test_text_passes_on_as_it_came_and_the_calls_are_kept() -> None:
    reader = RoundReader("m")
    text = _event({"role": "assistant", "content": "Adding."})
    assert reader.feed(text) == [text]
    call = _event({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                   "function": {"name": "mcp_demo__add", "arguments": ""}}]})
    assert reader.feed(call + _event({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]})) == []
    assert reader.feed(_event(finish="tool_calls")) == []
    assert reader.feed(_event(usage={"prompt_tokens": 5, "completion_tokens": 2}, choices=False)) == []
    assert reader.feed(b"data: [DONE]\n\n") == [] and reader.done and not reader.failed
    assert reader.tool_calls() == [{"id": "call_1", "type": "function",
                                    "function": {"name": "mcp_demo__add", "arguments": '{"a": 1}'}}]
    assert reader.message() == {"role": "assistant", "content": "Adding.", "tool_calls": reader.tool_calls()}
    assert reader.finish == "tool_calls"


def test_a_chunk_with_text_and_a_finish_passes_on_without_the_finish() -> None:
    reader = RoundReader("m", lead="\n\n")
    out = _data(reader.feed(_event({"content": "Done."}, finish="stop", usage={"prompt_tokens": 1})))
    assert [c["choices"][0]["delta"] for c in out] == [{"content": "\n\n"}, {"content": "Done."}]
    assert all(c["choices"][0]["finish_reason"] is None and "usage" not in c for c in out)


def test_the_ending_hands_on_the_client_calls_the_finish_and_the_usage() -> None:
    reader = RoundReader("m")
    reader.feed(_event({"content": "x"}))
    calls = [{"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
    ending = reader.ending(calls, "tool_calls", {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12})
    assert ending.endswith(b"data: [DONE]\n\n")
    chunks = _data([ending])
    assert chunks[0]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, **calls[0]}]
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[2]["choices"] == [] and chunks[2]["usage"]["total_tokens"] == 12
    assert {c["id"] for c in chunks} == {"chatcmpl-1"}  # the upstream's id carried on


def test_an_error_event_passes_on_and_ends_the_round() -> None:
    reader = RoundReader("m")
    error = b'data: {"error": {"message": "broke off", "type": "provider_error"}}\n\n'
    assert reader.feed(error) == [error] and reader.failed
    assert reader.feed(_event({"content": "late"})) == []
