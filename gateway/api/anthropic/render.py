"""An OpenAI chat completion written as Anthropic's Message, and usage in Anthropic's words.

Anthropic's ``input_tokens`` leaves out the tokens read from (``cache_read_input_tokens``) and
written to (``cache_creation_input_tokens``) the prompt cache, where OpenAI's ``prompt_tokens``
counts them (``prompt_tokens_details.cached_tokens``). The reasoning text some OpenAI-compatible
servers send (``reasoning_content``, or ``reasoning``) comes back as a ``thinking`` block when the
client asked to see thinking; it has no signature (only Anthropic signs its thinking).
"""

from __future__ import annotations

from typing import Any

import orjson

from ...core.usage import Usage
from ..dialects import as_dict, reasoning_of

# OpenAI finish_reason -> Anthropic stop_reason
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}


def message_id(openai_id: object) -> str:
    text = str(openai_id or "gateway")
    return "msg_" + text.removeprefix("chatcmpl-")


def stop_reason(finish_reason: object) -> str:
    return STOP_REASONS.get(str(finish_reason), "end_turn")


def cached_tokens(usage: object) -> int:
    """``prompt_tokens_details.cached_tokens`` of an OpenAI usage object (0 when not there)."""
    details = as_dict(usage).get("prompt_tokens_details")
    cached = as_dict(details).get("cached_tokens")
    return cached if isinstance(cached, int) and not isinstance(cached, bool) and cached > 0 else 0


def anthropic_usage(prompt: int, completion: int, cached: int, written: int = 0) -> dict[str, int]:
    """Anthropic's usage fields for ``prompt`` input tokens (``cached`` of them read from the cache,
    ``written`` written to it)."""
    cached = min(cached, prompt)
    written = min(written, prompt - cached)
    return {"input_tokens": prompt - cached - written, "cache_creation_input_tokens": written,
            "cache_read_input_tokens": cached, "output_tokens": completion}


def tool_input(arguments: object) -> Any:
    """A tool call's JSON arguments as the object Anthropic's ``tool_use.input`` carries."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(str(arguments or "{}"))
    except orjson.JSONDecodeError:
        return {"_unparsed_arguments": str(arguments)}
    return value if isinstance(value, dict) else {"value": value}


def to_message(data: dict[str, Any], usage: Usage, model: str, thinking: bool = False) -> dict[str, Any]:
    """The first choice of an OpenAI chat completion as an Anthropic Message (``thinking``: the
    client asked to see thinking)."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = as_dict(choice.get("message"))
    content: list[dict[str, Any]] = []
    reasoning = reasoning_of(message) if thinking else ""
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for i, call in enumerate(message.get("tool_calls") or ()):
        function = as_dict(call).get("function")
        if isinstance(function, dict):
            content.append({"type": "tool_use", "id": str(call.get("id") or f"toolu_{i}"),
                            "name": str(function.get("name") or ""), "input": tool_input(function.get("arguments"))})
    return {"id": message_id(data.get("id")), "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason(choice.get("finish_reason")), "stop_sequence": None,
            "usage": anthropic_usage(usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens,
                                     usage.cache_write_tokens)}
