"""``python -m gateway import-litellm litellm_config.yaml``: a LiteLLM proxy config as our config.yaml.

- Each ``model_list`` deployment becomes a provider (its type from the ``litellm_params.model``
  prefix, ``api_base`` as ``base_url``, ``api_version``, ``timeout``, ``weight``, per-token costs as
  prices per 1K tokens) and ``rpm``/``tpm`` become its ``limits`` (per key; a deployment is one key).
- Every ``model_name`` becomes an alias of the same name, so clients keep calling what they called:
  one deployment is a plain alias, several are one alias with the router's strategy (and weights
  from ``weight``, else ``rpm``, else ``tpm``, as ``simple-shuffle`` draws them).
- ``os.environ/NAME`` becomes ``${NAME}``; a key written in the file becomes a ``${…}`` reference
  too, so the output never holds a secret (the warning names the variable to put in ``.env``).
- ``router_settings`` ``routing_strategy``, ``num_retries``, ``cooldown_time``, ``allowed_fails``,
  ``timeout`` and the ``redis_*`` settings map to ``routing``, ``server`` and ``storage.runtime``;
  ``model_group_alias`` to more aliases.
- Whatever has no equivalent is a warning naming it: nothing is dropped silently.

The result is checked as the gateway would load it (with the variables it reads set) before it is
printed; facts about LiteLLM's format come from its proxy documentation (``litellm_names.py``).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import yaml

from .litellm_names import (
    DEFAULT_STRATEGY,
    PROVIDER_PARAMS,
    STRATEGIES,
    env_reference,
    provider_id,
    provider_type,
)
from .loader import ConfigError, parse_config
from .snapshot import build_snapshot

SECTIONS = ("model_list", "router_settings", "litellm_settings", "general_settings", "environment_variables")
ROUTER_MAPPED = frozenset({"routing_strategy", "num_retries", "cooldown_time", "allowed_fails", "timeout",
                           "redis_host", "redis_port", "redis_password", "redis_url", "model_group_alias"})
LITELLM_MAPPED = frozenset({"num_retries", "request_timeout"})
COSTS = ("input_cost_per_token", "output_cost_per_token")


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ImportProblem(Exception):
    """The input cannot be read as a LiteLLM config at all."""


@dataclass
class Translation:
    config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    env_names: list[str] = field(default_factory=list)  # the variables the config reads


class _Builder:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.env: list[str] = []
        self.providers: list[dict[str, Any]] = []
        self.groups: dict[str, list[tuple[str, float | None]]] = {}
        self.routing: dict[str, Any] = {}
        self.server: dict[str, Any] = {}
        self.storage: dict[str, Any] | None = None
        self.ids: set[str] = set()

    def warn(self, where: str, text: str) -> None:
        self.warnings.append(f"{where}: {text}")

    def value(self, raw: Any) -> Any:
        """A setting's value with ``os.environ/NAME`` as ``${NAME}`` (the name noted)."""
        ref = env_reference(raw)
        if ref is None:
            return raw
        self.needs(ref[2:-1])
        return ref

    def needs(self, name: str) -> None:
        if name not in self.env:
            self.env.append(name)

    # --- model_list ---------------------------------------------------------------------------
    def deployment(self, i: int, item: Any) -> None:
        here = f"model_list[{i}]"
        params = item.get("litellm_params") if isinstance(item, dict) else None
        name = item.get("model_name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name or not isinstance(params, dict) or \
                not isinstance(params.get("model"), str):
            self.warn(here, "has no model_name or litellm_params.model: left out")
            return
        model = params["model"]
        if "*" in name or "*" in model:
            self.warn(here, f"the wildcard deployment '{name}' -> '{model}' has no equivalent (name each model): "
                            "left out")
            return
        kind, upstream = provider_type(model, params.get("api_base"))
        if kind is None:
            self.warn(here, f"the provider of '{model}' has no equivalent provider type here: left out, so the "
                            f"model name '{name}' is not served by it")
            return
        info = item.get("model_info") if isinstance(item.get("model_info"), dict) else {}
        pid = provider_id(str(info.get("id") or f"{kind}-{upstream}"), self.ids)
        provider: dict[str, Any] = {"id": pid, "type": kind}
        self._connection(here, provider, params, kind)
        provider["models"] = [upstream]
        self._numbers(here, provider, params, item, info)
        self.providers.append(provider)
        hint = provider.get("weight") or provider.get("limits", {}).get("req_per_min") or \
            provider.get("limits", {}).get("tokens_per_min")
        self.groups.setdefault(name, []).append((f"{pid}:{upstream}", hint))
        extra = sorted(set(params) - PROVIDER_PARAMS)
        if extra:
            self.warn(here, f"litellm_params {', '.join(extra)} of '{name}' have no equivalent: left out")
        info_extra = sorted(set(info) - {"id", *COSTS})
        if info_extra:
            self.warn(here, f"model_info {', '.join(info_extra)} of '{name}' have no equivalent: left out")
        for key in sorted(set(item) - {"model_name", "litellm_params", "model_info", "rpm", "tpm"}):
            self.warn(here, f"'{key}' has no equivalent: left out")

    def _connection(self, here: str, provider: dict[str, Any], params: dict[str, Any], kind: str) -> None:
        base, version = params.get("api_base"), params.get("api_version")
        if kind == "azure":  # LiteLLM reads these two from the environment when the deployment does not say
            base = base if base is not None else "os.environ/AZURE_API_BASE"
            version = version if version is not None else "os.environ/AZURE_API_VERSION"
            provider["api_version"] = str(self.value(version))
        elif version is not None:
            self.warn(here, f"api_version is only for azure deployments, not '{kind}': left out")
        if base is not None:
            provider["base_url"] = str(self.value(base))
        key = params.get("api_key")
        if key is None:
            return  # the type's own variables (OPENAI_API_KEY, _2, …), as LiteLLM reads them
        ref = env_reference(key)
        if ref is None:
            name = provider["id"].upper().replace("-", "_").replace(".", "_") + "_API_KEY"
            ref = "${" + name + "}"
            self.warn(here, f"its api_key is written in the file: put it in .env as {name}=… (the output "
                            "refers to it and never holds a key)")
        self.needs(ref[2:-1])
        provider["api_keys"] = [ref]

    def _numbers(self, here: str, provider: dict[str, Any], params: dict[str, Any], item: dict[str, Any],
                 info: dict[str, Any]) -> None:
        limits = {}
        for ours, theirs in (("req_per_min", "rpm"), ("tokens_per_min", "tpm")):
            raw = params.get(theirs, item.get(theirs))
            if _number(raw) and isinstance(raw, int) and raw >= 1:
                limits[ours] = raw
            elif raw is not None:
                self.warn(here, f"{theirs}: {raw!r} is not a whole number >= 1: left out")
        if limits:
            provider["limits"] = limits
        costs: dict[str, Any] = {name: params.get(name, info.get(name)) for name in COSTS}
        if all(_number(v) and v >= 0 for v in costs.values()):
            provider["pricing"] = {"input_token_cost": round(float(costs[COSTS[0]] or 0) * 1000, 12),
                                   "output_token_cost": round(float(costs[COSTS[1]] or 0) * 1000, 12)}
        elif any(v is not None for v in costs.values()):
            self.warn(here, "give both input_cost_per_token and output_cost_per_token (numbers) for a price: "
                            "left out")
        for ours, theirs in (("timeout_s", "timeout"), ("weight", "weight")):
            raw = params.get(theirs)
            if _number(raw) and raw > 0:
                provider[ours] = raw
            elif raw is not None:
                self.warn(here, f"{theirs}: {raw!r} is not a number > 0: left out")

    # --- router_settings, litellm_settings, general_settings, environment_variables -----------
    def router(self, settings: dict[str, Any]) -> str:
        name = settings.get("routing_strategy", DEFAULT_STRATEGY)
        strategy, note = STRATEGIES.get(str(name), (STRATEGIES[DEFAULT_STRATEGY][0], "is not known here"))
        if note is not None:
            self.warn("router_settings.routing_strategy", f"'{name}' {note} (strategy: {strategy})")
        self.routing["strategy"] = strategy
        self._retries("router_settings", settings)
        cooldown, fails = settings.get("cooldown_time"), settings.get("allowed_fails")
        if _number(cooldown) and cooldown > 0:  # a deployment that got a 429, or failed too often, rests this long
            self.routing["cooldown_s"] = self.routing["circuit_breaker_open_s"] = cooldown
        elif cooldown is not None:
            self.warn("router_settings.cooldown_time", f"{cooldown!r} is not a number > 0: left out")
        if _number(fails) and isinstance(fails, int) and fails >= 1:
            self.routing["circuit_breaker_failures"] = fails
        elif fails is not None:
            self.warn("router_settings.allowed_fails", f"{fails!r} is not a whole number >= 1: left out")
        self._timeout("router_settings.timeout", settings.get("timeout"))
        self._redis(settings)
        for key in sorted(set(settings) - ROUTER_MAPPED):
            self.warn(f"router_settings.{key}", "has no equivalent: left out")
        return strategy

    def _retries(self, where: str, settings: dict[str, Any]) -> None:
        retries = settings.get("num_retries")
        if _number(retries) and isinstance(retries, int) and retries >= 0:
            self.routing["max_attempts"] = min(retries + 1, 50)  # the first try and its retries
        elif retries is not None:
            self.warn(f"{where}.num_retries", f"{retries!r} is not a whole number >= 0: left out")

    def _timeout(self, where: str, raw: Any) -> None:
        if _number(raw) and raw > 0:
            self.server["request_timeout_s"] = raw
        elif raw is not None:
            self.warn(where, f"{raw!r} is not a number > 0: left out")

    def _redis(self, settings: dict[str, Any]) -> None:
        url, host = settings.get("redis_url"), settings.get("redis_host")
        if url is None and host is None:
            return
        if url is not None:
            addr = str(self.value(url))
        else:
            addr = f"{self.value(host)}:{self.value(settings.get('redis_port', 6379))}"
            password = settings.get("redis_password")
            if password is not None:
                secret = env_reference(password)
                if secret is None:
                    secret = "${REDIS_PASSWORD}"
                    self.warn("router_settings.redis_password", "is written in the file: put it in .env as "
                                                                "REDIS_PASSWORD=…")
                self.needs(secret[2:-1])
                addr = f"redis://:{secret}@{addr}"
        self.storage = {"runtime": {"type": "redis", "addr": addr}}

    def litellm_settings(self, settings: dict[str, Any]) -> None:
        self._retries("litellm_settings", settings)
        self._timeout("litellm_settings.request_timeout", settings.get("request_timeout"))
        for key in sorted(set(settings) - LITELLM_MAPPED):
            advice = " (an alias with strategy fallback tries its targets in order)" if key == "fallbacks" else ""
            self.warn(f"litellm_settings.{key}", f"has no equivalent: left out{advice}")

    def general_settings(self, settings: dict[str, Any]) -> None:
        for key in sorted(settings):
            if key == "master_key":
                self.warn("general_settings.master_key", "the gateway's master key is GATEWAY_MASTER_KEY in .env "
                                                         "(./setup.sh writes one): not carried over")
            elif key == "database_url":
                self.warn("general_settings.database_url", "LiteLLM's database (virtual keys, spend) is not read; "
                          "the gateway keeps its own ledger and clients (storage.ledger for PostgreSQL)")
            else:
                self.warn(f"general_settings.{key}", "has no equivalent: left out")

    # --- aliases --------------------------------------------------------------------------------
    def aliases(self, strategy: str, group_aliases: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, targets in self.groups.items():
            out[name] = self._alias(name, targets, strategy)
        if isinstance(group_aliases, dict):
            for name, group in group_aliases.items():
                target = group.get("model") if isinstance(group, dict) else group
                if target in self.groups and name not in out:
                    out[str(name)] = self._alias(str(target), self.groups[str(target)], strategy)
                else:
                    self.warn(f"router_settings.model_group_alias.{name}", f"'{target}' is no model_name here, or "
                              f"'{name}' is one already: left out")
        elif group_aliases is not None:
            self.warn("router_settings.model_group_alias", "is not a mapping: left out")
        return out

    def _alias(self, name: str, targets: list[tuple[str, float | None]], strategy: str) -> Any:
        if len(targets) == 1:
            return targets[0][0]
        spec: dict[str, Any] = {"strategy": strategy, "targets": [t for t, _ in targets]}
        hints = [h for _, h in targets]
        if strategy == "weighted" and all(h is not None for h in hints):
            spec["weights"] = hints
        elif strategy == "weighted" and any(h is not None for h in hints):
            self.warn(f"model_name '{name}'", "only some deployments have a weight, rpm or tpm: drawn evenly")
        return spec


def translate(data: Any) -> Translation:
    """The LiteLLM config ``data`` (parsed YAML) as our config, with the warnings."""
    if not isinstance(data, dict):
        raise ImportProblem("the top level is not a mapping (is this a LiteLLM config.yaml?)")
    sections = {name: data.get(name) for name in SECTIONS}
    for name in ("router_settings", "litellm_settings", "general_settings", "environment_variables"):
        if sections[name] is not None and not isinstance(sections[name], dict):
            raise ImportProblem(f"{name} is not a mapping")
    models = sections["model_list"] or []
    if not isinstance(models, list):
        raise ImportProblem("model_list is not a list")
    b = _Builder()
    for key in sorted(set(data) - set(SECTIONS), key=str):
        b.warn(str(key), "is not a section LiteLLM's proxy config has, nor one the gateway has: left out")
    for i, item in enumerate(models):
        b.deployment(i, item)
    router = sections["router_settings"] or {}
    strategy = b.router(router)
    b.litellm_settings(sections["litellm_settings"] or {})
    b.general_settings(sections["general_settings"] or {})
    names = sorted(sections["environment_variables"] or {})
    if names:
        b.warn("environment_variables", f"put {', '.join(names)} in .env (values are not carried over)")
    config: dict[str, Any] = {"version": "1.0"}
    if b.server:
        config["server"] = b.server
    config["routing"] = b.routing
    config["llm_providers"] = b.providers
    config["model_aliases"] = b.aliases(strategy, router.get("model_group_alias"))
    if b.storage is not None:
        config["storage"] = b.storage
    config["api_keys"] = []
    return Translation(config, b.warnings, b.env)


def render(translation: Translation, source: str) -> str:
    """The config as YAML, after a header that says where it came from and what it reads."""
    reads = ", ".join(translation.env_names) or "no variables of its own"
    header = (f"# Translated from {source} by `python -m gateway import-litellm`.\n"
              + "\n".join(textwrap.wrap(f"It reads from the environment or .env: {reads}.", 96,
                                        initial_indent="# ", subsequent_indent="#   ")) + "\n"
              "# Clients (virtual keys) live in LiteLLM's database, not in its config: add them with\n"
              "# ./virtual-key.sh or the admin API. The master key is GATEWAY_MASTER_KEY in .env.\n")
    return header + yaml.safe_dump(translation.config, sort_keys=False, allow_unicode=True, width=100)


def checked(text: str, translation: Translation) -> None:
    """Load ``text`` as the gateway would, every variable it reads set; ``ConfigError`` if it does not load."""
    environ = {name: "https://placeholder.invalid" for name in translation.env_names}  # a URL where one must be
    build_snapshot(parse_config(text.encode(), "<import-litellm output>", environ), "<import-litellm output>")


def import_text(source_text: str, source: str) -> tuple[str, list[str]]:
    """(config.yaml text, warnings) for a LiteLLM config's text. Raises ``ImportProblem``."""
    try:
        data = yaml.safe_load(source_text)
    except yaml.YAMLError as exc:
        raise ImportProblem(f"not YAML: {exc}") from None
    translation = translate(data)
    text = render(translation, source)
    try:
        checked(text, translation)
    except ConfigError as exc:
        raise ImportProblem(f"the translation does not load as a gateway config:\n{exc.render()}") from None
    return text, translation.warnings
