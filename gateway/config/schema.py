"""The YAML schema, as pydantic models. Field names follow COO-LLM's documents.

Validation here is structural; cross references (aliases naming providers, keys present,
duplicate ids) are checked when the snapshot is built (``snapshot.py``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    SerializeAsAny,
    Tag,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..core.policy import Budget, CacheConfig, ClientLimits, Limits, Strict
from ..core.pricing import Pricing
from ..guardrails.config import GuardrailsConfig
from ..plugins.loader import PROVIDERS, failure
from ..providers.registry import TYPES
from ..store.config import Storage
from .mcp_schema import ClientMcpConfig, McpServerConfig
from .observability_schema import ObservabilityConfig

EndpointFamily = Literal["chat", "completions", "embeddings", "images", "audio", "moderations", "responses",
                         "files", "assistants", "threads"]  # core/call.py's operation names
Strategy = Literal["fallback", "round_robin", "weighted", "least_busy", "latency", "cost"]


def _model_price(value: Any) -> Any:
    """A model's entry in a provider's ``pricing`` map must itself be a mapping; anything else there
    is a misspelt field (``pricing: {input_cost: 1}``), reported as such."""
    if not isinstance(value, (dict, Pricing)):
        raise PydanticCustomError("extra_forbidden", "unknown field")
    return value


class ProviderPricing(Pricing):
    """A provider's ``pricing``: its default price, and beside it any of its models' own prices
    (``{input_token_cost: 1, output_token_cost: 2, gpt-4o-mini: {input_token_cost: 0.1, …}}``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Annotated[Pricing, BeforeValidator(_model_price)]] = Field(init=False)

    def per_model(self) -> dict[str, Pricing]:
        return dict(self.__pydantic_extra__ or {})


class ModelEntry(Strict):
    """One of ``models:``, with its own price: ``{name: gpt-4o-mini, pricing: {...}}`` (or a plain name)."""

    name: str = Field(min_length=1)
    pricing: Pricing | None = None


def _model_entries(value: Any) -> Any:
    """``models: [gpt-4o, {name: gpt-4o-mini, pricing: …}]``: plain names become entries."""
    if isinstance(value, list):
        return [{"name": item} if isinstance(item, str) else item for item in value]
    return value


_BASE_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")
_SERVED_PATHS = frozenset({"/v1", "/api/v1"})
# first segments of the gateway's other endpoints: a base path there would shadow or clash with them
_RESERVED_SEGMENTS = frozenset({"admin", "health", "metrics", "ui", "docs", "openapi.json", "v1beta", "chat",
                                "completions", "embeddings", "models", "responses", "files", "assistants",
                                "threads", "images", "audio", "moderations", "messages"})


class Server(Strict):
    listen: str = ":2906"
    max_body_mb: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(30.0, gt=0)  # the whole request body must arrive within this (408 after)
    request_timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    max_response_mb: float = Field(50.0, gt=0)  # a longer non-streamed upstream answer is a 502
    log_requests: bool = True
    public_metrics: bool = False  # true: GET /metrics needs no key (a private network only)
    # more prefixes the /v1 routes are served under, beside /v1, /api/v1 and bare (a client's old
    # base URL, e.g. /api/litellm/v1); fixed at start: a change takes a restart
    base_paths: list[str] = []

    @field_validator("base_paths")
    @classmethod
    def _base_paths(cls, v: list[str]) -> list[str]:
        for path in v:
            if not _BASE_PATH.fullmatch(path):
                raise ValueError(f"'{path[:80]}' is not a base path: it must look like \"/api/litellm/v1\" (a / "
                                 "before each segment of letters, digits, . _ ~ -; no trailing /)")
            if path in _SERVED_PATHS or path.split("/")[1] in _RESERVED_SEGMENTS or path.startswith("/api/admin"):
                raise ValueError(f"'{path}' is served already or belongs to another endpoint; choose another "
                                 "prefix")
        if len(set(v)) != len(v):
            raise ValueError("a base path is listed twice")
        return v

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must look like ":2906" or "127.0.0.1:2906"')
        return v


class Routing(Strict):
    strategy: Strategy = "fallback"
    max_attempts: int = Field(4, ge=1, le=50)
    cooldown_s: float = Field(60.0, gt=0)
    max_cooldown_s: float = Field(3600.0, gt=0)  # no upstream header rests a key (or is told to clients) longer
    # One deadline for all attempts of a request. None: the timeout_s of the attempts the route can
    # make (longest first, up to max_attempts) summed, capped at server.request_timeout_s, never
    # shorter than the route's longest provider timeout (routing/deadline.py)
    total_timeout_s: float | None = Field(None, gt=0)
    queue_timeout_s: float = Field(0.0, ge=0)
    circuit_breaker_failures: int = Field(3, ge=1)
    circuit_breaker_open_s: float = Field(30.0, gt=0)
    quarantine_s: float = Field(600.0, gt=0)  # a key the upstream rejected (401/403) rests this long
    limit_window_s: float = Field(60.0, gt=0)  # the "minute" of req/tokens_per_min; shorten only to test
    # rounds of MCP tool calls the gateway runs for a model before it must answer (docs/mcp.md)
    max_tool_rounds: int = Field(8, ge=1, le=100)


