"""The attempt loop: pick a target and a key, send, and fail over until an answer or a reason.

Keys that would exceed their limits, are cooling down, quarantined or behind an open circuit
are skipped before sending. A 429 cools the key (never longer than ``routing.max_cooldown_s``)
and the next key is tried at once; 401/403 quarantine the key; 5xx, 3xx, connection errors and
timeouts count towards the key's breaker and try the next key, then the next target, within
``routing.max_attempts``. A key is tried at most once per target and request: one that failed
for one model may still answer the alias's next model. When nothing can be tried the client
gets 429 with the soonest ``Retry-After`` (or waits up to ``routing.queue_timeout_s``).

One deadline covers all attempts of a request (``routing.total_timeout_s``; by default the
attempts' timeouts summed, capped at ``server.request_timeout_s``: see deadline.py), so a key
that times out leaves the next key its time, and a hanging pool costs at most the deadline.
Each attempt gets the lesser of its provider's timeout and the time left.
Once an upstream answered 2xx nothing is sent again: a body that breaks, stalls, is too large
(``server.max_response_mb``) or cannot be decoded is a 502/504 for the client, because the
provider may have processed (and billed) the request already.

A traced request (``open``'s ``trace``) gets a span per attempt, whose W3C ``traceparent`` the
upstream request carries; a failed attempt's span says why (``AttemptFailure.reason``, the same
word the ``attempts`` metric counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ..config.snapshot import Snapshot
from ..core.call import Call
from ..core.targets import ProviderKey, Route, Target
from ..core.usage import Answer, Usage
from ..errors import (
    GatewayError,
    InvalidRequest,
    ProviderError,
    ProviderUnavailable,
    UpstreamRejectedRequest,
    UpstreamTimeout,
)
from ..observability import metrics
from ..observability.traces import AttemptTrace, RequestTrace
from ..providers.base import CLIENT_ERROR, KEY_REJECTED, RATE_LIMITED, SERVER_ERROR, ProviderAdapter
from ..providers.registry import adapter_for
from ..upstream.client import AnswerTooLarge, UndecodableAnswer, Upstream, decode_stream, read_answer, read_prefix
from .deadline import request_budget
from .key_pool import Blocked, KeyPool, KeyState, Reservation
from .progress import AttemptFailure, Progress, final_error
from .strategies import TargetStats, order_targets, rotate_keys

MAX_ERROR_BODY = 64 * 1024
MB = 1024 * 1024
FULL_TIME_SLACK_S = 0.1  # an attempt left this much less than its timeout still had its full time


@dataclass(slots=True)
class UpstreamAnswer:
    """A successful upstream answer (headers in; ``body`` read unless streaming).

    ``answer`` is set instead when a stream was asked for and the upstream answered whole (JSON):
    the pipeline sends it as the events of a stream.
    """

    target: Target
    key: ProviderKey | None
    reservation: Reservation
    response: httpx.Response
    started: float
    adapter: ProviderAdapter
    body: bytes | None = None
    answer: Answer | None = None
    trace: AttemptTrace | None = None  # the attempt's span (tracing on): ended by ``Dispatcher.finish``


class Dispatcher:
    def __init__(self, upstream: Upstream, key_pool: KeyPool, stats: TargetStats, clock: Callable[[], float]):
        self.upstream = upstream
        self.key_pool = key_pool
        self.stats = stats
        self.clock = clock

    async def open(self, snapshot: Snapshot, route: Route, route_name: str, call: Call,
                   est_tokens: float, trace: RequestTrace | None = None) -> UpstreamAnswer:
        """An answer from the first target and key that gives one; ``trace``: the request's span,
        under which each attempt gets its own."""
        routing = snapshot.routing
        now = self.clock()
        queue_until = now + routing.queue_timeout_s
        budget = request_budget(routing, snapshot.server.request_timeout_s, route)
        progress = Progress(deadline=now + budget, budget_s=budget, trace=trace)
        try:
            return await self._open(snapshot, route, route_name, call, est_tokens, progress, queue_until)
        except GatewayError as exc:
            exc.tried = progress.last
            raise

    async def _open(self, snapshot: Snapshot, route: Route, route_name: str, call: Call, est_tokens: float,
                    progress: Progress, queue_until: float) -> UpstreamAnswer:
        routing = snapshot.routing
        while True:
            progress.soonest, progress.rate_limited, progress.progressed = math.inf, False, False
            for target in order_targets(route, route_name, self.stats):
                opened = await self._try_target(snapshot, target, call, est_tokens, progress)
                if opened is not None:
                    return opened
                if progress.attempts >= routing.max_attempts or progress.out_of_time:
                    break
            if progress.attempts >= routing.max_attempts or progress.out_of_time:
                break
            if progress.progressed:
                continue
            remaining = min(queue_until, progress.deadline) - self.clock()
            if progress.soonest < math.inf and remaining > 0:
                await asyncio.sleep(min(progress.soonest, remaining) + 0.001)
                progress.tried.clear()
                continue
            break
        raise final_error(progress, routing.max_cooldown_s)

    async def _try_target(self, snapshot: Snapshot, target: Target, call: Call, est_tokens: float,
                          progress: Progress) -> UpstreamAnswer | None:
        """Try the target's keys in turn; an answer, or None (``progress`` tells why not)."""
        provider = target.provider
        keys = rotate_keys(provider, self.stats)
        if not keys:
            progress.last_failure = progress.last_failure or AttemptFailure(ProviderUnavailable(
                f"Provider '{provider.id}' has no API keys configured."))
        for key in keys:
            if progress.attempts >= snapshot.routing.max_attempts:
                return None
            state = self.key_pool.state(key, provider)
            # Blocked keys count towards ``soonest`` even when this request already tried them (a
            # 429 here cooled them), so "all cooling" is still told as a 429.
            if (target.name, state.ident) in progress.tried:
                blocked = await self.key_pool.blocked(state, est_tokens)
                if blocked is not None:
                    progress.blocked(blocked.wait_s, blocked.by_limit)
                continue
            time_left = progress.deadline - self.clock()
            if time_left <= 0:
                progress.out_of_time = True
                return None
            got = await self.key_pool.acquire(state, provider, est_tokens)
            if isinstance(got, Blocked):
                progress.blocked(got.wait_s, got.by_limit)
                continue
            progress.tried.add((target.name, state.ident))
            progress.last = (target, state.label)
            progress.attempts += 1
            progress.progressed = True
            outcome = await self._attempt(snapshot, target, key, call, got, progress, time_left)
            if isinstance(outcome, UpstreamAnswer):
                return outcome
            progress.failed(outcome)
        return None

    async def _attempt(self, snapshot: Snapshot, target: Target, key: ProviderKey | None, call: Call,
                       reservation: Reservation, progress: Progress,
                       time_left: float) -> UpstreamAnswer | AttemptFailure:
        """One try on a key ``reservation`` was counted against (``KeyPool.acquire``), in a span of
        its own when the request is traced (ended here unless it answered: then by ``finish``)."""
        may_quarantine = not progress.quarantined
        if progress.trace is None:
            return await self._send(snapshot, target, key, call, reservation, may_quarantine, time_left, None)
        span = progress.trace.attempt(target, reservation.state.label, call)
        try:
            outcome = await self._send(snapshot, target, key, call, reservation, may_quarantine, time_left, span)
        except BaseException as exc:
            span.failed(exc.code if isinstance(exc, GatewayError) else type(exc).__name__)
            raise
        if isinstance(outcome, AttemptFailure):
            span.failed(outcome.reason, outcome.reason)
        else:
            outcome.trace = span
        return outcome

    async def _send(self, snapshot: Snapshot, target: Target, key: ProviderKey | None, call: Call,
                    reservation: Reservation, may_quarantine: bool, time_left: float,
                    span: AttemptTrace | None) -> UpstreamAnswer | AttemptFailure:
        provider = target.provider
        adapter = adapter_for(provider.protocol)
        state = reservation.state
        self.stats.started(target)
        started = self.clock()
        response: httpx.Response | None = None
        answered = False  # a 2xx is in: from here on the request is never sent again
        body: bytes | None = None
        answer: Answer | None = None
        try:
            async with asyncio.timeout(time_left):
                response = await self.upstream.open(adapter.build_request(target, key, call), provider.timeout_s,
                                                    span.headers if span is not None else None)
                if span is not None:
                    span.responded(response.status_code)
                if response.status_code >= 300:
                    raw = await read_prefix(response, MAX_ERROR_BODY)
                else:
                    answered = True
                    body, answer = await self._answer_body(snapshot, target, key, response, call, adapter)
        except InvalidRequest:  # the adapter cannot translate this request: no other key would either
            await _close_quietly(response)
            await self._end(target, reservation)
            raise
        except (TimeoutError, httpx.TransportError, AnswerTooLarge, UndecodableAnswer, GatewayError) as exc:
            await _close_quietly(response)
            cut_short = time_left < provider.timeout_s - FULL_TIME_SLACK_S
            failure = await self._lost(exc, snapshot, target, reservation, answered, cut_short)
            if answered:
                if span is not None:
                    span.failed(failure.reason)
                raise failure.error from None
            return failure
        except BaseException:
            await _close_quietly(response)
            await asyncio.shield(self._end(target, reservation))
            raise
        if answered:
            verdict = adapter.classify(response.status_code, response.headers.raw)
            await self.key_pool.succeeded(state, verdict.headroom, snapshot.routing.max_cooldown_s)
            _tally(provider.id, "ok")
            return UpstreamAnswer(target, key, reservation, response, started, adapter, body, answer)
        await _close_quietly(response)
        return await self._refused(snapshot, target, key, state, reservation, response, raw, may_quarantine, adapter)

    async def _answer_body(self, snapshot: Snapshot, target: Target, key: ProviderKey | None,
                           response: httpx.Response, call: Call,
                           adapter: ProviderAdapter) -> tuple[bytes | None, Answer | None]:
        """The body of a 2xx answer: (bytes, None) read whole; (None, None) for a stream, whose
        ``response.stream`` is readied; (None, answer) for a whole answer to a stream request."""
        limit = int(snapshot.server.max_response_mb * MB)
        if not call.stream:
            return await read_answer(response, limit), None
        if _is_json(response):  # an upstream that ignored "stream": true, or an error in a 200
            raw = await read_answer(response, limit)
            return None, _whole_for_stream(raw, target, key, call, adapter)
        decode_stream(response)
        return None, None

    async def _lost(self, exc: BaseException, snapshot: Snapshot, target: Target, reservation: Reservation,
                    answered: bool, cut_short: bool) -> AttemptFailure:
        """Account an attempt that ended in an exception; the error for the client, and why.

        ``cut_short``: the request's deadline left this attempt less than its provider's timeout,
        so running out of it says nothing about the key (its breaker is not charged).
        """
        pid = target.provider.id
        if isinstance(exc, GatewayError):
            return await self._ended(target, reservation, exc, "bad_answer")
        if isinstance(exc, AnswerTooLarge):
            return await self._ended(target, reservation, ProviderError(
                f"Provider '{pid}' sent an answer larger than server.max_response_mb "
                f"({snapshot.server.max_response_mb:g} MB): {exc}; it was not read further."), "too_large")
        if isinstance(exc, UndecodableAnswer):
            return await self._ended(target, reservation, ProviderError(
                f"Provider '{pid}' sent an answer the gateway cannot read: {exc}."), "undecodable")
        if isinstance(exc, TimeoutError) and cut_short:  # the request's deadline, not the attempt's timeout
            return await self._ended(target, reservation, UpstreamTimeout(
                f"Provider '{pid}' did not answer within the request's deadline."), "deadline")
        if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
            await self._failed(target, reservation, snapshot, "timeout")
            if answered:
                return AttemptFailure(UpstreamTimeout(f"Provider '{pid}' stopped sending its answer in time; it is "
                                                      "not sent again (the provider may have processed it)."),
                                      reason="timeout")
            return AttemptFailure(UpstreamTimeout(f"Provider '{pid}' did not answer in time."), reason="timeout")
        if answered:
            await self._failed(target, reservation, snapshot, "broken_answer")
            return AttemptFailure(ProviderError(f"Provider '{pid}' broke off its answer ({type(exc).__name__}); it "
                                                "is not sent again (the provider may have processed it)."),
                                  reason="broken_answer")
        await self._failed(target, reservation, snapshot, "connect_error")
        return AttemptFailure(ProviderError(f"Provider '{pid}' could not be reached ({type(exc).__name__})."),
                              reason="connect_error")

    async def _ended(self, target: Target, reservation: Reservation, error: GatewayError,
                     reason: str) -> AttemptFailure:
        """An attempt that failed without a word about its key (nothing charged to its breaker)."""
        await self._end(target, reservation)
        _tally(target.provider.id, reason)
        return AttemptFailure(error, reason=reason)

    async def _refused(self, snapshot: Snapshot, target: Target, key: ProviderKey | None, state: KeyState,
                 reservation: Reservation, response: httpx.Response, raw: bytes,
                 may_quarantine: bool, adapter: ProviderAdapter) -> AttemptFailure:
        """Account an upstream answer other than 2xx; why it failed (an error is raised instead
        when no other attempt should be made)."""
        provider = target.provider
        status = response.status_code
        verdict = adapter.classify(status, response.headers.raw, raw)
        max_cooldown = snapshot.routing.max_cooldown_s
        self.key_pool.note_headroom(state, verdict.headroom, max_cooldown)
        if status < 400:
            await self._failed(target, reservation, snapshot, "redirect")
            return AttemptFailure(ProviderError(f"Provider '{provider.id}' answered {status} (a redirect or cache "
                                                "answer, which the gateway does not follow); check its base_url."),
                                  reason="redirect")
        kind = verdict.kind
        message = adapter.error_message(raw, key.secret if key else None)
        if kind == RATE_LIMITED:
            await self._end(target, reservation)
            _tally(provider.id, RATE_LIMITED)
            cooldown = await self.key_pool.rate_limited(state, verdict.retry_after_s, provider.cooldown_s, max_cooldown)
            return AttemptFailure(ProviderUnavailable("Provider key rate limited."), rate_limited_s=cooldown,
                                  reason=RATE_LIMITED)
        if kind == KEY_REJECTED:
            await self._end(target, reservation)
            _tally(provider.id, KEY_REJECTED)
            if not may_quarantine:
                # a second key refused for the same request: more likely the request (a 403 for
                # content or a model the account lacks) than the key; answer instead of burning keys
                if status == 403:
                    raise UpstreamRejectedRequest(403, message or "The provider refused this request (403).")
                raise ProviderUnavailable(f"Provider '{provider.id}' rejected its API key(s).")
            await self.key_pool.rejected(state, snapshot.routing.quarantine_s)
            return AttemptFailure(ProviderUnavailable(f"Provider '{provider.id}' rejected its API key(s)."),
                                  key_rejected=True, reason=KEY_REJECTED)
        if kind == CLIENT_ERROR:
            await self._end(target, reservation)
            _tally(provider.id, CLIENT_ERROR)
            raise UpstreamRejectedRequest(status, message or f"The provider rejected the request ({status}).")
        await self._failed(target, reservation, snapshot, SERVER_ERROR)
        return AttemptFailure(ProviderError(f"Provider '{provider.id}' failed ({status}): {message}"[:500]),
                              reason=SERVER_ERROR)

    async def _failed(self, target: Target, reservation: Reservation, snapshot: Snapshot, outcome: str) -> None:
        await self._end(target, reservation)
        await self.key_pool.failed(reservation.state, snapshot.routing)
        _tally(target.provider.id, outcome)

    async def _end(self, target: Target, reservation: Reservation) -> None:
        self.key_pool.release(reservation)
        self.stats.finished(target)
        await self.key_pool.settle(reservation, 0)

    async def finish(self, opened: UpstreamAnswer, usage: Usage | None) -> None:
        """Settle a successful attempt: real tokens (``usage``; None: the answer was unreadable),
        latency, in-flight counters; its span ends."""
        self.key_pool.release(opened.reservation)
        self.stats.finished(opened.target)
        self.stats.observe_latency(opened.target, self.clock() - opened.started)
        if opened.trace is not None:
            opened.trace.end(usage)
        await self.key_pool.settle(opened.reservation, usage.total_tokens if usage is not None else 0)


def _tally(provider_id: str, outcome: str) -> None:
    """Count one attempt's outcome (``ok``, or why it failed: the same word as its span's reason)."""
    metrics.attempts_by(provider_id, outcome).inc()


def _is_json(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    return "json" in content_type and "event-stream" not in content_type


def _whole_for_stream(raw: bytes, target: Target, key: ProviderKey | None, call: Call,
                      adapter: ProviderAdapter) -> Answer:
    """A JSON answer to a stream request, in the OpenAI shape; or the error it carries (502)."""
    pid = target.provider.id
    try:
        answer = adapter.parse_response(raw, call)
    except (ValueError, TypeError):
        raise ProviderError(f"Provider '{pid}' answered a stream request with JSON that does not parse.") from None
    if isinstance(answer.data.get("choices"), list):
        return answer
    message = adapter.error_message(raw, key.secret if key else None) or "an answer that is not a completion"
    raise ProviderError(f"Provider '{pid}' answered a stream request with: {message}"[:500])


async def _close_quietly(response: httpx.Response | None) -> None:
    if response is not None:
        with contextlib.suppress(Exception):  # the connection is being dropped anyway
            await response.aclose()
