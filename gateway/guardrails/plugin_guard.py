"""A plugin type's guard (``guardrails.registry``) as a local rule of the engine.

The plugin's config model (a ``LocalGuardBase``: the fields and checks of every local guard) is
validated where the config is read (``config.py``); a detector that cannot be made is a problem
for the guard's ``file:line``. The plugin's detector is wrapped so that it answers like a built-in
one: no ``tails`` (the stream asks its ``hold``), matches inside the text searched, and entity
names as placeholders spell them (``<DIGITS_1>``: letters, digits and underscores).
"""

from __future__ import annotations

import re
from typing import Any

from .base import Match, Tails, TextView
from .guard_base import LocalGuardBase
from .local import LocalRule
from .registry import PLUGIN_TYPES

_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]+")


class PluginDetector:
    """A plugin's detector, answering as the engine's ``Detector`` does."""

    __slots__ = ("_inner", "_entities")
    tails: Tails = ()

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._entities: dict[str, str] = {}

    def find(self, view: TextView, start: int) -> list[Match]:
        size = len(view.text)
        found = []
        for m in self._inner.find(view, start):
            begin, end = int(m.start), int(m.end)
            if start <= begin < end <= size:
                found.append(Match(begin, end, self._entity(m.entity)))
        return found

    def hold(self, text: str) -> int:
        held = int(self._inner.hold(text))
        return min(max(held, 0), len(text))

    def _entity(self, entity: object) -> str:
        name = self._entities.get(entity) if isinstance(entity, str) else None
        if name is None:
            name = _NOT_IN_NAME.sub("_", str(entity)).strip("_") or "match"
            name = name if name[0].isalpha() else "m_" + name
            if isinstance(entity, str) and len(self._entities) < 64:
                self._entities[entity] = name
        return name


def plugin_rule(guard: LocalGuardBase) -> LocalRule | str:
    """The rule a plugin type's guard makes, or why its detector cannot be used."""
    kind = PLUGIN_TYPES[str(getattr(guard, "type", ""))]
    try:
        detector = kind.detector(guard)
    except Exception as exc:  # a plugin's bug: one config error, not a traceback
        return f"guard type '{kind.name}': its detector could not be made: {type(exc).__name__}: {exc}"
    if not (callable(getattr(detector, "find", None)) and callable(getattr(detector, "hold", None))):
        return f"guard type '{kind.name}': its detector has no find(view, start) and hold(text)"
    return LocalRule(guard.name, guard.action, guard.restore, PluginDetector(detector))
