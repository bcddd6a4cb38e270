"""What a request used (``Usage``), and a whole answer in the OpenAI shape with it (``Answer``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    """Tokens in and out, the same way whatever the provider: ``prompt_tokens`` counts every input
    token, those read from and written to a prompt cache included (``cache_read_tokens`` and
    ``cache_write_tokens`` are parts of it); ``completion_tokens`` counts every output token,
    reasoning (thinking) included (``reasoning_tokens`` is a part of it)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    exact: bool = True  # False when counted locally because the upstream gave none
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Answer:
    """A whole upstream answer in the OpenAI shape, with what it used."""

    data: dict[str, Any]
    usage: Usage
