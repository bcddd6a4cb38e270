"""Put each plugin where its group's types live, once per process, before any config is read.

``install`` is called by the entry points of the gateway (``python -m gateway ...`` and the ASGI
app factory). Each entry point must resolve to its group's type, named like the entry point:

    gateway.providers   providers.registry.ProviderType   (with its config model and adapter)
    gateway.guardrails  guardrails.registry.GuardType
    gateway.sinks       observability.sinks.base.SinkType
    gateway.stores      store.plugins.StoreType

One that does not, or whose table refuses it, is kept as failed with one line saying why, like
one that failed to import; ``report`` logs one error line for each.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..config.schema import ProviderConfigBase
from ..guardrails.registry import GuardType
from ..guardrails.registry import register as register_guard
from ..observability.sinks.base import SinkType
from ..observability.sinks.registry import register as register_sink
from ..providers.registry import ProviderType
from ..providers.registry import register as register_provider
from ..store.plugins import StoreType
from ..store.plugins import register as register_store
from .loader import GUARDRAILS, PROVIDERS, SINKS, STORES, Plugin, discover, one_line, refuse

log = logging.getLogger("gateway.plugins")
_done = False
_lock = threading.Lock()


def _provider(value: object) -> None:
    assert isinstance(value, ProviderType)
    if value.config is not None and not (isinstance(value.config, type)
                                         and issubclass(value.config, ProviderConfigBase)):
        raise ValueError("its config model must subclass gateway.config.schema.ProviderConfigBase")
    register_provider(value)


def _guard(value: object) -> None:
    assert isinstance(value, GuardType)
    register_guard(value)


def _sink(value: object) -> None:
    assert isinstance(value, SinkType)
    register_sink(value)


def _store(value: object) -> None:
    assert isinstance(value, StoreType)
    register_store(value)


_GROUPS: dict[str, tuple[type, str, Callable[[object], None]]] = {
    PROVIDERS: (ProviderType, "gateway.providers.registry.ProviderType", _provider),
    GUARDRAILS: (GuardType, "gateway.guardrails.registry.GuardType", _guard),
    SINKS: (SinkType, "gateway.observability.sinks.base.SinkType", _sink),
    STORES: (StoreType, "gateway.store.plugins.StoreType", _store),
}


def _why_not(plugin: Plugin) -> str | None:
    """Register a loaded plugin; why it cannot be used, or None."""
    kind, type_name, add = _GROUPS[plugin.group]
    value = plugin.value
    if not isinstance(value, kind):
        return f"it names a {type(value).__name__}, not a {type_name}"
    name = getattr(value, "name", None)
    if name != plugin.name:
        return f"its type is named {name!r}, not {plugin.name!r} like its entry point"
    try:
        add(value)
    except Exception as exc:  # the table's refusal (or a plugin object that breaks when looked at)
        return f"not usable: {exc}" if isinstance(exc, ValueError) else f"not usable: {one_line(exc)}"
    return None


def install() -> list[Plugin]:
    """Load and register every plugin (the first call; later ones answer the same); each plugin,
    loaded or with why not."""
    global _done
    with _lock:
        if not _done:
            _done = True
            for plugin in discover():
                if plugin.loaded:
                    why = _why_not(plugin)
                    if why is not None:
                        refuse(plugin, why)
    return discover()


def report(plugins: list[Plugin]) -> None:
    """One log line for each plugin not in use, one for those in use."""
    for plugin in plugins:
        if not plugin.loaded:
            log.error(plugin.problem(),
                      extra={"plugin": plugin.name, "group": plugin.group, "package": plugin.package})
    used = [f"{p.group.rpartition('.')[2]}:{p.name}" for p in plugins if p.loaded]
    if used:
        log.info("plugins in use", extra={"plugins": used})
