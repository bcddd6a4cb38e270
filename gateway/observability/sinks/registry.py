"""The table of sink types: the built-in ``file``, ``webhook`` and ``otlp_logs``, and the ones
plugins add (``register``, once when the process starts, before any config is read).

A built-in type's module is imported when a sink of that type is first built (``otlp_logs``
brings the OpenTelemetry SDK, which a gateway without it never loads).
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Sink, SinkContext, SinkType
from .config import PLUGIN_CONFIGS, FileSinkConfig, OtlpLogsSinkConfig, SinkConfigBase, WebhookSinkConfig


def _lazy(module: str) -> Any:
    def build(config: Any, context: SinkContext) -> Sink:
        built: Sink = importlib.import_module(f"{__package__}.{module}").build(config, context)
        return built

    return build


BUILT_IN: dict[str, SinkType] = {t.name: t for t in (
    SinkType("file", FileSinkConfig, _lazy("file")),
    SinkType("webhook", WebhookSinkConfig, _lazy("webhook")),
    SinkType("otlp_logs", OtlpLogsSinkConfig, _lazy("otlp_logs")),
)}
_PLUGINS: dict[str, SinkType] = {}


class NotASinkType(ValueError):
    """What a plugin offered cannot be a sink type (the message says why)."""


def register(kind: SinkType) -> None:
    """Add a plugin's sink type (raises ``NotASinkType``, nothing added)."""
    if kind.name in BUILT_IN or kind.name in _PLUGINS:
        raise NotASinkType(f"sink type '{kind.name}' is already defined")
    if not (isinstance(kind.config, type) and issubclass(kind.config, SinkConfigBase)):
        raise NotASinkType("its config model must subclass gateway.observability.sinks.config.SinkConfigBase")
    if not callable(kind.build):
        raise NotASinkType("its build must be callable")
    _PLUGINS[kind.name] = kind
    PLUGIN_CONFIGS[kind.name] = kind.config


def sink_type(name: str) -> SinkType:
    return BUILT_IN.get(name) or _PLUGINS[name]
