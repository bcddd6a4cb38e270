"""What the config sets per provider and per client, as frozen models: limits, budgets, the
response cache's bounds. The config schema (``config/schema.py``) uses them as its fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    """USD a client may spend per calendar day / month (UTC). A budget that sets neither amount is
    no budget of the client's own: the budget profile's applies (``BUDGET_PROFILES``), unless
    ``unlimited`` says the client has none."""

    daily_usd: float | None = Field(None, gt=0)
    monthly_usd: float | None = Field(None, gt=0)
    unlimited: bool = False  # no budget at all, whatever the budget profile

    @model_validator(mode="after")
    def _unlimited_alone(self) -> Budget:
        if self.unlimited and (self.daily_usd is not None or self.monthly_usd is not None):
            raise ValueError("'unlimited: true' takes no daily_usd or monthly_usd")
        return self

    def own(self) -> bool:
        """True if the client's budget is its own (amounts, or ``unlimited``), not the profile's."""
        return self.unlimited or self.daily_usd is not None or self.monthly_usd is not None

    def limits_spend(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None


# ``BUDGET_PROFILE`` in the environment or .env: the budget of every client that has none of its own
# (the master key has none). Unset means unlimited.
BUDGET_PROFILES: dict[str, Budget] = {
    "test": Budget(daily_usd=1.0, monthly_usd=10.0),
    "prod": Budget(daily_usd=50.0, monthly_usd=1000.0),
    "unlimited": Budget(),
}


class CacheConfig(Strict):
    """``cache:`` on an alias or a client: answers to identical requests are kept ``ttl_s`` seconds,
    at most ``max_mb`` of them (the least recently used go first). See gateway/cache/."""

    ttl_s: float = Field(300.0, gt=0)
    max_mb: float = Field(64.0, gt=0)
