"""The YAML schema, as pydantic models. Field names follow COO-LLM's documents.

Validation here is structural; cross references (aliases naming providers, keys present,
duplicate ids) are checked when the snapshot is built (``snapshot.py``).
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ProviderType = Literal[
    "openai", "azure", "anthropic", "gemini", "groq", "mistral", "deepseek", "together",
    "perplexity", "xai", "openrouter", "ollama", "lmstudio", "openai-compatible",
]
Strategy = Literal["fallback", "round_robin", "weighted", "least_busy", "latency", "cost"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pricing(_Strict):
    """USD per 1K tokens."""

    input_token_cost: float = Field(0.0, ge=0)
    output_token_cost: float = Field(0.0, ge=0)


class Limits(_Strict):
    req_per_min: int | None = Field(None, ge=1)
    tokens_per_min: int | None = Field(None, ge=1)


class Budget(_Strict):
    """USD a client may spend per calendar day / month (UTC)."""

    daily_usd: float | None = Field(None, gt=0)
    monthly_usd: float | None = Field(None, gt=0)


class Server(_Strict):
    listen: str = ":2906"
    max_body_mb: float = Field(10.0, gt=0)
    request_timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    log_requests: bool = True

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must look like ":2906" or "127.0.0.1:2906"')
        return v


class Routing(_Strict):
    strategy: Strategy = "fallback"
    max_attempts: int = Field(4, ge=1, le=50)
    cooldown_s: float = Field(60.0, gt=0)
    queue_timeout_s: float = Field(0.0, ge=0)
    circuit_breaker_failures: int = Field(3, ge=1)
    circuit_breaker_open_s: float = Field(30.0, gt=0)
    quarantine_s: float = Field(600.0, gt=0)  # a key the upstream rejected (401/403) rests this long
    limit_window_s: float = Field(60.0, gt=0)  # the "minute" of req/tokens_per_min; shorten only to test


class Provider(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    type: ProviderType
    base_url: str | None = None
    api_keys: list[str] | None = None
    model: str | None = None
    models: list[str] | None = None
    pricing: Pricing = Pricing()
    limits: Limits = Limits()
    weight: float = Field(1.0, gt=0)
    headers: dict[str, str] = {}
    timeout_s: float | None = Field(None, gt=0)
    cooldown_s: float | None = Field(None, gt=0)
    api_version: str | None = None  # azure

    @model_validator(mode="after")
    def _one_model_field(self) -> "Provider":
        if self.model is not None and self.models is not None:
            raise ValueError("give either 'model' or 'models', not both")
        return self

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class AliasSpec(_Strict):
    strategy: Strategy | None = None
    targets: list[str] = Field(min_length=1)
    weights: list[float] | None = None

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (any(w < 0 for w in v) or not any(w > 0 for w in v)):
            raise ValueError("weights must be >= 0, at least one of them > 0")
        return v


class Client(_Strict):
    id: str | None = None
    key: str | None = Field(None, min_length=8, repr=False)
    key_hash: str | None = Field(None, pattern=r"^sha256:[0-9a-f]{64}$")
    allowed_providers: list[str] = ["*"]
    allowed_models: list[str] = ["*"]
    limits: Limits = Limits()
    budget: Budget = Budget()
    admin: bool = False

    @model_validator(mode="after")
    def _one_key(self) -> "Client":
        if (self.key is None) == (self.key_hash is None):
            raise ValueError("give exactly one of 'key' or 'key_hash'")
        return self


class GatewayConfig(_Strict):
    version: str = "1.0"
    server: Server = Server()
    routing: Routing = Routing()
    llm_providers: list[Provider] = []
    model_aliases: dict[str, Union[str, list[str], AliasSpec]] = {}
    api_keys: list[Client] = []
