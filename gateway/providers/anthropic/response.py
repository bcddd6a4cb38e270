"""Anthropic Messages answers -> OpenAI chat completions (content, tool calls, finish reason, usage).

Thinking, which OpenAI's chat shape has no field for, comes back the way several OpenAI-compatible
servers return reasoning: its text as the message's ``reasoning_content``, and each block with its
signature in ``reasoning_details`` (``{"type": "reasoning.text", "text", "signature", "format"}``;
a redacted block as ``{"type": "reasoning.encrypted", "data", "format"}``). A client that sends
the assistant message back with its ``reasoning_details`` gives Anthropic the signed thinking it
wants in a tool-use turn (``content.thinking_blocks``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ...core.usage import Answer, Usage

FORMAT = "anthropic-claude-v1"  # ``reasoning_details[].format``: whose signature it is
# Anthropic's stop_reason -> OpenAI's finish_reason (anything else: "stop")
FINISH_REASONS = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "max_tokens": "length", "model_context_window_exceeded": "length",
    "tool_use": "tool_calls", "refusal": "content_filter",
}


def finish_reason(stop_reason: Any, json_answer: bool) -> str | None:
    """OpenAI's finish reason; a forced JSON tool's ``tool_use`` is a plain stop (its input is the content)."""
    if stop_reason is None:
        return None
    reason = FINISH_REASONS.get(str(stop_reason), "stop")
    return "stop" if json_answer and reason == "tool_calls" else reason


def count(value: Any) -> int:
    """A token count from the upstream's usage; anything that is not a number counts as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return 0
    return int(min(value, 1e12))


def usage_of(usage: dict[str, Any]) -> Usage:
    """Anthropic's usage: ``input_tokens`` leaves out the tokens written to and read from the prompt
    cache, so the prompt is the three together."""
    written, read = count(usage.get("cache_creation_input_tokens")), count(usage.get("cache_read_input_tokens"))
    prompt = count(usage.get("input_tokens")) + written + read
    return Usage(prompt, count(usage.get("output_tokens")), cache_read_tokens=read, cache_write_tokens=written)


def openai_usage(usage: Usage, cached: int) -> dict[str, Any]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens, "prompt_tokens_details": {"cached_tokens": cached}}


def parse_message(raw: bytes, requested_model: str, json_answer: bool) -> Answer:
    """A whole Anthropic message -> an OpenAI ``chat.completion`` with its usage."""
    data = orjson.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ValueError("the upstream answer is not an Anthropic message")
    text, calls = _content(data["content"], json_answer)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    details = [detail for block in data["content"] if (detail := reasoning_detail(block)) is not None]
    if details:
        message["reasoning_content"] = "".join(str(d.get("text") or "") for d in details)
        message["reasoning_details"] = details
    raw_usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
    usage = usage_of(raw_usage)
    answer = {
        "id": str(data.get("id") or ""), "object": "chat.completion", "created": int(time.time()),
        "model": requested_model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason(data.get("stop_reason"), json_answer) or "stop"}],
        "usage": openai_usage(usage, count(raw_usage.get("cache_read_input_tokens"))),
    }
    return Answer(answer, usage)


def reasoning_detail(block: Any, index: int | None = None) -> dict[str, Any] | None:
    """A thinking block as a ``reasoning_details`` entry (None for any other block)."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "thinking":
        detail: dict[str, Any] = {"type": "reasoning.text", "text": str(block.get("thinking") or ""),
                                  "signature": str(block.get("signature") or ""), "format": FORMAT}
    elif kind == "redacted_thinking":
        detail = {"type": "reasoning.encrypted", "data": str(block.get("data") or ""), "format": FORMAT}
    else:
        return None
    if index is not None:
        detail["index"] = index
    return detail


def _content(blocks: list[Any], json_answer: bool) -> tuple[str, list[dict[str, Any]]]:
    """(text, OpenAI tool calls) of a message's content blocks; thinking blocks are left out."""
    texts: list[str] = []
    jsons: list[str] = []  # a forced JSON tool's input: the whole answer (any text beside it is dropped)
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use" and json_answer:
            jsons.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append({"id": str(block.get("id") or ""), "type": "function",
                          "function": {"name": str(block.get("name") or ""), "arguments": arguments}})
    return "".join(jsons or texts), calls
