"""Which provider key holds a stateful object: a file, an assistant, a thread, a message, a run.

An object created through one provider key exists only in that key's account, so every later
call naming it must reach the same key. The surface pipeline remembers ``object id -> Pin`` for
every id a stateful answer carries, and pins later calls naming one of them.

``AffinityStore`` is the seam. ``StoreAffinity`` (what the gateway uses) keeps the pins in the
configured runtime store (``storage``: memory, sqlite, redis, postgres; ``set_pin``/``get_pin``),
so every worker and replica sharing that store sends a call naming an object to the key that
created it, and a pin survives a restart (sqlite, redis, postgres). A small ``MemoryAffinity``
in front of it (an hour per pin) spares the store a read for ids this worker saw lately and a
write for ids a list names again, and keeps the pins this worker saw while the store cannot be
reached (an id unknown then is routed like a new call).
A pin holds the provider id and the key's ``ident`` (provider id + a hash of the secret), never the key.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson

from ..store.base import Pins, StoreDown

log = logging.getLogger("gateway.affinity")

MAX_PINS = 100_000
LOCAL_PINS = 10_000  # StoreAffinity's cache in front of the store: this many pins,
LOCAL_TTL_S = 3600.0  # each for an hour (a list naming them again within it writes nothing)
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


def encode_pin(pin: Pin) -> str:
    return orjson.dumps({"provider": pin.provider_id, "key": pin.key_ident}).decode()


def decode_pin(value: str) -> Pin | None:
    """The pin ``encode_pin`` wrote; None for a value it did not write."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("provider"), str):
        return None
    key = data.get("key")
    return Pin(data["provider"], key if isinstance(key, str) else None)


class StoreAffinity:
    """Pins in the store ``store()`` returns (read at each call: the configured stores are opened
    after the pipeline is built), with a ``MemoryAffinity`` in front (see the module doc).
    ``down()`` says the store is known to be unreachable: the store is then not waited on."""

    def __init__(self, store: Callable[[], Pins], down: Callable[[], bool] = lambda: False,
                 ttl_s: float = PIN_TTL_S, local: MemoryAffinity | None = None):
        self.store = store
        self.down = down
        self.ttl_s = ttl_s
        self.local = local if local is not None else MemoryAffinity(LOCAL_PINS, LOCAL_TTL_S)

    def _lost(self, what: str, exc: StoreDown) -> None:
        log.warning("object pins: the store cannot be reached; this worker's pins only",
                    extra={"op": what, "error": str(exc)})

    async def remember(self, object_id: str, pin: Pin) -> None:
        if await self.local.lookup(object_id) == pin:
            return  # written (or read) within the local pin's life: the store has it
        await self.local.remember(object_id, pin)
        if self.down():
            return
        try:
            await self.store().set_pin(object_id, encode_pin(pin), self.ttl_s)
        except StoreDown as exc:
            self._lost("remember", exc)

    async def lookup(self, object_id: str) -> Pin | None:
        pin = await self.local.lookup(object_id)
        if pin is not None or self.down():
            return pin
        try:
            value = await self.store().get_pin(object_id)
        except StoreDown as exc:
            self._lost("lookup", exc)
            return None
        pin = None if value is None else decode_pin(value)
        if pin is not None:
            await self.local.remember(object_id, pin)
        return pin

    async def forget(self, object_id: str) -> None:
        await self.local.forget(object_id)
        if self.down():
            return
        try:
            await self.store().clear_pin(object_id)
        except StoreDown as exc:
            self._lost("forget", exc)
