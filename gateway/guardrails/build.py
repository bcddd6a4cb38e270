"""From ``guardrails:`` to the snapshot's ``Guardrails``, with what is wrong in the names.

Called while the snapshot is built (``config/snapshot.py``): a problem is a path in the file and
a message, which the snapshot turns into a ``file:line`` config error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..core.targets import ProviderSpec
from .base import Detector
from .config import BuiltInGuard, GuardrailsConfig, ModerationGuard, PiiGuard, RegexGuard, SecretsGuard, WebhookGuard
from .custom import RegexDetector
from .engine import CompiledGuard, Guardrails
from .local import LocalRule
from .pii import PiiDetector
from .plugin_guard import plugin_rule
from .remote import ModerationCheck, WebhookCheck
from .secrets import ProviderKeys, SecretsDetector

Problem = tuple[tuple[Any, ...], str]  # (path in the file, message)
BUILT_IN = (PiiGuard, SecretsGuard, RegexGuard, ModerationGuard, WebhookGuard)


def unknown_names(names: Sequence[str], known: Collection[str]) -> list[tuple[int, str]]:
    """(index, message) for each of ``names`` that is not a configured guard."""
    listed = ", ".join(sorted(known)) or "none are configured"
    return [(j, f"guardrail '{name}' is not defined under guardrails.guards (defined: {listed})")
            for j, name in enumerate(names) if name not in known]


def build_guardrails(cfg: GuardrailsConfig, providers: Mapping[str, ProviderSpec],
                     alias_guards: Mapping[str, Sequence[str]]) -> tuple[Guardrails, list[Problem]]:
    """The compiled guards, and the problems of ``guardrails:`` and of the aliases' selections
    (the clients' selections are checked where the clients are built, with ``unknown_names``)."""
    problems: list[Problem] = []
    keys = ProviderKeys(key.secret for spec in providers.values() for key in spec.keys)
    guards: dict[str, CompiledGuard] = {}
    for i, guard in enumerate(cfg.guards):
        here = ("guardrails", "guards", i)
        if isinstance(guard, BUILT_IN):
            problem = _moderation_problem(guard, providers) if isinstance(guard, ModerationGuard) else None
            if problem is not None:
                problems.append((here + ("provider",), problem))
                continue
            compiled = _compile(guard, keys)
        else:  # a plugin type's guard (a LocalGuardBase of its own model)
            rule = plugin_rule(guard)
            if isinstance(rule, str):
                problems.append((here, rule))
                continue
            compiled = CompiledGuard(guard.name, guard.on in ("input", "both"), guard.on in ("output", "both"),
                                     local=rule)
        if compiled.name in guards:
            problems.append((here + ("name",), f"guardrail name '{compiled.name}' is used twice"))
            continue
        guards[compiled.name] = compiled
    problems += [(("guardrails", "default", j), message) for j, message in unknown_names(cfg.default, guards)]
    for alias, names in alias_guards.items():
        problems += [(("model_aliases", alias, "guardrails", j), message)
                     for j, message in unknown_names(names, guards)]
    aliases = {alias: tuple(names) for alias, names in alias_guards.items() if names}
    return Guardrails(guards, tuple(cfg.default), aliases), problems


def _moderation_problem(guard: ModerationGuard, providers: Mapping[str, ProviderSpec]) -> str | None:
    spec = providers.get(guard.provider)
    if spec is None:
        return f"provider '{guard.provider}' is not configured (llm_providers ids: {', '.join(sorted(providers))})"
    if "moderations" not in spec.families:
        return f"provider '{guard.provider}' does not serve moderations (its type or its endpoints)"
    return None


def _compile(guard: BuiltInGuard, keys: ProviderKeys) -> CompiledGuard:
    on_input, on_output = guard.on in ("input", "both"), guard.on in ("output", "both")
    if isinstance(guard, WebhookGuard):
        check: WebhookCheck | ModerationCheck = WebhookCheck(
            guard.name, guard.action, guard.timeout_s, guard.on_error, guard.url, tuple(guard.headers.items()))
        return CompiledGuard(guard.name, on_input, on_output, remote=check)
    if isinstance(guard, ModerationGuard):
        check = ModerationCheck(guard.name, guard.action, guard.timeout_s, guard.on_error, guard.provider,
                                guard.model, tuple(guard.categories), guard.threshold)
        return CompiledGuard(guard.name, on_input, on_output, remote=check)
    rule = LocalRule(guard.name, guard.action, guard.restore, _detector(guard, keys))
    return CompiledGuard(guard.name, on_input, on_output, local=rule)


def _detector(guard: PiiGuard | SecretsGuard | RegexGuard, keys: ProviderKeys) -> Detector:
    if isinstance(guard, PiiGuard):
        return PiiDetector(guard.entities)
    if isinstance(guard, SecretsGuard):
        return SecretsDetector(guard.entities, keys)
    return RegexDetector(((p.name, p.pattern, p.ignore_case) for p in guard.patterns), guard.max_match_chars)
