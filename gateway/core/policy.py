"""What the config sets per provider and per client, as frozen models: limits, budgets, the
response cache's bounds. The config schema (``config/schema.py``) uses them as its fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A config model: unknown fields are errors, values never change once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(Strict):
    req_per_min: int | None = Field(None, ge=1)
    tokens_per_min: int | None = Field(None, ge=1)


class ClientLimits(Limits):
    """A client's ``limits``: a provider's, and the MCP tool calls it may make per window."""

    tool_calls_per_min: int | None = Field(None, ge=1)


class Budget(Strict):
    """USD a client may spend per calendar day / month (UTC)."""

    daily_usd: float | None = Field(None, gt=0)
    monthly_usd: float | None = Field(None, gt=0)


class CacheConfig(Strict):
    """``cache:`` on an alias or a client: answers to identical requests are kept ``ttl_s`` seconds,
    at most ``max_mb`` of them (the least recently used go first). See gateway/cache/."""

    ttl_s: float = Field(300.0, gt=0)
    max_mb: float = Field(64.0, gt=0)
