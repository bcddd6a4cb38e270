"""The ``usage`` object of an OpenAI chat answer (or of a usage chunk) read as a ``Usage``, for the
dialects that write it in their own words (Responses' ``input_tokens_details``, Gemini's
``usageMetadata``): ``prompt_tokens_details.cached_tokens`` and
``completion_tokens_details.reasoning_tokens`` are its parts."""

from __future__ import annotations

from typing import Any

from ..core.usage import Usage


def _count(value: object) -> int:
    return int(min(value, 1e12)) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value > 0 else 0


def _detail(usage: dict[str, Any], group: str, name: str) -> int:
    details = usage.get(group)
    return _count(details.get(name)) if isinstance(details, dict) else 0


def chat_usage(usage: object) -> Usage | None:
    """``usage`` as a ``Usage``; None when it is not a usage object."""
    if not isinstance(usage, dict) or "prompt_tokens" not in usage:
        return None
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    return Usage(prompt, completion, cache_read_tokens=min(prompt, _detail(usage, "prompt_tokens_details",
                                                                           "cached_tokens")),
                 reasoning_tokens=min(completion, _detail(usage, "completion_tokens_details", "reasoning_tokens")))
