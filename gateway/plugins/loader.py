"""Find the gateway's entry points and import them, once per process.

Each of ``GROUPS`` names what its entry points resolve to (docs/plugins.md); the entry point's
name is the type name config.yaml uses. An entry point that fails to import is kept with one line
saying why (its exception's type and first line, never a traceback), so the start-up log and a
config naming its type can both name it. This module imports nothing else of the gateway's: the
config schema asks it why a plugin type is missing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from importlib.metadata import EntryPoint, entry_points

PROVIDERS = "gateway.providers"
GUARDRAILS = "gateway.guardrails"
SINKS = "gateway.sinks"
STORES = "gateway.stores"
GROUPS = (PROVIDERS, GUARDRAILS, SINKS, STORES)
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Plugin:
    """One entry point: where it comes from, and what it resolved to or why it did not."""

    group: str
    name: str
    package: str  # the distribution that declares it ("" when unknown)
    version: str
    value: object | None = None
    error: str | None = None  # one line: why it is not in use

    @property
    def loaded(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """``plugin 'echo' (gateway.providers, from gateway-plugin-echo 0.1.0)``: for log lines and errors."""
        origin = f", from {self.package} {self.version}" if self.package else ""
        return f"plugin '{self.name}' ({self.group}{origin})"

    def problem(self) -> str:
        """The one line that says a plugin is not in use, and why (start-up log, config errors)."""
        return f"{self.describe()} is installed but not in use: {self.error}"


_found: dict[tuple[str, str], Plugin] | None = None
_lock = threading.Lock()


def one_line(exc: BaseException) -> str:
    """``ModuleNotFoundError: No module named 'x'``: an exception as one bounded line."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line[:MAX_ERROR_CHARS]


def _load(group: str, point: EntryPoint) -> Plugin:
    dist = point.dist
    package, version = (dist.name, dist.version) if dist is not None else ("", "")
    try:
        value = point.load()
    except Exception as exc:  # any failure of a foreign import is that plugin's, reported as one line
        return Plugin(group, point.name, package, version, error=f"failed to import: {one_line(exc)}")
    return Plugin(group, point.name, package, version, value=value)


def discover() -> list[Plugin]:
    """Every entry point of ``GROUPS``, imported (the first call does it; later calls answer the same)."""
    global _found
    with _lock:
        if _found is None:
            found: dict[tuple[str, str], Plugin] = {}
            for group in GROUPS:
                for point in sorted(entry_points(group=group), key=lambda p: p.name):
                    first = found.get((group, point.name))
                    if first is None:
                        found[(group, point.name)] = _load(group, point)
                        continue
                    # two packages declare one name: the second is listed, refused, never imported
                    package, version = (point.dist.name, point.dist.version) if point.dist else ("", "")
                    found[(group, f"{point.name} ({package})")] = Plugin(
                        group, point.name, package, version,
                        error=f"the name is already taken by {first.package or 'another package'}")
            _found = found
        return list(_found.values())


def refuse(plugin: Plugin, reason: str) -> Plugin:
    """Mark a loaded plugin unusable (what it names is not what its group takes); the refused copy."""
    refused = replace(plugin, value=None, error=reason[:MAX_ERROR_CHARS])
    with _lock:
        if _found is not None and _found.get((plugin.group, plugin.name)) is plugin:
            _found[(plugin.group, plugin.name)] = refused
    return refused


def failure(group: str, name: str) -> str | None:
    """Why the plugin named ``name`` in ``group`` is not in use (None: no such plugin failed, or none
    were looked for in this process): the text a config error naming its type gives."""
    plugin = _found.get((group, name)) if _found is not None else None
    if plugin is None or plugin.loaded:
        return None
    return plugin.problem()
