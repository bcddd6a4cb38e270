"""Local token estimates (about 4 characters a token), for limits and for upstreams that report no usage."""

from __future__ import annotations


def estimate_tokens(text: str) -> int:
    """A local estimate (about 4 characters a token) for upstreams that report no usage."""
    return tokens_for_chars(len(text))


def tokens_for_chars(chars: int) -> int:
    """``estimate_tokens`` of a text ``chars`` characters long: a stream's relay counts the
    characters as they pass instead of keeping the text (which would grow with the answer)."""
    return (chars + 3) // 4 if chars > 0 else 0


def estimate_prompt_tokens(messages: object) -> int:
    total = 0
    if isinstance(messages, list):
        for message in messages:
            total += 4
            if isinstance(message, dict):
                content = message.get("content")
                if isinstance(content, str):
                    total += estimate_tokens(content)
                elif isinstance(content, list):
                    for part in content:
                        if isinstance(part, dict) and isinstance(part.get("text"), str):
                            total += estimate_tokens(part["text"])
    return total + 2


# reasoning_effort → Gemini's thinkingConfig.thinkingBudget (tokens), the budgets Google's own
# OpenAI-compatible endpoint uses (Gemini 3 still takes a budget; "none" turns thinking off)
THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
