"""Anthropic Messages protocol (``type: anthropic``): pure translation to and from OpenAI's shapes.

``request`` (and ``content``) build the Messages request, ``response`` reads a whole answer,
``stream`` relays SSE events, ``limits`` reads the ``anthropic-ratelimit-*`` headers, and
``adapter`` ties them into the ``ProviderAdapter``.
"""

from .adapter import AnthropicAdapter

__all__ = ["AnthropicAdapter"]
