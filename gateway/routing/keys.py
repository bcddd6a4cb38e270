"""Per provider key state: limit windows, cooldowns, quarantine, circuit breaker, headroom.

A key is identified by its provider and a hash of its secret, so its state survives a reload
that reorders or adds keys, and a removed key's state is dropped on the next reload.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..config.schema import Routing
from ..config.snapshot import ProviderKey, ProviderSpec
from ..observability import metrics
from ..providers.base import parse_duration
from ..store.memory import MemoryStore, SlidingWindow, WindowEntry

log = logging.getLogger("gateway.keys")
MIN_COOLDOWN_S = 0.5
# The most of a key's tokens_per_min one request may hold while it runs (see ``reservable``).
MAX_WINDOW_SHARE = 0.25
DEFAULT_MAX_COOLDOWN_S = 3600.0  # routing.max_cooldown_s's default


@dataclass(slots=True)
class KeyState:
    ident: str
    label: str
    requests: SlidingWindow
    tokens: SlidingWindow
    cooldown_until: float = 0.0
    dead: bool = False
    dead_until: float = 0.0
    failures: int = 0
    circuit_open_until: float = 0.0
    in_flight: int = 0
    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    remaining_until: float = 0.0


@dataclass(slots=True)
class Reservation:
    state: KeyState
    tokens: WindowEntry | None = None


@dataclass
class KeyBoard:
    store: MemoryStore
    clock: Callable[[], float]
    window_s: float = 60.0
    _states: dict[str, KeyState] = field(default_factory=dict)

    def state(self, key: ProviderKey | None, provider: ProviderSpec) -> KeyState:
        ident = key.ident if key is not None else provider.id + ":keyless"
        state = self._states.get(ident)
        if state is None:
            label = key.label if key is not None else f"{provider.id}#0"
            state = KeyState(ident, label, self.store.window(ident + ":req"), self.store.window(ident + ":tok"))
            self._states[ident] = state
        return state

    def keep_only(self, providers: Mapping[str, ProviderSpec]) -> None:
        """Forget keys that are no longer configured (called after a reload)."""
        live = {self.state(k, p).ident for p in providers.values() for k in (p.keys or (None,))}
        for ident in [i for i in self._states if i not in live]:
            del self._states[ident]
            self.store.drop_window(ident + ":req")
            self.store.drop_window(ident + ":tok")

    def wait_s(self, state: KeyState, provider: ProviderSpec, need_tokens: float) -> float:
        """0 when the key may take a request now; else seconds until it may (inf if quarantined)."""
        now = self.clock()
        if state.dead:
            if now < state.dead_until:
                return math.inf
            state.dead = False  # quarantine over: the next request tries it again
        wait = max(0.0, state.cooldown_until - now, state.circuit_open_until - now)
        if now < state.remaining_until:
            if state.remaining_requests is not None and state.remaining_requests < 1:
                wait = max(wait, state.remaining_until - now)
            if state.remaining_tokens is not None and state.remaining_tokens < need_tokens:
                wait = max(wait, state.remaining_until - now)
        limits = provider.limits
        if limits.req_per_min is not None:
            wait = max(wait, state.requests.wait_until_fits(now, self.window_s, limits.req_per_min, 1, True))
        if limits.tokens_per_min is not None:
            need = reservable(provider, need_tokens)
            wait = max(wait, state.tokens.wait_until_fits(now, self.window_s, limits.tokens_per_min, need, False))
        return wait

    def circuit_open(self, state: KeyState) -> bool:
        """True while repeated failures keep the key out of turn."""
        return state.circuit_open_until > self.clock()

    def reserve(self, state: KeyState, provider: ProviderSpec, tokens: float) -> Reservation:
        """Count a request (and its estimated tokens) against the key as it is sent.

        Windows are only written for limits the provider has: nothing else reads or expires
        them, so a key without limits would otherwise grow a log for ever.
        """
        now = self.clock()
        limits = provider.limits
        if limits.req_per_min is not None:
            state.requests.add(now)
        state.in_flight += 1
        if state.remaining_requests is not None:
            state.remaining_requests -= 1
        entry = state.tokens.add(now, reservable(provider, tokens)) if limits.tokens_per_min is not None else None
        return Reservation(state, entry)

    def settle(self, reservation: Reservation, real_tokens: float) -> None:
        if reservation.tokens is not None:
            reservation.state.tokens.adjust(reservation.tokens, real_tokens - reservation.tokens.amount)
            reservation.tokens = None

    def release(self, reservation: Reservation) -> None:
        reservation.state.in_flight -= 1

    def succeeded(self, state: KeyState, headers: Mapping[str, str], max_s: float = DEFAULT_MAX_COOLDOWN_S) -> None:
        state.failures = 0
        state.circuit_open_until = 0.0
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

    def rate_limited(self, state: KeyState, retry_after_s: float | None, default_s: float,
                     max_s: float = DEFAULT_MAX_COOLDOWN_S) -> float:
        """Cool the key after a 429; the rest (returned) is what the upstream asked, or ``default_s``,
        never more than ``max_s``: a "Retry-After: 1e23" or a year-9999 date must not bench it for ever."""
        # "Retry-After: 0" means now: a short rest, not the long default
        if retry_after_s is None or math.isnan(retry_after_s):
            cooldown = default_s
        else:
            cooldown = max(retry_after_s, MIN_COOLDOWN_S)
        cooldown = min(cooldown, max_s)
        state.cooldown_until = max(state.cooldown_until, self.clock() + cooldown)
        metrics.KEY_COOLDOWNS.labels(state.label.partition("#")[0]).inc()
        return cooldown

    def rejected(self, state: KeyState, quarantine_s: float) -> None:
        if not state.dead:
            state.dead = True
            state.dead_until = self.clock() + quarantine_s
            metrics.KEY_QUARANTINED.labels(state.label.partition("#")[0]).inc()
            log.warning("provider key quarantined: upstream rejected it",
                        extra={"key": state.label, "quarantine_s": quarantine_s})

    def failed(self, state: KeyState, routing: Routing) -> None:
        state.failures += 1
        if state.failures >= routing.circuit_breaker_failures:
            state.circuit_open_until = self.clock() + routing.circuit_breaker_open_s
            state.failures = routing.circuit_breaker_failures - 1  # half-open: one more failure reopens

    def status(self) -> list[dict[str, object]]:
        now = self.clock()
        return [{"key": s.label, "dead": s.dead, "cooling_s": round(max(0.0, s.cooldown_until - now), 3),
                 "circuit_open_s": round(max(0.0, s.circuit_open_until - now), 3), "in_flight": s.in_flight}
                for s in self._states.values()]


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


def limit_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The rate-limit headers of an answer (``x-ratelimit-*``, ``retry-after``) in one pass."""
    found: dict[str, str] = {}
    for name, value in raw:
        lower = name.lower()
        if lower.startswith((b"x-ratelimit-", b"retry-after")):
            found[lower.decode("latin-1")] = value.decode("latin-1")
    return found


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
