"""A plugin type's guard (``guardrails.registry``) as a local rule of the engine.

The plugin's config model is validated by pydantic where the config is read (``config.py``); what
the engine needs of it is checked here, each problem a message for the guard's ``file:line``:
``name`` as the built-in guards' names, ``on``, an ``action`` of a local guard, ``restore`` only
with masked input. The plugin's detector is wrapped so that it answers like a built-in one: no
``tails`` (the stream asks its ``hold``), matches inside the text searched, and entity names as
placeholders spell them (``<DIGITS_1>``: letters, digits and underscores).
"""

from __future__ import annotations

import re
from typing import Any, get_args

from pydantic import BaseModel

from .base import Match, Tails, TextView
from .config import GUARD_NAME, GuardOn
from .local import LocalRule
from .registry import PLUGIN_TYPES

_ACTIONS = ("block", "mask", "log")
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


def plugin_rule(guard: BaseModel) -> tuple[LocalRule, str] | str:
    """The rule a plugin type's guard makes and where it looks (``on``), or what is wrong with it."""
    name, on = getattr(guard, "name", None), getattr(guard, "on", None)
    action, restore = getattr(guard, "action", None), getattr(guard, "restore", False)
    kind = PLUGIN_TYPES[str(getattr(guard, "type", ""))]
    if not isinstance(name, str) or not re.fullmatch(GUARD_NAME, name):
        return f"guard type '{kind.name}': name must match {GUARD_NAME}"
    if on not in get_args(GuardOn):
        return f"guard type '{kind.name}': on must be input, output or both"
    if action not in _ACTIONS:
        return f"guard type '{kind.name}': action must be block, mask or log"
    if restore is not False and (restore is not True or on == "output" or action != "mask"):
        return f"guard type '{kind.name}': restore needs action mask on input"
    try:
        detector = kind.detector(guard)
    except Exception as exc:  # a plugin's bug: one config error, not a traceback
        return f"guard type '{kind.name}': its detector could not be made: {type(exc).__name__}: {exc}"
    if not (callable(getattr(detector, "find", None)) and callable(getattr(detector, "hold", None))):
        return f"guard type '{kind.name}': its detector has no find(view, start) and hold(text)"
    return LocalRule(name, action, restore, PluginDetector(detector)), str(on)
