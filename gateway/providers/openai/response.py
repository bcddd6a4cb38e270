"""OpenAI-shape answers: ``model`` set to what the client asked for, usage read for accounting."""

from __future__ import annotations

from typing import Any

import orjson

from ...core.tokens import estimate_prompt_tokens, estimate_tokens
from ...core.usage import Answer, Usage


def usage_from(data: dict[str, Any]) -> Usage | None:
    """The usage of a chat completion (``prompt_tokens``, ``*_tokens_details``) or of a Responses
    answer (``input_tokens``, ``input_tokens_details``); None when the answer has none."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return None
    details_in = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    details_out = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    return Usage(_count(usage.get("prompt_tokens") or usage.get("input_tokens")),
                 _count(usage.get("completion_tokens") or usage.get("output_tokens")),
                 cache_read_tokens=_count(details_in.get("cached_tokens")) if isinstance(details_in, dict) else 0,
                 reasoning_tokens=_count(details_out.get("reasoning_tokens")) if isinstance(details_out, dict) else 0)


def _count(value: Any) -> int:
    """A token count from an upstream's usage; anything that is not a number counts as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        return 0
    return int(min(value, 1e12))


def parse_answer(raw: bytes, requested_model: str, request_body: dict[str, Any]) -> Answer:
    """Upstream JSON answer -> the answer for the client, with usage (counted locally if absent)."""
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the upstream answer is not a JSON object")
    data["model"] = requested_model
    usage = usage_from(data)
    if usage is None:
        usage = Usage(estimate_prompt_tokens(request_body.get("messages")),
                      estimate_tokens(_answer_text(data)), exact=False)
    return Answer(data, usage)


def _answer_text(data: dict[str, Any]) -> str:
    parts = []
    for choice in data.get("choices") or ():
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            text = message.get("content") if isinstance(message, dict) else None
            if text is None:
                text = choice.get("text")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)
