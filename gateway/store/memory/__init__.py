"""The in-process store (``AsyncMemoryStore``): every role in this process's memory, for tests and
for a single worker's hot counters. Nothing survives a restart; nothing is shared."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..composed import ComposedStore
from .counters import MemoryCounters
from .directory import MemoryDirectory
from .ledger import MemoryLedger
from .pins import MemoryPins


class AsyncMemoryStore(ComposedStore):
    """Every role for one process; each call runs to the end without awaiting, so it is atomic on
    the event loop."""

    name = "memory"
    shared = False
    durable = False
    scales_workers = False
    serves_cache = False
    counters: MemoryCounters  # the role objects, by their own types (tests look inside them)
    pins: MemoryPins
    directory: MemoryDirectory
    ledger: MemoryLedger

    def __init__(self, clock: Callable[[], float] = time.time, ledger_interval_s: float = 0.5) -> None:
        directory = MemoryDirectory(clock)
        super().__init__(MemoryCounters(clock), MemoryPins(clock), directory,
                         MemoryLedger(directory, ledger_interval_s))
