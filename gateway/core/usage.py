"""What a request used (``Usage``), and a whole answer in the OpenAI shape with it (``Answer``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    exact: bool = True  # False when counted locally because the upstream gave none

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Answer:
    """A whole upstream answer in the OpenAI shape, with what it used."""

    data: dict[str, Any]
    usage: Usage
