"""The one table of provider types: for each ``type`` in the config, its protocol and adapter,
default API root, whether it needs keys, the environment variables its keys come from, whether
it reports usage in streams, and the endpoint families its protocol serves. The config schema
accepts exactly these types (``config/schema.py`` reads ``TYPES``).

Everything reaches an adapter through this module: the snapshot builder (``entry``, ``api_root``)
and the dispatcher (``adapter_for``). A type whose adapter slot is empty is known to the schema
but refused by the snapshot builder with a clear config error.

Plugins (entry points of ``gateway.providers``, docs/plugins.md) add their types with
``register``, once when the process starts and before any config is read: a type with a protocol
of its own brings its adapter and its config model (``config``: a subclass of the schema's
``ProviderConfigBase``), and may answer in-process through ``transport`` (an httpx transport for
the URL scheme of its ``default_root``, such as ``echo://``), so the dispatcher never knows.

The API root is the URL that ``/chat/completions`` is appended to. A configured ``base_url``
without a version segment (``https://api.openai.com``) gets ``/v1`` appended where the protocol
puts its version there, so both the OpenAI style and the full-root style paste as is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import httpx

from ..core.call import (
    ASSISTANTS,
    AUDIO,
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    FILES,
    IMAGES,
    MODERATIONS,
    RESPONSES,
    THREADS,
)
from .anthropic import AnthropicAdapter
from .azure import AzureAdapter
from .base import ProviderAdapter
from .gemini import GeminiAdapter
from .openai import OpenAIAdapter

OPENAI: ProviderAdapter = OpenAIAdapter()
AZURE: ProviderAdapter = AzureAdapter()
ANTHROPIC: ProviderAdapter = AnthropicAdapter()
GEMINI: ProviderAdapter = GeminiAdapter()

# The endpoint families (``Call.operation``) each protocol's adapter can serve; a provider's
# ``endpoints`` may narrow them.
ALL_FAMILIES = frozenset({CHAT, COMPLETIONS, EMBEDDINGS, IMAGES, AUDIO, MODERATIONS, RESPONSES, FILES,
                          ASSISTANTS, THREADS})
FAMILIES: dict[str, frozenset[str]] = {
    "openai": ALL_FAMILIES,
    "azure": frozenset({CHAT, COMPLETIONS, EMBEDDINGS}),
    "anthropic": frozenset({CHAT}),
    "gemini": frozenset({CHAT, EMBEDDINGS}),
}


@dataclass(frozen=True, slots=True)
class ProviderType:
    name: str
    protocol: str  # "openai" | "azure" | "anthropic" | "gemini"
    adapter: ProviderAdapter | None  # None: in the schema, not yet served by this version
    default_root: str | None  # None: the config must give a base_url
    key_envs: tuple[str, ...]  # keys come from each of these in turn, with its _2, _3, … siblings
    needs_key: bool = True
    stream_usage: bool = True  # accepts stream_options.include_usage
    version_in_root: bool = False  # a base_url without /vN gets /v1
    # a plugin's: its config model (a ProviderConfigBase subclass; None: its protocol's built-in one),
    # the endpoint families it serves (None: its protocol's), an in-process answerer of its URL scheme
    config: type[Any] | None = None
    serves: frozenset[str] | None = None
    transport: httpx.AsyncBaseTransport | None = None

    @property
    def families(self) -> frozenset[str]:
        """The endpoint families it serves: its own, else its protocol's (chat only for a protocol
        not in ``FAMILIES``)."""
        if self.serves is not None:
            return self.serves
        return FAMILIES.get(self.protocol, frozenset({CHAT}))


def _env(name: str) -> tuple[str, ...]:
    """``openai-compatible`` -> ``("OPENAI_COMPATIBLE_API_KEY",)``."""
    return (re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_API_KEY",)


def _compatible(name: str, root: str | None, needs_key: bool = True) -> ProviderType:
    return ProviderType(name, "openai", OPENAI, root, _env(name), needs_key=needs_key, version_in_root=True)


TYPES: dict[str, ProviderType] = {t.name: t for t in (
    _compatible("openai", "https://api.openai.com/v1"),
    ProviderType("azure", "azure", AZURE, None, _env("azure")),
    ProviderType("anthropic", "anthropic", ANTHROPIC, "https://api.anthropic.com/v1",
                 ("ANTHROPIC_API_KEY", "CLAUDE_API_KEY"), version_in_root=True),
    ProviderType("gemini", "gemini", GEMINI, "https://generativelanguage.googleapis.com/v1beta",
                 ("GEMINI_API_KEY", "GOOGLE_API_KEY")),
    _compatible("groq", "https://api.groq.com/openai/v1"),
    _compatible("mistral", "https://api.mistral.ai/v1"),
    _compatible("deepseek", "https://api.deepseek.com/v1"),
    _compatible("together", "https://api.together.xyz/v1"),
    _compatible("perplexity", "https://api.perplexity.ai"),
    _compatible("xai", "https://api.x.ai/v1"),
    _compatible("openrouter", "https://openrouter.ai/api/v1"),
    _compatible("ollama", "http://127.0.0.1:11434/v1", needs_key=False),
    _compatible("lmstudio", "http://127.0.0.1:1234/v1", needs_key=False),
    _compatible("openai-compatible", None, needs_key=False),
)}

_BY_PROTOCOL: dict[str, ProviderAdapter] = {t.protocol: t.adapter for t in TYPES.values() if t.adapter is not None}
_VERSIONED = re.compile(r"/v\d+[a-z0-9]*/?$")


class NotAProviderType(ValueError):
    """What a plugin offered cannot be a provider type (the message says why)."""


def register(kind: ProviderType) -> None:
    """Add a plugin's provider type to the table (raises ``NotAProviderType``, the table unchanged)."""
    if kind.name in TYPES:
        raise NotAProviderType(f"type '{kind.name}' is already defined")
    served = _BY_PROTOCOL.get(kind.protocol)
    if served is not None and kind.adapter is not None and kind.adapter is not served:
        raise NotAProviderType(f"protocol '{kind.protocol}' is the built-in one's; give a protocol name of your own "
                               "for an adapter of your own")
    if served is None and kind.adapter is None:
        raise NotAProviderType(f"protocol '{kind.protocol}' is new, so the type needs an adapter")
    if kind.transport is not None and (kind.default_root is None or "://" not in kind.default_root):
        raise NotAProviderType("a type with a transport needs a default_root naming its URL scheme (echo://local)")
    adapter = kind.adapter or served
    assert adapter is not None  # checked above
    TYPES[kind.name] = replace(kind, adapter=adapter)
    _BY_PROTOCOL.setdefault(kind.protocol, adapter)


def transports() -> dict[str, httpx.AsyncBaseTransport]:
    """The in-process transports of the registered types, by the URL scheme they answer (``echo``)."""
    return {t.default_root.split("://", 1)[0]: t.transport for t in TYPES.values()
            if t.transport is not None and t.default_root is not None}


def entry(type_: str) -> ProviderType:
    return TYPES[type_]


def adapter_for(protocol: str) -> ProviderAdapter:
    """The adapter speaking ``protocol`` (a ``ProviderSpec.protocol``, which only served types get)."""
    return _BY_PROTOCOL[protocol]


def api_root(type_: str, base_url: str | None) -> str | None:
    """Where requests go: ``base_url`` (with /v1 added where the protocol wants it) or the type's
    default; None when the type has no default and no base_url was given."""
    kind = TYPES[type_]
    if base_url is None:
        return kind.default_root
    root = base_url.rstrip("/")
    if kind.version_in_root and not _VERSIONED.search(root):
        root += "/v1"
    return root
