"""Prices (USD per 1K tokens) and what a request costs, before it is sent and once it is done."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from .policy import Strict
from .usage import Usage

# Output tokens assumed for a request that names no max_tokens, when its cost is held (see estimated_cost).
DEFAULT_OUTPUT_TOKENS = 4096


class Pricing(Strict):
    """USD per 1K tokens. Tokens read from or written to a provider's prompt cache have prices of
    their own where the provider bills them apart (None: the input price); reasoning tokens are
    output tokens."""

    input_token_cost: float = Field(0.0, ge=0)
    output_token_cost: float = Field(0.0, ge=0)
    cache_read_token_cost: float | None = Field(None, ge=0)
    cache_write_token_cost: float | None = Field(None, ge=0)


def cost_usd(pricing: Pricing, usage: Usage) -> float:
    read, write = usage.cache_read_tokens, usage.cache_write_tokens
    inputs = (usage.prompt_tokens - read - write) * pricing.input_token_cost
    if read:
        price = pricing.cache_read_token_cost
        inputs += read * (pricing.input_token_cost if price is None else price)
    if write:
        price = pricing.cache_write_token_cost
        inputs += write * (pricing.input_token_cost if price is None else price)
    return (inputs + usage.completion_tokens * pricing.output_token_cost) / 1000.0


def estimated_cost(pricings: Iterable[Pricing], prompt_tokens: int, output_tokens: int) -> float:
    """What a request may cost before it is sent: the estimated prompt and ``output_tokens`` (its
    ``max_tokens``, else ``DEFAULT_OUTPUT_TOKENS``) at the dearest pricing among the targets it
    may be served by. The dearest, because failover or a strategy may serve it from any of them:
    the hold must cover whichever does, or the budget's bound would not hold."""
    return max((cost_usd(p, Usage(prompt_tokens, output_tokens)) for p in pricings), default=0.0)
