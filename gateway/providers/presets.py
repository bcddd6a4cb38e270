"""What each provider ``type`` means: its wire protocol, default API root, whether it needs keys.

The API root is the URL that ``/chat/completions`` is appended to. A configured ``base_url``
without a version segment (``https://api.openai.com``) gets ``/v1`` appended, so both the
OpenAI style and the full-root style paste as is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    protocol: str  # "openai" | "azure" | "anthropic" | "gemini"
    api_root: str | None
    needs_key: bool = True
    stream_usage: bool = True  # accepts stream_options.include_usage


PRESETS: dict[str, Preset] = {
    "openai": Preset("openai", "https://api.openai.com/v1"),
    "groq": Preset("openai", "https://api.groq.com/openai/v1"),
    "mistral": Preset("openai", "https://api.mistral.ai/v1"),
    "deepseek": Preset("openai", "https://api.deepseek.com/v1"),
    "together": Preset("openai", "https://api.together.xyz/v1"),
    "perplexity": Preset("openai", "https://api.perplexity.ai"),
    "xai": Preset("openai", "https://api.x.ai/v1"),
    "openrouter": Preset("openai", "https://openrouter.ai/api/v1"),
    "ollama": Preset("openai", "http://127.0.0.1:11434/v1", needs_key=False),
    "lmstudio": Preset("openai", "http://127.0.0.1:1234/v1", needs_key=False),
    "openai-compatible": Preset("openai", None, needs_key=False),
    "azure": Preset("azure", None),
    "anthropic": Preset("anthropic", "https://api.anthropic.com/v1"),
    "gemini": Preset("gemini", "https://generativelanguage.googleapis.com/v1beta"),
}

SUPPORTED_PROTOCOLS = frozenset({"openai", "azure"})

_VERSIONED = re.compile(r"/v\d+[a-z0-9]*/?$")


def api_root(type_: str, base_url: str | None) -> str | None:
    preset = PRESETS[type_]
    if base_url is None:
        return preset.api_root
    root = base_url.rstrip("/")
    if preset.protocol in ("openai", "anthropic") and not _VERSIONED.search(root):
        root += "/v1"
    return root


def key_env_name(type_: str) -> str:
    """``gemini`` -> ``GEMINI_API_KEY``; ``openai-compatible`` -> ``OPENAI_COMPATIBLE_API_KEY``."""
    return re.sub(r"[^A-Z0-9]", "_", type_.upper()) + "_API_KEY"
