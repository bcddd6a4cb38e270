"""Google AI Studio's Gemini protocol (``generateContent``): pure translation to and from OpenAI's shapes."""

from .adapter import GeminiAdapter

__all__ = ["GeminiAdapter"]
