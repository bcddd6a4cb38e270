"""Config items that name their type, where plugins may add types (sinks, guards).

``TypedItems`` is the discriminator of such a list's union: a built-in type goes to its model (by
the union member's tag), a plugin's type to the config model the plugin brings, and any other
``type`` (missing, unknown, or a plugin that failed to load) to one clear error naming the types
there are, or why the plugin is not in use. The tags are what pydantic puts in an error's
location to name the member; the config loader drops them from the paths it reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from .loader import failure


class TypedItems:
    """The tags and validators of one list's union (``what``: "sink", "guard")."""

    def __init__(self, what: str, group: str, built_in: Mapping[str, str],
                 plugin_models: Callable[[], Mapping[str, type[BaseModel]]]):
        self.what = what
        self.group = group  # the plugins' entry point group
        self.built_in = built_in  # type name -> the union member's tag
        self.plugin_models = plugin_models  # the plugins' types now: type name -> config model
        self.plugin_tag = f"Plugin{what.capitalize()}"
        self.unknown_tag = f"Unknown{what.capitalize()}"
        self.tags = frozenset(built_in.values()) | {self.plugin_tag, self.unknown_tag}

    def tag(self, value: Any) -> str:
        """The union member for ``value`` (the discriminator)."""
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        if not isinstance(kind, str):
            return self.unknown_tag
        if kind in self.plugin_models():
            return self.plugin_tag
        return self.built_in.get(kind, self.unknown_tag)

    def by_plugin_model(self, value: Any, handler: Any) -> Any:
        """A plugin type's item, validated by its own model (its errors keep their place in the file)."""
        if isinstance(value, BaseModel):
            return value
        return self.plugin_models()[value["type"]].model_validate(value)

    def unknown(self, value: Any, handler: Any) -> NoReturn:
        """An item whose ``type`` is missing or names no type: one error."""
        kind = value.get("type") if isinstance(value, dict) else None
        why = failure(self.group, kind) if isinstance(kind, str) else None
        if why is not None:
            raise PydanticCustomError("plugin_failed", "{why}", {"why": why})
        names = [*self.built_in, *sorted(self.plugin_models())]
        expected = ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}"
        if not isinstance(value, dict):
            raise PydanticCustomError(f"{self.what}_shape", f"a {self.what} is a mapping with a type ({{expected}})",
                                      {"expected": expected})
        raise PydanticCustomError(f"{self.what}_type", "type must be one of {expected}", {"expected": expected})
