"""Which provider key holds a stateful object: a file, an assistant, a thread, a message, a run.

An object created through one provider key exists only in that key's account, so every later
call naming it must reach the same key. The surface pipeline remembers ``object id -> Pin`` for
every id a stateful answer carries, and pins later calls naming one of them.

``AffinityStore`` is the seam; ``MemoryAffinity`` keeps the pins in this worker's memory,
bounded (least recently used dropped first) and expiring. TODO(store): the async store
(``gateway/store``) offers marks, which hold no value, and no key-value records yet; once it has
``get``/``set`` with a TTL, implement ``AffinityStore`` on it so that pins survive a restart and
are shared by workers and replicas (until then a pin is known only to the worker that saw the
object created or listed; an unknown id is routed like a new call).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

MAX_PINS = 100_000
PIN_TTL_S = 30 * 86400.0  # OpenAI keeps threads 60 days of inactivity, files until deleted: a month is plenty
_OBJECT_ID = re.compile(r"^[A-Za-z0-9_\-]{3,128}$")


@dataclass(frozen=True, slots=True)
class Pin:
    """Where an object lives: a provider and one of its keys (by ``ProviderKey.ident``, never the key)."""

    provider_id: str
    key_ident: str | None  # None: a provider without keys


def is_object_id(value: object) -> bool:
    """Whether ``value`` looks like an object id (``file-abc``, ``asst_abc``, ``thread_abc``)."""
    return isinstance(value, str) and _OBJECT_ID.match(value) is not None


class AffinityStore(Protocol):
    async def remember(self, object_id: str, pin: Pin) -> None: ...

    async def lookup(self, object_id: str) -> Pin | None: ...

    async def forget(self, object_id: str) -> None: ...


class MemoryAffinity:
    """Pins in memory: at most ``max_pins`` (the least recently used go first), each for ``ttl_s``."""

    def __init__(self, max_pins: int = MAX_PINS, ttl_s: float = PIN_TTL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.max_pins = max_pins
        self.ttl_s = ttl_s
        self.clock = clock
        self._pins: OrderedDict[str, tuple[Pin, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pins)

    async def remember(self, object_id: str, pin: Pin) -> None:
        self._pins[object_id] = (pin, self.clock() + self.ttl_s)
        self._pins.move_to_end(object_id)
        while len(self._pins) > self.max_pins:
            self._pins.popitem(last=False)

    async def lookup(self, object_id: str) -> Pin | None:
        found = self._pins.get(object_id)
        if found is None:
            return None
        pin, expires = found
        if expires <= self.clock():
            del self._pins[object_id]
            return None
        self._pins.move_to_end(object_id)
        return pin

    async def forget(self, object_id: str) -> None:
        self._pins.pop(object_id, None)
