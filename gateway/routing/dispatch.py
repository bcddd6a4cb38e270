"""The attempt loop: pick a target and a key, send, and fail over until an answer or a reason.

Keys that would exceed their limits, are cooling down, quarantined or behind an open circuit
are skipped before sending. A 429 cools the key and the next key is tried at once; 401/403
quarantine the key; 5xx, connection errors and timeouts count towards the key's breaker and
try the next key, then the next target, within ``routing.max_attempts``. When nothing can be
tried the client gets 429 with the soonest ``Retry-After`` (or waits up to
``routing.queue_timeout_s`` for capacity).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Callable

import httpx

from ..config.snapshot import ProviderKey, Route, Snapshot, Target
from ..errors import (AllKeysRateLimited, GatewayError, ProviderError, ProviderUnavailable,
                      UpstreamRejectedRequest, UpstreamTimeout)
from ..observability import metrics
from ..providers.base import (CLIENT_ERROR, KEY_REJECTED, RATE_LIMITED, classify_status,
                              error_message_from, retry_after_seconds)
from ..upstream import Upstream, UpstreamRequest
from .keys import KeyBoard, Reservation, limit_headers
from .strategies import TargetStats, order_targets, rotate_keys

BuildRequest = Callable[[Target, ProviderKey | None], UpstreamRequest]
MAX_ERROR_BODY = 64 * 1024


@dataclass(slots=True)
class Opened:
    """A successful upstream answer (headers in; ``body`` read unless streaming)."""

    target: Target
    key: ProviderKey | None
    reservation: Reservation
    response: httpx.Response
    started: float
    body: bytes | None = None


class Dispatcher:
    def __init__(self, upstream: Upstream, keyboard: KeyBoard, stats: TargetStats, clock: Callable[[], float]):
        self.upstream = upstream
        self.keyboard = keyboard
        self.stats = stats
        self.clock = clock

    async def open(self, snap: Snapshot, route: Route, route_name: str, build: BuildRequest,
                   est_tokens: float, read_body: bool) -> Opened:
        routing = snap.routing
        deadline = self.clock() + routing.queue_timeout_s
        attempts = 0
        tried: set[str] = set()
        quarantined_here = False  # at most one key per request is quarantined (see _attempt)
        last_error: GatewayError | None = None
        while True:
            soonest = math.inf  # when the first blocked key frees up (cooldown, limit or circuit)
            rate_limited = False  # some key is blocked by a limit or cooldown, not only by a circuit
            progressed = False
            for target in order_targets(route, route_name, self.stats):
                provider = target.provider
                keys = rotate_keys(provider, self.stats)
                if not keys:
                    last_error = last_error or ProviderUnavailable(
                        f"Provider '{provider.id}' has no API keys configured.")
                for key in keys:
                    if attempts >= routing.max_attempts:
                        break
                    state = self.keyboard.state(key, provider)
                    # Blocked keys count towards ``soonest`` even when this request already tried
                    # them (a 429 here cooled them), so "all cooling" is still told as a 429.
                    wait = self.keyboard.wait_s(state, provider, est_tokens)
                    if wait > 0:
                        soonest = min(soonest, wait)
                        rate_limited = rate_limited or not self.keyboard.circuit_open(state)
                        continue
                    if state.ident in tried:
                        continue
                    tried.add(state.ident)
                    attempts += 1
                    progressed = True
                    outcome = await self._attempt(snap, target, key, build, est_tokens, read_body,
                                                  may_quarantine=not quarantined_here)
                    if isinstance(outcome, Opened):
                        return outcome
                    quarantined_here = quarantined_here or isinstance(outcome, KeyRejectedHere)
                    last_error = outcome
                    if isinstance(outcome, RateLimitedHere):
                        soonest = min(soonest, outcome.retry_after)
                        rate_limited = True
            if attempts >= routing.max_attempts:
                break
            if not progressed:
                remaining = deadline - self.clock()
                if soonest < math.inf and remaining > 0:
                    await asyncio.sleep(min(soonest, remaining) + 0.001)
                    tried.clear()
                    continue
                break
        raise _give_up(last_error, soonest, rate_limited)

    async def _attempt(self, snap: Snapshot, target: Target, key: ProviderKey | None, build: BuildRequest,
                       est_tokens: float, read_body: bool, may_quarantine: bool = True) -> "Opened | GatewayError":
        provider = target.provider
        state = self.keyboard.state(key, provider)
        reservation = self.keyboard.reserve(state, provider, est_tokens)
        self.stats.started(target)
        started = self.clock()
        response = None
        try:
            request = build(target, key)
            response = await self.upstream.open(request, provider.timeout_s)
            if response.status_code < 300:
                body = await read_all(response) if read_body else None
                self.keyboard.succeeded(state, limit_headers(response.headers.raw))
                metrics.attempts_by(provider.id, "ok").inc()
                return Opened(target, key, reservation, response, started, body)
            raw = await _read_bounded(response)
        except httpx.TimeoutException:
            await _close_quietly(response)
            self._failed(target, reservation, snap, "timeout")
            return UpstreamTimeout(f"Provider '{provider.id}' did not answer in time.")
        except httpx.TransportError as exc:
            await _close_quietly(response)
            self._failed(target, reservation, snap, "connect_error")
            return ProviderError(f"Provider '{provider.id}' could not be reached ({type(exc).__name__}).")
        except BaseException:
            self._end(target, reservation)
            await _close_quietly(response)
            raise
        await _close_quietly(response)
        status = response.status_code
        kind = classify_status(status)
        hints = limit_headers(response.headers.raw)
        self.keyboard.note_headroom(state, hints)
        message = error_message_from(raw, key.secret if key else None)
        if kind == RATE_LIMITED:
            self._end(target, reservation)
            metrics.attempts_by(provider.id, "rate_limited").inc()
            cooldown = self.keyboard.rate_limited(state, retry_after_seconds(hints), provider.cooldown_s)
            return RateLimitedHere("Provider key rate limited.", retry_after=cooldown)
        if kind == KEY_REJECTED:
            self._end(target, reservation)
            metrics.attempts_by(provider.id, "key_rejected").inc()
            if not may_quarantine:
                # a second key refused for the same request: more likely the request (a 403 for
                # content or a model the account lacks) than the key; answer instead of burning keys
                if status == 403:
                    raise UpstreamRejectedRequest(403, message or "The provider refused this request (403).")
                raise ProviderUnavailable(f"Provider '{provider.id}' rejected its API key(s).")
            self.keyboard.rejected(state, snap.routing.quarantine_s)
            return KeyRejectedHere(f"Provider '{provider.id}' rejected its API key(s).")
        if kind == CLIENT_ERROR:
            self._end(target, reservation)
            metrics.attempts_by(provider.id, "client_error").inc()
            raise UpstreamRejectedRequest(status, message or f"The provider rejected the request ({status}).")
        self._failed(target, reservation, snap, "server_error")
        return ProviderError(f"Provider '{provider.id}' failed ({status}): {message}"[:500])

    def _failed(self, target: Target, reservation: Reservation, snap: Snapshot, outcome: str) -> None:
        self._end(target, reservation)
        self.keyboard.failed(reservation.state, snap.routing)
        metrics.attempts_by(target.provider.id, outcome).inc()

    def _end(self, target: Target, reservation: Reservation) -> None:
        self.keyboard.settle(reservation, 0)
        self.keyboard.release(reservation)
        self.stats.finished(target)

    def finish(self, opened: Opened, total_tokens: float) -> None:
        """Settle a successful attempt: real tokens, latency, in-flight counters."""
        self.keyboard.settle(opened.reservation, total_tokens)
        self.keyboard.release(opened.reservation)
        self.stats.finished(opened.target)
        self.stats.observe_latency(opened.target, self.clock() - opened.started)


class KeyRejectedHere(ProviderUnavailable):
    """An upstream 401/403 on one key (internal: the key is quarantined, the loop moves on)."""


class RateLimitedHere(GatewayError):
    """An upstream 429 on one key (internal: the loop moves on, the client never sees it)."""

    status = 429
    type = "rate_limit_error"
    code = "all_keys_rate_limited"

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


def _give_up(last_error: GatewayError | None, soonest: float, rate_limited: bool) -> GatewayError:
    """The error for a request no key could answer.

    Keys only waiting (nothing failed, or the last failure was a 429): 429 with the soonest
    ``Retry-After``, or 503 with it when every waiting key is behind an open circuit. A real
    failure (5xx, timeout, unreachable) is reported as itself.
    """
    waiting = soonest < math.inf and (last_error is None or isinstance(last_error, RateLimitedHere))
    if waiting and rate_limited:
        return AllKeysRateLimited("All provider keys for this model are rate limited; retry later.",
                                  retry_after=soonest)
    if waiting:
        return ProviderUnavailable("Every provider key for this model is failing; retry later.",
                                   headers={"Retry-After": str(max(1, math.ceil(soonest)))})
    if last_error is None or isinstance(last_error, RateLimitedHere):
        return ProviderUnavailable("Every provider key for this model is unavailable.")
    return last_error


async def _read_bounded(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_ERROR_BODY:
            break
    return b"".join(chunks)


async def read_all(response: httpx.Response) -> bytes:
    """The whole body, straight from the transport's stream (no decoding: the gateway asks for none)."""
    chunks = [chunk async for chunk in response.stream]
    await response.aclose()
    return b"".join(chunks)


async def _close_quietly(response: httpx.Response | None) -> None:
    if response is not None:
        try:
            await response.aclose()
        except Exception:  # the connection is being dropped anyway
            pass
