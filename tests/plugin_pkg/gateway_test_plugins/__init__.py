"""Test plugins: the ``memory-copy`` store backend (the in-process store under its own name, with an
option of its own), the ``no-digits`` guard type (a detector of runs of digits) and the
``explodes`` sink type (its build fails: the sink shows as failing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.guardrails.guard_base import LocalGuardBase
from gateway.guardrails.registry import GuardType
from gateway.observability.sinks.base import Sink, SinkContext, SinkType
from gateway.observability.sinks.config import SinkConfigBase
from gateway.store.composed import ComposedStore
from gateway.store.memory import AsyncMemoryStore
from gateway.store.plugins import StoreType


class CopyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str = Field(min_length=1)


class MemoryCopyStore(AsyncMemoryStore):
    name = "memory-copy"


async def open_copy(options: BaseModel, ledger_flush_s: float, data_dir: Path | None) -> ComposedStore:
    return MemoryCopyStore(ledger_interval_s=ledger_flush_s)


MEMORY_COPY = StoreType("memory-copy", CopyOptions, MemoryCopyStore, open_copy)


class NoDigitsConfig(LocalGuardBase):
    type: Literal["no-digits"]
    min_run: int = Field(4, ge=1)


@dataclass(frozen=True)
class DigitRun:
    start: int
    end: int
    entity: str = "digits"


class DigitsDetector:
    def __init__(self, min_run: int):
        self.min_run = min_run

    def find(self, view: object, start: int) -> list[DigitRun]:
        text: str = getattr(view, "text", "")
        found, run = [], start
        for i in range(start, len(text) + 1):
            if i == len(text) or not text[i].isdigit():
                if i - run >= self.min_run:
                    found.append(DigitRun(run, i))
                run = i + 1
        return found

    def hold(self, text: str) -> int:
        return len(text.rstrip("0123456789"))


def detector(config: NoDigitsConfig) -> DigitsDetector:
    return DigitsDetector(config.min_run)


NO_DIGITS = GuardType("no-digits", NoDigitsConfig, detector)
NOT_A_TYPE = "a provider type was meant to be here"


class ExplodesConfig(SinkConfigBase):
    type: Literal["explodes"]


def explode(config: ExplodesConfig, context: SinkContext) -> Sink:
    raise RuntimeError("the destination is on fire")


EXPLODES = SinkType("explodes", ExplodesConfig, explode)
