"""An OpenAI chat completion written as Anthropic's Message."""

from __future__ import annotations

from typing import Any

import orjson

from ...core.usage import Usage
from ..dialects import as_dict

# OpenAI finish_reason -> Anthropic stop_reason
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}


def message_id(openai_id: object) -> str:
    text = str(openai_id or "gateway")
    return "msg_" + text.removeprefix("chatcmpl-")


def stop_reason(finish_reason: object) -> str:
    return STOP_REASONS.get(str(finish_reason), "end_turn")


def tool_input(arguments: object) -> Any:
    """A tool call's JSON arguments as the object Anthropic's ``tool_use.input`` carries."""
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(str(arguments or "{}"))
    except orjson.JSONDecodeError:
        return {"_unparsed_arguments": str(arguments)}
    return value if isinstance(value, dict) else {"value": value}


def to_message(data: dict[str, Any], usage: Usage, model: str) -> dict[str, Any]:
    """The first choice of an OpenAI chat completion as an Anthropic Message."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = as_dict(choice.get("message"))
    content: list[dict[str, Any]] = []
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
            "usage": {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}}
