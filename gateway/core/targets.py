"""Providers with their key pools, targets, routes and clients: what a snapshot is made of.

A provider key's ``label`` (``provider#2``) and ``ident`` (the provider id and a hash of the
secret) are what logs, metrics and stored state name a key by; the secret itself is only ever
sent to its provider. Client keys are known by their SHA-256 digest, never in clear.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .mcp import NO_MCP, McpAccess
from .policy import Budget, CacheConfig, Limits
from .pricing import Pricing


def key_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def key_hash_text(secret: str) -> str:
    """What ``virtual-key`` writes into the config: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ProviderKey:
    provider_id: str
    index: int  # 1-based position in the pool
    secret: str = field(repr=False)
    ident: str = field(default="", repr=False, compare=False)  # provider id + hash of the secret

    def __post_init__(self) -> None:
        if not self.ident:
            digest = hashlib.sha256(self.secret.encode()).hexdigest()[:16]
            object.__setattr__(self, "ident", f"{self.provider_id}:{digest}")

    @property
    def label(self) -> str:
        """Safe to log and to use as a metric label: never the key itself."""
        return f"{self.provider_id}#{self.index}"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    id: str
    type: str
    protocol: str
    api_root: str
    keys: tuple[ProviderKey, ...]
    models: frozenset[str]
    pricing: Pricing
    limits: Limits
    weight: float
    headers: tuple[tuple[str, str], ...]
    timeout_s: float
    cooldown_s: float
    stream_usage: bool
    needs_key: bool
    api_version: str | None  # what the protocol sends as its version (Azure api-version, anthropic-version)
    # the models priced apart from ``pricing`` (``models: [{name, pricing}]`` or the ``pricing`` map)
    model_pricing: Mapping[str, Pricing] = field(default_factory=lambda: MappingProxyType({}), compare=False)
    # the endpoint families it serves: its protocol's, narrowed by its ``endpoints`` in the config
    families: frozenset[str] = frozenset({"chat"})
    # a plugin type's validated config entry (its own model), for its adapter to read; None for the built-in types
    config: object | None = field(default=None, compare=False, repr=False)

    def price_of(self, model: str) -> Pricing:
        """What ``model`` costs on this provider: its own price, else the provider's default."""
        return self.model_pricing.get(model, self.pricing)


@dataclass(frozen=True, slots=True)
class Target:
    provider: ProviderSpec
    model: str

    @property
    def name(self) -> str:
        return f"{self.provider.id}:{self.model}"

    @property
    def pricing(self) -> Pricing:
        """The served model's price (cost, budget holds, the ``cost`` strategy)."""
        return self.provider.price_of(self.model)


@dataclass(frozen=True, slots=True)
class Route:
    strategy: str
    targets: tuple[Target, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ClientSpec:
    id: str
    digest: bytes = field(repr=False)
    allowed_providers: frozenset[str] | None  # None = all
    allowed_models: frozenset[str] | None
    limits: Limits
    budget: Budget
    admin: bool
    cache: CacheConfig | None = None  # the response cache for this client's requests
    mcp: McpAccess = NO_MCP  # the MCP servers and tools it may use (none by default)
    tool_calls_per_min: int | None = None  # ``limits.tool_calls_per_min``: MCP tool calls per window
    guardrails: tuple[str, ...] = ()  # the guards this client's requests pass besides the default ones
