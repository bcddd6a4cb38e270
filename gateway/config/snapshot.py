"""The immutable snapshot one request sees: providers with key pools, routes, clients.

``build_snapshot`` turns a validated file into lookup tables and checks cross references.
A snapshot is never changed after it is built; a reload builds a new one and swaps it in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import orjson

from ..core.mcp import McpServerSpec
from ..core.policy import BUDGET_PROFILES, Budget, CacheConfig
from ..core.pricing import Pricing
from ..core.targets import ClientSpec, ProviderKey, ProviderSpec, Route, Target, key_digest
from ..guardrails.build import build_guardrails, unknown_names
from ..guardrails.engine import Guardrails
from ..observability.otlp import OtlpSettings, otlp_settings
from ..observability.sinks.base import OtlpTarget, SinkContext
from ..observability.sinks.config import OtlpLogsSinkConfig
from ..providers.registry import api_root, entry
from .loader import ConfigError, ConfigIssue, LoadedConfig, Path_, format_path, line_of, load_config
from .mcp_snapshot import build_servers, client_access
from .observability_schema import ObservabilityConfig
from .schema import (
    AliasSpec,
    Client,
    GatewayConfig,
    MetricsConfig,
    ProviderConfig,
    Routing,
    Server,
    check_client_key,
)

MASTER_KEY_ENV = "GATEWAY_MASTER_KEY"
BUDGET_PROFILE_ENV = "BUDGET_PROFILE"


@dataclass(frozen=True)
class Snapshot:
    version: str
    source_path: str
    server: Server
    routing: Routing
    providers: Mapping[str, ProviderSpec]
    aliases: Mapping[str, Route]
    bare_models: Mapping[str, Route]
    clients: Mapping[bytes, ClientSpec]
    master_digest: bytes | None
    # the ids of config.yaml's clients: they shadow a client of the store's directory with the same id
    client_ids: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # the Prometheus namespace
    # the response cache of each alias that has one (``model_aliases.<name>.cache``)
    alias_cache: Mapping[str, CacheConfig] = field(default_factory=lambda: MappingProxyType({}))
    # BUDGET_PROFILE (environment or .env): its name, and the budget of every client without its own
    budget_profile: str = "unlimited"
    default_budget: Budget = field(default_factory=Budget)
    mcp_servers: Mapping[str, McpServerSpec] = field(default_factory=lambda: MappingProxyType({}))
    # the guards and who passes which: ``guardrails.guard_for(alias, client, remote)``
    guardrails: Guardrails = field(default_factory=Guardrails)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)  # capture_content, otlp
    # where traces go (the config's ``observability.otlp`` or the OTEL_* environment); None: no tracing
    otlp: OtlpSettings | None = None
    sink_context: SinkContext = field(default_factory=SinkContext)  # what the sinks are told

    @property
    def max_body_bytes(self) -> int:
        return int(self.server.max_body_mb * 1024 * 1024)


def load_snapshot(path: Path, env_file: Path | None) -> Snapshot:
    return build_snapshot(load_config(path, env_file), str(path))


class _Findings:
    """The issues and warnings found while building, each issue with its path and line."""

    def __init__(self, lines: dict[Path_, int]):
        self.lines = lines
        self.issues: list[ConfigIssue] = []
        self.warnings: list[str] = []

    def issue(self, path: Path_, message: str) -> None:
        self.issues.append(ConfigIssue(format_path(path), message, line_of(self.lines, path)))


def build_snapshot(loaded: LoadedConfig, filename: str) -> Snapshot:
    cfg, environ = loaded.config, loaded.environ
    found = _Findings(loaded.lines)
    providers = _build_providers(cfg, environ, found)
    bare_models = _bare_models(providers, cfg.routing.strategy)
    aliases = _build_aliases(cfg, providers, bare_models, found)
    mcp_servers, problems = build_servers(cfg.mcp_servers)
    for path, message in problems:
        found.issue(path, message)
    guardrails = _build_guardrails(cfg, providers, found)
    clients = _build_clients(cfg, providers, mcp_servers, found, guardrails)
    master = environ.get(MASTER_KEY_ENV) or None
    if master is not None:
        found.issues.extend(_master_key_issues(master))
    profile = _budget_profile(environ, found)
    otlp = _otlp(cfg.observability, environ, found)
    sink_context = _sink_context(cfg.observability, otlp, found)
    if found.issues:
        raise ConfigError(filename, found.issues)
    return Snapshot(
        version=_fingerprint(cfg, master, providers, profile),
        source_path=filename,
        server=cfg.server,
        routing=cfg.routing,
        providers=MappingProxyType(providers),
        aliases=MappingProxyType(aliases),
        bare_models=MappingProxyType(bare_models),
        clients=MappingProxyType(clients),
        master_digest=key_digest(master) if master else None,
        client_ids=frozenset(c.id for c in clients.values()),
        warnings=tuple(found.warnings),
        metrics=cfg.metrics,
        alias_cache=MappingProxyType({name: alias.cache for name, alias in cfg.model_aliases.items()
                                      if isinstance(alias, AliasSpec) and alias.cache is not None}),
        budget_profile=profile,
        default_budget=BUDGET_PROFILES[profile],
        mcp_servers=MappingProxyType(mcp_servers),
        guardrails=guardrails,
        observability=cfg.observability,
        otlp=otlp,
        sink_context=sink_context,
    )


def _budget_profile(environ: Mapping[str, str], found: _Findings) -> str:
    """``BUDGET_PROFILE``'s name (unset or empty: unlimited); another value is an issue."""
    name = environ.get(BUDGET_PROFILE_ENV, "").strip().lower() or "unlimited"
    if name not in BUDGET_PROFILES:
        found.issues.append(ConfigIssue(f"{BUDGET_PROFILE_ENV} (environment or .env)",
                                        "must be one of " + ", ".join(BUDGET_PROFILES)))
        return "unlimited"
    return name


