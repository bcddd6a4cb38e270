"""What LiteLLM's names mean here: its provider prefixes as our provider types, its router strategies
as ours, and how an ``os.environ/NAME`` value becomes a ``${NAME}`` reference. Used by
``litellm_import.py``; facts from LiteLLM's proxy documentation (config.yaml, load balancing)."""

from __future__ import annotations

import re
from typing import Any

# litellm_params.model "<prefix>/<model>": the prefix as a provider type of providers/registry.py
PROVIDER_TYPES: dict[str, str] = {
    "openai": "openai", "text-completion-openai": "openai", "azure": "azure", "azure_text": "azure",
    "anthropic": "anthropic", "gemini": "gemini", "groq": "groq", "mistral": "mistral", "deepseek": "deepseek",
    "together_ai": "together", "perplexity": "perplexity", "xai": "xai", "openrouter": "openrouter",
    "ollama": "ollama", "ollama_chat": "ollama", "lm_studio": "lmstudio", "hosted_vllm": "openai-compatible",
    "custom_openai": "openai-compatible", "openai_like": "openai-compatible",
}
# the prefix LiteLLM infers for a model string without one, by the model's name
UNPREFIXED = (("claude", "anthropic"), ("gemini", "gemini"))

# router_settings.routing_strategy -> (our strategy, what the operator should know, or None)
STRATEGIES: dict[str, tuple[str, str | None]] = {
    "simple-shuffle": ("weighted", None),  # weighted random by weight, else rpm, else tpm: the weights below
    "least-busy": ("least_busy", None),
    "latency-based-routing": ("latency", None),
    "cost-based-routing": ("cost", None),
    "usage-based-routing": ("least_busy", "has no exact equivalent: mapped to least_busy; each deployment's "
                                          "rpm/tpm still become limits that are checked before a request is sent"),
    "usage-based-routing-v2": ("least_busy", "has no exact equivalent: mapped to least_busy; each deployment's "
                                             "rpm/tpm still become limits that are checked before a request is "
                                             "sent"),
}
DEFAULT_STRATEGY = "simple-shuffle"  # LiteLLM's default

# litellm_params that become a provider field (the rest are listed as warnings)
PROVIDER_PARAMS = frozenset({"model", "api_key", "api_base", "api_version", "rpm", "tpm", "timeout", "weight",
                             "input_cost_per_token", "output_cost_per_token"})
ENV_PREFIX = "os.environ/"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def env_reference(value: Any) -> str | None:
    """``os.environ/NAME`` as ``${NAME}``; None when ``value`` is not such a reference."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX) and _ENV_NAME.fullmatch(value[len(ENV_PREFIX):]):
        return "${" + value[len(ENV_PREFIX):] + "}"
    return None


def provider_type(model: str, api_base: Any) -> tuple[str | None, str]:
    """(our provider type or None if there is none, the upstream model name) of ``litellm_params.model``."""
    prefix, sep, name = model.partition("/")
    if not sep:
        prefix, name = next((kind for start, kind in UNPREFIXED if model.startswith(start)), "openai"), model
    kind = PROVIDER_TYPES.get(prefix)
    if kind == "openai" and api_base is not None and "api.openai.com" not in str(api_base):
        kind = "openai-compatible"  # openai/<model> with an api_base: any OpenAI-compatible server
    return kind, name


def provider_id(text: str, taken: set[str]) -> str:
    """A provider id made of ``text`` (letters, digits, . _ -), unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text).strip("-") or "provider"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name
