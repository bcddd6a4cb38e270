"""The immutable snapshot one request sees: providers with key pools, routes, clients.

``build_snapshot`` turns a validated file into lookup tables and checks cross references.
A snapshot is never changed after it is built; a reload builds a new one and swaps it in.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import orjson

from ..providers.presets import PRESETS, SUPPORTED_PROTOCOLS, api_root, key_env_name
from .loader import ConfigError, ConfigIssue, LoadedConfig, format_path, line_of, load_config
from .schema import AliasSpec, Budget, Limits, Pricing, Routing, Server

MASTER_KEY_ENV = "GATEWAY_MASTER_KEY"


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
    api_version: str | None


@dataclass(frozen=True, slots=True)
class Target:
    provider: ProviderSpec
    model: str

    @property
    def name(self) -> str:
        return f"{self.provider.id}:{self.model}"


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
    warnings: tuple[str, ...] = ()

    @property
    def max_body_bytes(self) -> int:
        return int(self.server.max_body_mb * 1024 * 1024)


def load_snapshot(path: Path, env_file: Path | None) -> Snapshot:
    return build_snapshot(load_config(path, env_file), str(path))


def build_snapshot(loaded: LoadedConfig, filename: str) -> Snapshot:
    cfg, environ, lines = loaded.config, loaded.environ, loaded.lines
    issues: list[ConfigIssue] = []
    warnings: list[str] = []

    def issue(path: tuple, message: str) -> None:
        issues.append(ConfigIssue(format_path(path), message, line_of(lines, path)))

    providers: dict[str, ProviderSpec] = {}
    for i, p in enumerate(cfg.llm_providers):
        here = ("llm_providers", i)
        preset = PRESETS[p.type]
        if p.id in providers:
            issue(here + ("id",), f"duplicate provider id '{p.id}'")
            continue
        if preset.protocol not in SUPPORTED_PROTOCOLS:
            issue(here + ("type",), f"type '{p.type}' is not supported by this version of the gateway")
            continue
        root = api_root(p.type, p.base_url)
        if root is None:
            issue(here + ("base_url",), f"type '{p.type}' needs a base_url")
            continue
        if p.type == "azure" and not p.api_version:
            issue(here + ("api_version",), "type 'azure' needs an api_version, e.g. \"2024-10-21\"")
            continue
        secrets = _provider_secrets(p.api_keys, p.type, environ)
        if not secrets and preset.needs_key:
            source = "api_keys" if p.api_keys is not None else f"the environment ({key_env_name(p.type)}, …)"
            warnings.append(f"llm_providers[{i}] ({p.id}): no API keys found in {source}; "
                            "requests to it will fail until keys are added")
        models = p.models if p.models is not None else ([p.model] if p.model else [])
        providers[p.id] = ProviderSpec(
            id=p.id, type=p.type, protocol=preset.protocol, api_root=root,
            keys=tuple(ProviderKey(p.id, n + 1, s) for n, s in enumerate(secrets)),
            models=frozenset(models), pricing=p.pricing, limits=p.limits, weight=p.weight,
            headers=tuple(p.headers.items()),
            timeout_s=p.timeout_s or cfg.server.request_timeout_s,
            cooldown_s=p.cooldown_s or cfg.routing.cooldown_s,
            stream_usage=preset.stream_usage, needs_key=preset.needs_key, api_version=p.api_version,
        )

    bare: dict[str, list[Target]] = {}
    for spec in providers.values():
        for model in sorted(spec.models):
            bare.setdefault(model, []).append(Target(spec, model))
    bare_models = {m: Route(cfg.routing.strategy, tuple(t), tuple(x.provider.weight for x in t))
                   for m, t in bare.items()}

    aliases: dict[str, Route] = {}
    for name, raw in cfg.model_aliases.items():
        here = ("model_aliases", name)
        spec = raw if isinstance(raw, AliasSpec) else AliasSpec(targets=[raw] if isinstance(raw, str) else raw)
        targets: list[Target] = []
        weights: list[float] = []
        if spec.weights is not None and len(spec.weights) != len(spec.targets):
            issue(here + ("weights",), "needs one weight per target")
        for j, text in enumerate(spec.targets):
            found = _parse_target(text, providers, bare_models)
            if found is None:
                path = here + ("targets", j) if not isinstance(raw, str) else here
                issue(path, f"target '{text}' names no configured provider (use provider_id:model)")
                continue
            targets.extend(found)
            # a bare model may expand to several providers: each gets the target's weight
            given = spec.weights[j] if spec.weights is not None and j < len(spec.weights) else None
            weights.extend(given if given is not None else t.provider.weight for t in found)
        aliases[name] = Route(spec.strategy or cfg.routing.strategy, tuple(targets), tuple(weights))

    clients: dict[bytes, ClientSpec] = {}
    for i, c in enumerate(cfg.api_keys):
        here = ("api_keys", i)
        digest = key_digest(c.key) if c.key is not None else bytes.fromhex(c.key_hash.split(":", 1)[1])
        if digest in clients:
            issue(here, "the same client key is configured twice")
            continue
        allowed = None if "*" in c.allowed_providers else frozenset(c.allowed_providers)
        for name in sorted(allowed or ()):
            if name not in providers:
                warnings.append(f"api_keys[{i}]: allowed_providers names '{name}', which is not configured")
        clients[digest] = ClientSpec(
            id=c.id or f"client-{i + 1}", digest=digest, allowed_providers=allowed,
            allowed_models=None if "*" in c.allowed_models else frozenset(c.allowed_models),
            limits=c.limits, budget=c.budget, admin=c.admin,
        )

    if issues:
        raise ConfigError(filename, issues)

    master = environ.get(MASTER_KEY_ENV) or None
    fingerprint = hashlib.sha256(orjson.dumps(cfg.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS))
    fingerprint.update(master.encode() if master else b"")
    for spec in providers.values():  # keys from the environment are not in the dump above
        for key in spec.keys:
            fingerprint.update(key.ident.encode())
    return Snapshot(
        version=fingerprint.hexdigest()[:12],
        source_path=filename,
        server=cfg.server,
        routing=cfg.routing,
        providers=MappingProxyType(providers),
        aliases=MappingProxyType(aliases),
        bare_models=MappingProxyType(bare_models),
        clients=MappingProxyType(clients),
        master_digest=key_digest(master) if master else None,
        warnings=tuple(warnings),
    )


def _provider_secrets(api_keys: list[str] | None, type_: str, environ: Mapping[str, str]) -> list[str]:
    if api_keys is not None:
        found = [k.strip() for k in api_keys]
    else:
        base = key_env_name(type_)
        pattern = re.compile(rf"^{base}(?:_(\d+))?$")
        numbered = []
        for name, value in environ.items():
            m = pattern.match(name)
            if m:
                numbered.append((int(m.group(1) or 1), value.strip()))
        found = [v for _, v in sorted(numbered)]
    unique: list[str] = []
    for secret in found:
        if secret and secret not in unique:
            unique.append(secret)
    return unique


def _parse_target(text: str, providers: Mapping[str, ProviderSpec],
                  bare_models: Mapping[str, Route]) -> list[Target] | None:
    provider_id, sep, model = text.partition(":")
    if sep and provider_id in providers and model:
        return [Target(providers[provider_id], model)]
    if text in bare_models:
        return list(bare_models[text].targets)
    return None