def _otlp(observability: ObservabilityConfig, environ: Mapping[str, str], found: _Findings) -> OtlpSettings | None:
    """The trace export the config or the environment asks for (``observability/otlp.py``)."""
    otlp = observability.otlp
    try:
        if otlp is None:
            return otlp_settings(None, {}, None, environ)
        return otlp_settings(otlp.endpoint, otlp.headers, otlp.service_name, environ)
    except ValueError as exc:
        found.issue(("observability", "otlp"), str(exc))
        return None


def _sink_context(observability: ObservabilityConfig, otlp: OtlpSettings | None, found: _Findings) -> SinkContext:
    """What the sinks are told (the collector traces go to, ``observability.otlp`` or the OTEL_*
    environment); an ``otlp_logs`` sink with no collector to send to is an issue."""
    base = None if otlp is None else otlp.endpoint.removesuffix("/v1/traces")  # the collector's base URL
    target = None if otlp is None or base is None else OtlpTarget(base, otlp.headers, otlp.service_name)
    for i, sink in enumerate(observability.sinks):
        if isinstance(sink, OtlpLogsSinkConfig) and sink.endpoint is None and target is None:
            found.issue(("observability", "sinks", i, "type"), "an otlp_logs sink sends to the collector of "
                        "observability.otlp, which is not set (or give the sink an endpoint)")
    return SinkContext(target)


def _fingerprint(cfg: GatewayConfig, master: str | None, providers: Mapping[str, ProviderSpec],
                 budget_profile: str) -> str:
    fingerprint = hashlib.sha256(orjson.dumps(cfg.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS))
    fingerprint.update(master.encode() if master else b"")
    if budget_profile != "unlimited":  # a new BUDGET_PROFILE in .env is a new snapshot
        fingerprint.update(b"\0budget-profile:" + budget_profile.encode())
    for spec in providers.values():  # keys from the environment are not in the dump above
        for key in spec.keys:
            fingerprint.update(key.ident.encode())
    return fingerprint.hexdigest()[:12]


def _provider_problem(p: ProviderConfig) -> tuple[str, str] | None:
    """(field, message) if this provider cannot be built."""
    if entry(p.type).adapter is None:
        return "type", f"type '{p.type}' is not supported by this version of the gateway"
    if api_root(p.type, p.base_url) is None:
        return "base_url", f"type '{p.type}' needs a base_url"
    problems = p.problems()
    return problems[0] if problems else None


