"""OpenAI-compatible protocol (OpenAI and every preset that speaks it): pure translation."""

from .adapter import OpenAIAdapter, limit_headers
from .response import parse_answer, usage_from
from .stream import StreamRelay

__all__ = ["OpenAIAdapter", "StreamRelay", "limit_headers", "parse_answer", "usage_from"]
