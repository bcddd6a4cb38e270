"""Store backends plugins add (entry point group ``gateway.stores``; docs/plugins.md).

A ``StoreType`` names its config model (the fields beside ``type`` in ``storage``, or in its
``runtime`` / ``ledger``), its store class (a ``ComposedStore`` subclass: the capability flags are
read from the class before anything is opened) and ``open``, which connects it. Its role objects
meet the Protocols of ``base.py``, and should pass the contract suites of ``tests/store/``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from .composed import ComposedStore
from .config import BUILT_IN_TYPES, PLUGIN_BACKENDS

# open(options, ledger_flush_s, data_dir): the opened store; raises base.StoreDown when it cannot
Opener = Callable[[BaseModel, float, Path | None], Awaitable[ComposedStore]]


@dataclass(frozen=True)
class StoreType:
    name: str
    config: type[BaseModel]
    store_class: type[ComposedStore]
    open: Opener


class NotAStoreType(ValueError):
    """What a plugin offered cannot be a store backend (the message says why)."""


PLUGIN_TYPES: dict[str, StoreType] = {}


def register(kind: StoreType) -> None:
    """Add a plugin's backend (raises ``NotAStoreType``, nothing added)."""
    if kind.name in BUILT_IN_TYPES or kind.name in PLUGIN_TYPES:
        raise NotAStoreType(f"storage type '{kind.name}' is already defined")
    if not (isinstance(kind.config, type) and issubclass(kind.config, BaseModel)):
        raise NotAStoreType("its config must be a pydantic model class")
    if not (isinstance(kind.store_class, type) and issubclass(kind.store_class, ComposedStore)):
        raise NotAStoreType("its store_class must subclass gateway.store.composed.ComposedStore")
    for flag in ("name", "shared", "durable", "scales_workers", "serves_cache"):
        if not hasattr(kind.store_class, flag):
            raise NotAStoreType(f"its store_class does not set the capability flag '{flag}'")
    PLUGIN_TYPES[kind.name] = kind
    PLUGIN_BACKENDS[kind.name] = kind.config