def _build_providers(cfg: GatewayConfig, environ: Mapping[str, str], found: _Findings) -> dict[str, ProviderSpec]:
    providers: dict[str, ProviderSpec] = {}
    for i, p in enumerate(cfg.llm_providers):
        here: Path_ = ("llm_providers", i)
        if p.id in providers:
            found.issue(here + ("id",), f"duplicate provider id '{p.id}'")
            continue
        problem = _provider_problem(p)
        if problem is not None:
            found.issue(here + (problem[0],), problem[1])
            continue
        kind = entry(p.type)
        env_names = p.key_env_names() or kind.key_envs
        if MASTER_KEY_ENV in env_names:
            found.issue(here + ("api_keys_env",), f"{MASTER_KEY_ENV} is the gateway's own key; it is never sent "
                        "to a provider")
            continue
        secrets = _provider_secrets(p.api_keys, env_names, environ)
        if not secrets and kind.needs_key:
            found.warnings.append(f"llm_providers[{i}] ({p.id}): no API keys found in {_key_source(p, env_names)}; "
                                  "requests to it will fail until keys are added")
        models, prices = _model_prices(p, here, found)
        providers[p.id] = ProviderSpec(
            id=p.id, type=p.type, protocol=kind.protocol, api_root=api_root(p.type, p.base_url) or "",
            keys=tuple(ProviderKey(p.id, n + 1, s) for n, s in enumerate(secrets)),
            models=frozenset(models), pricing=Pricing(**p.pricing.model_dump(exclude=set(p.pricing.per_model()))),
            model_pricing=MappingProxyType(prices), limits=p.limits, weight=p.weight,
            headers=tuple(p.headers.items()),
            timeout_s=p.timeout_s or cfg.server.request_timeout_s,
            cooldown_s=p.cooldown_s or cfg.routing.cooldown_s,
            stream_usage=kind.stream_usage, needs_key=kind.needs_key, api_version=p.protocol_version(),
            families=kind.families & frozenset(p.endpoints) if p.endpoints is not None else kind.families,
            config=p if kind.config is not None else None,
        )
    return providers


def _model_prices(p: ProviderConfig, here: Path_, found: _Findings) -> tuple[list[str], dict[str, Pricing]]:
    """The models a provider lists, and the ones priced apart from its default.

    A model priced twice (in ``models`` and in the ``pricing`` map, or in two entries) is an issue;
    a price for a model the provider does not list is a warning (likely a misspelt name).
    """
    names: list[str] = [p.model] if p.model else []
    prices: dict[str, Pricing] = {}
    for j, item in enumerate(p.models or ()):
        names.append(item.name)
        if item.pricing is None:
            continue
        if item.name in prices:
            found.issue(here + ("models", j, "pricing"), f"model '{item.name}' is priced twice")
        prices[item.name] = item.pricing
    for name, price in p.pricing.per_model().items():
        if name in prices:
            found.issue(here + ("pricing", name), f"model '{name}' is priced twice (here and in 'models')")
        prices[name] = price
    for name in prices:
        if names and name not in names:
            found.warnings.append(f"{format_path(here)} ({p.id}): pricing names model '{name}', which is not in "
                                  "its models (a typo?); it applies to requests for that model")
    return names, prices


def _bare_models(providers: Mapping[str, ProviderSpec], strategy: str) -> dict[str, Route]:
    bare: dict[str, list[Target]] = {}
    for spec in providers.values():
        for model in sorted(spec.models):
            bare.setdefault(model, []).append(Target(spec, model))
    return {m: Route(strategy, tuple(t), tuple(x.provider.weight for x in t)) for m, t in bare.items()}


def _build_aliases(cfg: GatewayConfig, providers: Mapping[str, ProviderSpec], bare_models: Mapping[str, Route],
                   found: _Findings) -> dict[str, Route]:
    aliases: dict[str, Route] = {}
    for name, raw in cfg.model_aliases.items():
        here: Path_ = ("model_aliases", name)
        alias = raw if isinstance(raw, AliasSpec) else AliasSpec(targets=[raw] if isinstance(raw, str) else raw)
        targets: list[Target] = []
        weights: list[float] = []
        if alias.weights is not None and len(alias.weights) != len(alias.targets):
            found.issue(here + ("weights",), "needs one weight per target")
        for j, text in enumerate(alias.targets):
            matched = _parse_target(text, providers, bare_models)
            if matched is None:
                path = here + ("targets", j) if not isinstance(raw, str) else here
                found.issue(path, f"target '{text}' names no configured provider (use provider_id:model)")
                continue
            targets.extend(matched)
            # a bare model may expand to several providers: each gets the target's weight
            given = alias.weights[j] if alias.weights is not None and j < len(alias.weights) else None
            weights.extend(given if given is not None else t.provider.weight for t in matched)
        aliases[name] = Route(alias.strategy or cfg.routing.strategy, tuple(targets), tuple(weights))
    return aliases