class ProviderConfigBase(Strict):
    """What every provider type has; each type's class adds its own fields (see ``Provider``). A
    plugin's provider type subclasses it for its own config model (docs/plugins.md)."""

    type: str
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    base_url: str | None = None
    api_keys: list[str] | None = None
    # keys from the environment: each name, then its _2, _3, … siblings (instead of api_keys)
    api_keys_env: str | list[str] | None = None
    model: str | None = None
    models: Annotated[list[ModelEntry] | None, BeforeValidator(_model_entries)] = None  # per-model pricing
    pricing: ProviderPricing = ProviderPricing()  # default price, and per-model prices beside it
    limits: Limits = Limits()
    weight: float = Field(1.0, gt=0)
    headers: dict[str, str] = {}
    timeout_s: float | None = Field(None, gt=0)
    cooldown_s: float | None = Field(None, gt=0)
    # the endpoint families this provider serves, among what its type can do
    # (omitted: all of them). ``endpoints: [chat]`` makes /v1/responses translate to chat for it.
    endpoints: list[EndpointFamily] | None = None

    @model_validator(mode="after")
    def _one_model_field(self) -> Self:
        if self.model is not None and self.models is not None:
            raise ValueError("give either 'model' or 'models', not both")
        return self

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if self.api_keys is not None and self.api_keys_env is not None:
            raise ValueError("give either 'api_keys' or 'api_keys_env', not both")
        return self

    @field_validator("api_keys_env")
    @classmethod
    def _env_names(cls, v: str | list[str] | None) -> str | list[str] | None:
        names = [v] if isinstance(v, str) else v or []
        if isinstance(v, list) and not v:
            raise ValueError("name at least one environment variable")
        for name in names:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"'{name[:64]}' is not an environment variable name (letters, digits, _)")
        return v

    def key_env_names(self) -> tuple[str, ...] | None:
        """The environment variables named by ``api_keys_env`` (None: not given)."""
        if self.api_keys_env is None:
            return None
        return (self.api_keys_env,) if isinstance(self.api_keys_env, str) else tuple(self.api_keys_env)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    def protocol_version(self) -> str | None:
        """The version string the protocol sends with each request (Azure's api-version, …)."""
        return None

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for what this type needs beyond the schema (checked when the snapshot is built)."""
        return []


def _known_type(protocol: str | None) -> Any:
    """A validator of ``type``: one of ``providers/registry.py``'s types (of ``protocol``, when given),
    refused with the list of them in the words of a pydantic literal error, or with why the plugin
    that would add it is not in use. The table is read when a file is checked: plugins add to it."""

    def check(value: Any) -> str:
        if isinstance(value, str) and value in TYPES and (protocol is None or TYPES[value].protocol == protocol):
            return value
        why = failure(PROVIDERS, value) if isinstance(value, str) else None
        if why is not None:
            raise PydanticCustomError("plugin_failed", "{why}", {"why": why})
        names = [name for name, kind in TYPES.items() if protocol is None or kind.protocol == protocol]
        expected = ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}" if len(names) > 1 else repr(names[0])
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})

    return BeforeValidator(check)


class OpenAICompatibleProvider(ProviderConfigBase):
    type: Annotated[str, _known_type("openai")]


class AzureProvider(ProviderConfigBase):
    type: Literal["azure"]
    api_version: str | None = None

    def protocol_version(self) -> str | None:
        return self.api_version

    def problems(self) -> list[tuple[str, str]]:
        if not self.api_version:
            return [("api_version", "type 'azure' needs an api_version, e.g. \"2024-10-21\"")]
        return []


class AnthropicProvider(ProviderConfigBase):
    type: Literal["anthropic"]
    anthropic_version: str = "2023-06-01"  # the anthropic-version header

    def protocol_version(self) -> str | None:
        return self.anthropic_version


class GeminiProvider(ProviderConfigBase):
    type: Literal["gemini"]


class _UnknownTypeProvider(ProviderConfigBase):
    """Where a provider with a missing or unknown ``type`` is validated: its ``type`` fails with the
    list of known types, and its other fields are still checked (every type-specific field allowed)."""

    type: Annotated[str, _known_type(None)]
    api_version: str | None = None
    anthropic_version: str | None = None


# The config class of each protocol (a provider type's protocol: ``providers/registry.py``).
_TAGS: dict[str, str] = {"openai": "OpenAICompatibleProvider", "azure": "AzureProvider",
                         "anthropic": "AnthropicProvider", "gemini": "GeminiProvider"}
UNKNOWN_TYPE_TAG = "UnknownTypeProvider"
PLUGIN_TAG = "PluginProvider"  # a plugin's type with a config model of its own
# What pydantic puts in an error's location to name the union member (the loader drops them).
PROVIDER_TAGS = frozenset(_TAGS.values()) | {UNKNOWN_TYPE_TAG, PLUGIN_TAG}


def _provider_tag(value: Any) -> str:
    type_ = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    kind = TYPES.get(type_) if isinstance(type_, str) else None
    if kind is None:
        return UNKNOWN_TYPE_TAG
    if kind.config is not None:
        return PLUGIN_TAG
    return _TAGS.get(kind.protocol, UNKNOWN_TYPE_TAG)


def _by_plugin_model(value: Any, handler: Any) -> Any:
    """A plugin type's entry, validated by the model its ``ProviderType.config`` names (its errors
    keep their place in the file: pydantic nests them under this entry)."""
    if isinstance(value, ProviderConfigBase):
        return value
    config = TYPES[value["type"]].config  # the discriminator chose this member for exactly these
    assert config is not None
    return config.model_validate(value)


# One provider entry: a discriminated union on ``type``.
Provider = Annotated[
    Annotated[OpenAICompatibleProvider, Tag("OpenAICompatibleProvider")]
    | Annotated[AzureProvider, Tag("AzureProvider")]
    | Annotated[AnthropicProvider, Tag("AnthropicProvider")]
    | Annotated[GeminiProvider, Tag("GeminiProvider")]
    | Annotated[_UnknownTypeProvider, Tag(UNKNOWN_TYPE_TAG)]
    | Annotated[SerializeAsAny[ProviderConfigBase], WrapValidator(_by_plugin_model), Tag(PLUGIN_TAG)],
    Discriminator(_provider_tag),
]
ProviderConfig = (OpenAICompatibleProvider | AzureProvider | AnthropicProvider | GeminiProvider | _UnknownTypeProvider
                  | ProviderConfigBase)




class AliasSpec(Strict):
    strategy: Strategy | None = None
    targets: list[str] = Field(min_length=1)
    weights: list[float] | None = None
    cache: CacheConfig | None = None  # the response cache for this alias
    guardrails: list[str] = []  # guards its requests pass besides guardrails.default (names under guardrails.guards)

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (any(w < 0 for w in v) or not any(w > 0 for w in v)):
            raise ValueError("weights must be >= 0, at least one of them > 0")
        return v


def check_client_key(key: str) -> None:
    """A key a client could never send (the gateway strips what it is sent; HTTP headers carry
    ASCII) would never match: it is a config error. The message never holds the key."""
    if key != key.strip():
        raise ValueError("the key has leading or trailing spaces; a client could never send it, so it would "
                         "never match")
    if not all(" " <= ch <= "~" for ch in key):
        raise ValueError("the key holds non-ASCII or control characters; an HTTP header cannot carry them, so it "
                         "would never match")


class Client(Strict):
    id: str | None = None
    key: str | None = Field(None, min_length=8, repr=False)
    key_hash: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    allowed_providers: list[str] = ["*"]
    allowed_models: list[str] = ["*"]
    limits: ClientLimits = ClientLimits()
    budget: Budget = Budget()
    admin: bool = False
    cache: CacheConfig | None = None  # the response cache for this client's requests
    mcp: ClientMcpConfig = ClientMcpConfig()  # the MCP servers and tools it may use (none by default)
    guardrails: list[str] = []  # guards its requests pass besides guardrails.default (names under guardrails.guards)

    @field_validator("key")
    @classmethod
    def _sendable(cls, v: str | None) -> str | None:
        if v is not None:
            check_client_key(v)
        return v

    @model_validator(mode="after")
    def _one_key(self) -> Client:
        if (self.key is None) == (self.key_hash is None):
            raise ValueError("give exactly one of 'key' or 'key_hash'")
        return self


class MetricsConfig(Strict):
    """``metrics:``. ``namespace``: the prefix of every gateway metric on /metrics
    (``<namespace>_client_requests_total``, …); fixed when the gateway starts (a change takes a restart)."""

    namespace: str = "gateway"

    @field_validator("namespace")
    @classmethod
    def _prometheus_prefix(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9_]*[A-Za-z0-9])?", v):
            raise ValueError("must be a Prometheus name prefix: letters, digits and _, starting with a letter and "
                             "not ending with _ (e.g. gateway or coo_llm)")
        return v


class GatewayConfig(Strict):
    version: str = "1.0"
    server: Server = Server()
    routing: Routing = Routing()
    llm_providers: list[Provider] = []
    model_aliases: dict[str, str | list[str] | AliasSpec] = {}
    api_keys: list[Client] = []
    storage: Storage = Storage()  # default: sqlite under data/ (gateway/store/config.py)
    metrics: MetricsConfig = MetricsConfig()  # the Prometheus namespace (restart-only)
    mcp_servers: list[McpServerConfig] = []  # MCP servers served on /mcp (gateway/mcp/)
    observability: ObservabilityConfig = ObservabilityConfig()  # traces (observability/otlp.py), content capture
    guardrails: GuardrailsConfig = GuardrailsConfig()  # guards on what goes to and comes from the models
