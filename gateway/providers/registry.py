"""Which adapter module builds upstream requests for a protocol."""

from __future__ import annotations

from types import ModuleType

from . import azure, openai

_BY_PROTOCOL: dict[str, ModuleType] = {"openai": openai, "azure": azure}


def adapter_for(protocol: str) -> ModuleType:
    return _BY_PROTOCOL[protocol]