def _build_guardrails(cfg: GatewayConfig, providers: Mapping[str, ProviderSpec], found: _Findings) -> Guardrails:
    alias_guards = {name: alias.guardrails for name, alias in cfg.model_aliases.items() if isinstance(alias, AliasSpec)}
    guardrails, problems = build_guardrails(cfg.guardrails, providers, alias_guards)
    for path, message in problems:
        found.issue(path, message)
    return guardrails


def _build_clients(cfg: GatewayConfig, providers: Mapping[str, ProviderSpec],
                   mcp_servers: Mapping[str, McpServerSpec], found: _Findings,
                   guardrails: Guardrails) -> dict[bytes, ClientSpec]:
    clients: dict[bytes, ClientSpec] = {}
    for i, c in enumerate(cfg.api_keys):
        digest = _client_digest(c)
        if digest in clients:
            found.issue(("api_keys", i), "the same client key is configured twice")
            continue
        allowed = None if "*" in c.allowed_providers else frozenset(c.allowed_providers)
        for name in sorted(allowed or ()):
            if name not in providers:
                found.warnings.append(f"api_keys[{i}]: allowed_providers names '{name}', which is not configured")
        access, warnings = client_access(c.mcp, mcp_servers, f"api_keys[{i}]")
        found.warnings.extend(warnings)
        for j, message in unknown_names(c.guardrails, guardrails.guards):
            found.issue(("api_keys", i, "guardrails", j), message)
        clients[digest] = ClientSpec(
            id=c.id or f"client-{i + 1}", digest=digest, allowed_providers=allowed,
            allowed_models=None if "*" in c.allowed_models else frozenset(c.allowed_models),
            limits=c.limits, budget=c.budget, admin=c.admin, cache=c.cache, mcp=access,
            tool_calls_per_min=c.limits.tool_calls_per_min, guardrails=tuple(c.guardrails),
        )
    return clients


def _client_digest(client: Client) -> bytes:
    if client.key is not None:
        return key_digest(client.key)
    assert client.key_hash is not None  # the schema requires exactly one of the two
    return bytes.fromhex(client.key_hash.split(":", 1)[1])


def _master_key_issues(master: str) -> list[ConfigIssue]:
    try:
        check_client_key(master)
    except ValueError as exc:
        return [ConfigIssue(f"{MASTER_KEY_ENV} (environment or .env)", str(exc))]
    return []


def _key_source(p: ProviderConfig, env_names: tuple[str, ...]) -> str:
    """Where a provider's keys come from, for an operator (names only, never values)."""
    if p.api_keys is not None:
        return "api_keys"
    return "the environment or .env (" + ", ".join(f"{name}, {name}_2, …" for name in env_names) + ")"


def _provider_secrets(api_keys: list[str] | None, env_names: tuple[str, ...],
                      environ: Mapping[str, str]) -> list[str]:
    """The configured keys, else each of ``env_names`` with its numbered siblings (``X``, ``X_2``, …):
    ``api_keys_env`` when the provider names variables, else its type's (``GEMINI_API_KEY``, …)."""
    if api_keys is not None:
        found = [k.strip() for k in api_keys]
    else:
        found = []
        for base in env_names:
            found += _numbered_values(base, environ)
    unique: list[str] = []
    for secret in found:
        if secret and secret not in unique:
            unique.append(secret)
    return unique


def _numbered_values(base: str, environ: Mapping[str, str]) -> list[str]:
    pattern = re.compile(rf"^{re.escape(base)}(?:_(\d+))?$")
    numbered = []
    for name, value in environ.items():
        m = pattern.match(name)
        if m:
            numbered.append((int(m.group(1) or 1), value.strip()))
    return [v for _, v in sorted(numbered)]


def _parse_target(text: str, providers: Mapping[str, ProviderSpec],
                  bare_models: Mapping[str, Route]) -> list[Target] | None:
    provider_id, sep, model = text.partition(":")
    if sep and provider_id in providers and model:
        return [Target(providers[provider_id], model)]
    if text in bare_models:
        return list(bare_models[text].targets)
    return None
