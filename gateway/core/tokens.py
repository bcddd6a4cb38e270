"""Local token estimates (about 4 characters a token), for limits and for upstreams that report no usage."""

from __future__ import annotations


def estimate_tokens(text: str) -> int:
    """A local estimate (about 4 characters a token) for upstreams that report no usage."""
    return (len(text) + 3) // 4 if text else 0


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
