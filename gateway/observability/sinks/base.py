"""The contract of a sink type, the same for the built-in ones and a plugin's.

A sink type (``SinkType``) is a name, a config model (a ``SinkConfigBase`` subclass with
``type: Literal[name]``) and ``build``, which makes a ``Sink`` from a validated config. The hub
(``hub.py``) holds the sinks of the config in force and calls nothing but the ``Sink`` methods.
Most sinks subclass ``batch.BatchSink`` and write one method, ``deliver`` (docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import SinkConfigBase
from .record import AccessRecord


class Sink(Protocol):
    """One destination of access records.

    ``put`` is called on the request path: it never waits and never raises (a record it cannot keep
    is dropped and counted). ``start`` begins delivering on the running event loop; ``predecessor``
    is the sink of the same name this one replaces on a reload: it is closed first and what it
    could not deliver comes first here. ``close`` stops taking records, delivers what waits within
    ``timeout_s`` and returns what it could not. ``status`` is what readiness and the dashboard show
    (never a URL's credentials or a header's value).
    """

    name: str
    type: str

    def put(self, record: AccessRecord) -> None: ...

    def start(self, predecessor: Sink | None = None) -> None: ...

    async def close(self, timeout_s: float) -> list[AccessRecord]: ...

    def status(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class OtlpTarget:
    """Where OTLP goes when traces are exported (``observability.otlp``): the collector's base URL."""

    endpoint: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    service_name: str = "llm-gateway"


@dataclass(frozen=True)
class SinkContext:
    """What the gateway tells a sink it builds besides its own config."""

    otlp: OtlpTarget | None = None


@dataclass(frozen=True)
class SinkType:
    """A sink type: what an entry point of ``gateway.sinks`` names (its name is the entry point's)."""

    name: str
    config: type[SinkConfigBase]
    build: Callable[[Any, SinkContext], Sink]


class SinkUnusable(Exception):
    """A sink cannot be made from its config (the message says why, for readiness and the log)."""
