"""An OpenAI chat completion written as Google's ``GenerateContentResponse``.

Every candidate has a ``finishReason`` (Gemini CLI takes an answer without one for a broken
stream). The answer's reasoning text (``reasoning_content``, or ``reasoning``) comes first as a
``thought`` part. ``usageMetadata`` counts as Gemini does: ``promptTokenCount`` holds the cached
part (``cachedContentTokenCount``), ``candidatesTokenCount`` leaves out the thinking
(``thoughtsTokenCount``), ``totalTokenCount`` is all of it.
"""

from __future__ import annotations

from typing import Any

import orjson

from ...core.usage import Usage
from ..dialects import as_dict, reasoning_of

# OpenAI finish_reason -> Google finishReason
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY", "tool_calls": "STOP",
                  "function_call": "STOP"}


def finish_reason(reason: object) -> str:
    return FINISH_REASONS.get(str(reason), "OTHER")


def function_call(call: Any) -> dict[str, Any] | None:
    """An OpenAI tool call as a ``functionCall`` part (None if it is not a function call)."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return None
    raw = function.get("arguments")
    try:
        args = raw if isinstance(raw, dict) else orjson.loads(str(raw or "{}"))
    except orjson.JSONDecodeError:
        args = {"_unparsed_arguments": str(raw)}
    part: dict[str, Any] = {"name": str(function.get("name") or ""), "args": args}
    if call.get("id"):
        part["id"] = str(call["id"])
    return {"functionCall": part}


def usage_metadata(usage: Usage) -> dict[str, int]:
    """Gemini's ``usageMetadata``: the prompt holds its cached part, the candidates leave out the thoughts."""
    out = {"promptTokenCount": usage.prompt_tokens, "candidatesTokenCount": usage.completion_tokens -
           usage.reasoning_tokens, "totalTokenCount": usage.total_tokens}
    if usage.cache_read_tokens:
        out["cachedContentTokenCount"] = usage.cache_read_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def to_response(data: dict[str, Any], usage: Usage, model: str) -> dict[str, Any]:
    candidates = [_candidate(choice, i) for i, choice in enumerate(data.get("choices") or ())
                  if isinstance(choice, dict)]
    return {"candidates": candidates, "usageMetadata": usage_metadata(usage), "modelVersion": model,
            "responseId": str(data.get("id") or "")}


def _candidate(choice: dict[str, Any], position: int) -> dict[str, Any]:
    message = as_dict(choice.get("message"))
    parts: list[dict[str, Any]] = []
    reasoning = reasoning_of(message)
    if reasoning:
        parts.append({"text": reasoning, "thought": True})
    if isinstance(message.get("content"), str) and message["content"]:
        parts.append({"text": message["content"]})
    for call in message.get("tool_calls") or ():
        part = function_call(call)
        if part is not None:
            parts.append(part)
    return {"content": {"role": "model", "parts": parts or [{"text": ""}]},
            "finishReason": finish_reason(choice.get("finish_reason")), "index": choice.get("index", position)}
