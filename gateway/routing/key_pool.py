"""Per provider key state: limit windows, cooldowns, quarantine, circuit breaker, headroom.

A key is identified by its provider and a hash of its secret, so its state survives a reload
that reorders or adds keys, and a removed key's state is dropped on the next reload.

What several processes must agree on lives in the store (``storage.runtime``): the key's RPM
and TPM windows (``key:<ident>:req``, ``:tok``) and its marks with expiry: cooldown after a 429
(``:cool``), quarantine after a 401/403 (``:quarantine``) and the open circuit (``:circuit``). A key
cooled by one replica is skipped by every other at once. What only steers this process stays
local: requests in flight (``least_busy``), the failure count towards the breaker, and the
headroom the upstream's ``x-ratelimit-remaining-*`` headers announced.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..config.schema import Routing
from ..core.ratelimit import parse_duration
from ..core.targets import ProviderKey, ProviderSpec
from ..observability import metrics
from ..store.base import Counters
from ..store.values import Ask
from ..store.values import Reservation as WindowReservation

log = logging.getLogger("gateway.keys")
MIN_COOLDOWN_S = 0.5
# The most of a key's tokens_per_min one request may hold while it runs (see ``reservable``).
MAX_WINDOW_SHARE = 0.25
DEFAULT_MAX_COOLDOWN_S = 3600.0  # routing.max_cooldown_s's default
HOUR_S = 3600.0
COUNT_ONLY = 1e18  # a window limit nothing reaches: the window only counts (a key's 429s in the last hour)


@dataclass(slots=True)
class KeyState:
    ident: str
    label: str
    marks: tuple[str, str, str] = ("", "", "")  # the store's cooldown, quarantine and circuit mark names
    failures: int = 0
    circuit_opened: bool = False  # this process opened the circuit (a success clears the mark)
    quarantined_until: float = 0.0  # this process's view, for the log line and metric only
    in_flight: int = 0
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    remaining_until: float = 0.0

    def __post_init__(self) -> None:
        self.marks = (f"key:{self.ident}:cool", f"key:{self.ident}:quarantine", f"key:{self.ident}:circuit")


@dataclass(slots=True)
class Reservation:
    state: KeyState
    tokens: WindowReservation | None = None


@dataclass(frozen=True, slots=True)
class Blocked:
    """The key may not take a request for ``wait_s`` (inf: quarantined); ``by_limit`` is False when
    only its open circuit blocks it."""

    wait_s: float
    by_limit: bool


@dataclass
class KeyPool:
    store: Counters
    clock: Callable[[], float]
    window_s: float = 60.0
    _states: dict[str, KeyState] = field(default_factory=dict)

    def state(self, key: ProviderKey | None, provider: ProviderSpec) -> KeyState:
        ident = key.ident if key is not None else provider.id + ":keyless"
        state = self._states.get(ident)
        if state is None:
            label = key.label if key is not None else f"{provider.id}#0"
            state = self._states[ident] = KeyState(ident, label)
        return state

    def keep_only(self, providers: Mapping[str, ProviderSpec]) -> None:
        """Forget keys that are no longer configured (called after a reload); their windows and
        marks in the store expire by themselves."""
        live = {self.state(k, p).ident for p in providers.values() for k in (p.keys or (None,))}
        for ident in [i for i in self._states if i not in live]:
            del self._states[ident]

    async def blocked(self, state: KeyState, need_tokens: float) -> Blocked | None:
        """Why the key may not take a request now (its marks and announced headroom), or None.
        The windows are not looked at: ``acquire`` checks and counts them in one step."""
        cool, dead, circuit = await self.store.marks_remaining(state.marks)
        if dead > 0:
            return Blocked(math.inf, True)
        wait = max(cool, self._headroom_wait(state, need_tokens))
        if wait > 0 or circuit > 0:
            return Blocked(max(wait, circuit), wait > 0)
        return None

    def _headroom_wait(self, state: KeyState, need_tokens: float) -> float:
        now = self.clock()
        if now >= state.remaining_until:
            return 0.0
        if state.remaining_requests is not None and state.remaining_requests < 1:
            return state.remaining_until - now
        if state.remaining_tokens is not None and state.remaining_tokens < need_tokens:
            return state.remaining_until - now
        return 0.0

    async def acquire(self, state: KeyState, provider: ProviderSpec, tokens: float) -> Reservation | Blocked:
        """Check the key and count the request (and its estimated tokens) in its windows, atomically
        in the store; or why it may not take it. Windows are only written for limits the provider has."""
        blocked = await self.blocked(state, tokens)
        if blocked is not None:
            return blocked
        limits = provider.limits
        asks = []
        if limits.req_per_min is not None:
            asks.append(Ask(f"key:{state.ident}:req", limits.req_per_min, 1, self.window_s))
        if limits.tokens_per_min is not None:
            asks.append(Ask(f"key:{state.ident}:tok", limits.tokens_per_min, reservable(provider, tokens),
                            self.window_s))
        reserved: WindowReservation | None = None
        if asks:  # both windows in one step of the store: both counted, or neither
            batch = await self.store.reserve_all(asks)
            if batch.refused:
                return Blocked(max(batch.results[-1].wait_s, 0.001), True)
            if limits.tokens_per_min is not None:
                reserved = batch.results[-1].reservation
        state.in_flight += 1
        if state.remaining_requests is not None:
            state.remaining_requests -= 1
        return Reservation(state, reserved)

    async def settle(self, reservation: Reservation, real_tokens: float) -> None:
        if reservation.tokens is not None:
            tokens, reservation.tokens = reservation.tokens, None
            await self.store.settle(tokens, real_tokens)

    def release(self, reservation: Reservation) -> None:
        reservation.state.in_flight -= 1

    async def succeeded(self, state: KeyState, headers: Mapping[str, str],
                        max_s: float = DEFAULT_MAX_COOLDOWN_S) -> None:
        state.failures = 0
        if state.circuit_opened:
            state.circuit_opened = False
            await self.store.clear_mark(state.marks[2])
        self.note_headroom(state, headers, max_s)

    def note_headroom(self, state: KeyState, headers: Mapping[str, str],
                      max_s: float = DEFAULT_MAX_COOLDOWN_S) -> None:
        """``x-ratelimit-remaining-*`` lowers what we believe the key has left until its reset
        (at most ``max_s`` from now, whatever the upstream says)."""
        requests = _number(headers.get("x-ratelimit-remaining-requests"))
        tokens = _number(headers.get("x-ratelimit-remaining-tokens"))
        if requests is None and tokens is None:
            return
        parsed = (parse_duration(headers[h]) for h in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
                  if headers.get(h))
        resets = [r for r in parsed if r is not None]
        state.remaining_requests = requests
        state.remaining_tokens = tokens
        state.remaining_until = self.clock() + min(max(resets) if resets else self.window_s, max_s)

    async def rate_limited(self, state: KeyState, retry_after_s: float | None, default_s: float,
                           max_s: float = DEFAULT_MAX_COOLDOWN_S) -> float:
        """Cool the key after a 429 (in the store: every process skips it); the rest (returned) is
        what the upstream asked, or ``default_s``, never more than ``max_s``: a "Retry-After: 1e23"
        or a year-9999 date must not bench it for ever."""
        # "Retry-After: 0" means now: a short rest, not the long default
        if retry_after_s is None or math.isnan(retry_after_s):
            cooldown = default_s
        else:
            cooldown = max(retry_after_s, MIN_COOLDOWN_S)
        cooldown = min(cooldown, max_s)
        await self.store.set_mark(state.marks[0], cooldown)
        await self.store.check_and_reserve(f"key:{state.ident}:429s", COUNT_ONLY, 1, HOUR_S)
        metrics.KEY_COOLDOWNS.labels(state.label.partition("#")[0]).inc()
        return cooldown

    async def rejected(self, state: KeyState, quarantine_s: float) -> None:
        now = self.clock()
        if state.quarantined_until > now:
            return
        state.quarantined_until = now + quarantine_s
        await self.store.set_mark(state.marks[1], quarantine_s)
        metrics.KEY_QUARANTINED.labels(state.label.partition("#")[0]).inc()
        log.warning("provider key quarantined: upstream rejected it",
                    extra={"key": state.label, "quarantine_s": quarantine_s})

    async def failed(self, state: KeyState, routing: Routing) -> None:
        state.failures += 1
        if state.failures >= routing.circuit_breaker_failures:
            state.circuit_opened = True
            state.failures = routing.circuit_breaker_failures - 1  # half-open: one more failure reopens
            await self.store.set_mark(state.marks[2], routing.circuit_breaker_open_s)

    async def status(self) -> list[dict[str, object]]:
        states = list(self._states.values())
        left = await self.store.marks_remaining([m for s in states for m in s.marks])
        return [{"key": s.label, "quarantined": left[3 * i + 1] > 0, "cooling_s": round(left[3 * i], 3),
                 "circuit_open_s": round(left[3 * i + 2], 3), "in_flight": s.in_flight}
                for i, s in enumerate(states)]


    async def rate_limited_1h(self, state: KeyState) -> int:
        """The 429s the key got in the last hour, in every process sharing the store (admin API)."""
        seen = await self.store.check_and_reserve(f"key:{state.ident}:429s", -1, 0, HOUR_S)  # never fits: reads
        return int(seen.used)


def reservable(provider: ProviderSpec, tokens: float) -> float:
    """The tokens one request holds on a key's window while it runs: its estimate (prompt plus
    ``max_tokens``), but at most ``MAX_WINDOW_SHARE`` of the key's ``tokens_per_min``.

    ``max_tokens`` is a ceiling that answers rarely reach; reserving all of a huge one would
    close the key to every other client until the answer ends. Capped, three more such requests
    (or many ordinary ones) still fit beside it, and ``settle`` replaces the reservation with the
    real usage when the answer ends. If the real usage was larger, the window counts it from then
    on, and the provider's own 429 or ``x-ratelimit-remaining-tokens`` steer traffic away meanwhile.
    """
    limit = provider.limits.tokens_per_min
    return tokens if limit is None else min(tokens, limit * MAX_WINDOW_SHARE)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
