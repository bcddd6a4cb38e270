"""Object pins in this process (``MemoryPins``), bounded by count: the least recently set go first."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_PINS = 100_000  # object pins kept at most


class MemoryPins:
    """The ``Pins`` role for one process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._pins: OrderedDict[str, tuple[str, float]] = OrderedDict()  # id -> (value, expires), oldest first

    async def set_pin(self, object_id: str, value: str, ttl_s: float) -> None:
        pins = self._pins
        pins[object_id] = (value, self._clock() + ttl_s)
        pins.move_to_end(object_id)
        while len(pins) > MAX_PINS:
            pins.popitem(last=False)

    async def get_pin(self, object_id: str) -> str | None:
        found = self._pins.get(object_id)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._pins[object_id]
            return None
        return found[0]

    async def clear_pin(self, object_id: str) -> None:
        self._pins.pop(object_id, None)
