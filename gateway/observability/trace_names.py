"""The GenAI semantic conventions' words for what the gateway knows: operation names, provider
names, the upstream's address. Pure functions; no OpenTelemetry import."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from ..core.call import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, Call

# ``gen_ai.operation.name`` of each call operation (the rest of the surface keeps its own word)
_OPERATIONS = {CHAT: "chat", COMPLETIONS: "text_completion", EMBEDDINGS: "embeddings", RESPONSES: "chat"}
# ``gen_ai.provider.name``'s well-known values for the provider types that have one; the other
# types (together, openrouter, ollama, lmstudio, openai-compatible) are named by their type
_PROVIDERS = {"openai": "openai", "azure": "azure.ai.openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
              "groq": "groq", "mistral": "mistral_ai", "deepseek": "deepseek", "perplexity": "perplexity",
              "xai": "x_ai"}
_PORTS = {"http": 80, "https": 443}


def operation_name(call: Call, protocol: str | None = None) -> str:
    """The call's operation; ``generate_content`` for a chat in Gemini's protocol (``protocol``:
    the upstream's, for an attempt; else the client's dialect)."""
    if call.operation == CHAT and (protocol or call.dialect) == "gemini":
        return "generate_content"
    return _OPERATIONS.get(call.operation, call.operation)


def provider_name(provider_type: str) -> str:
    return _PROVIDERS.get(provider_type, provider_type)


@lru_cache(maxsize=256)
def server_of(api_root: str) -> tuple[str, int]:
    """(``server.address``, ``server.port``) of a provider's API root."""
    parts = urlsplit(api_root)
    return parts.hostname or "", parts.port or _PORTS.get(parts.scheme, 0)
