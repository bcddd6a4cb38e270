"""Guard types plugins add (entry point group ``gateway.guardrails``; docs/plugins.md).

A plugin guard is a local guard: the guard engine runs its detector over the request's (and the
answer's) texts, and the guard's ``action`` (block, mask or log) applies to what it finds, as for
the built-in pii, secrets and regex guards. ``GuardType.config`` is its model: a subclass of
``guard_base.LocalGuardBase`` (the fields and checks every local guard has: ``name``, ``on``,
``action``, ``restore``) with ``type: Literal[<its name>]`` and its own. ``detector`` makes the
engine's ``Detector`` from a validated config: an object with ``find(view, start)`` (the matches
from ``start`` on, each with start, end and entity) and ``hold(text)`` (from which index a match
may still be growing, for streams).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .guard_base import LocalGuardBase

BUILT_IN_TYPES = ("pii", "secrets", "regex", "moderation", "webhook")


@dataclass(frozen=True)
class GuardType:
    name: str
    config: type[LocalGuardBase]
    detector: Callable[[Any], object]


class NotAGuardType(ValueError):
    """What a plugin offered cannot be a guard type (the message says why)."""


PLUGIN_TYPES: dict[str, GuardType] = {}


def register(kind: GuardType) -> None:
    """Add a plugin's guard type (raises ``NotAGuardType``, nothing added)."""
    if kind.name in BUILT_IN_TYPES or kind.name in PLUGIN_TYPES:
        raise NotAGuardType(f"guard type '{kind.name}' is already defined")
    if not (isinstance(kind.config, type) and issubclass(kind.config, LocalGuardBase)):
        raise NotAGuardType("its config model must subclass gateway.guardrails.guard_base.LocalGuardBase")
    if "type" not in kind.config.model_fields:
        raise NotAGuardType("its config model needs a 'type' field (Literal of its name)")
    if not callable(kind.detector):
        raise NotAGuardType("its detector must be callable")
    PLUGIN_TYPES[kind.name] = kind
