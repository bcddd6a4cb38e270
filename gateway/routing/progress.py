"""What one request's attempt loop knows so far (``Progress``), why one attempt got no answer
(``AttemptFailure``), and the error a request gets when no attempt answered (``final_error``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..core.targets import Target
from ..errors import AllKeysRateLimited, GatewayError, ProviderUnavailable, UpstreamTimeout
from ..observability.traces import RequestTrace


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    """Why one attempt got no answer, as the attempt loop reads it: ``error`` is what the client
    gets when no later attempt answers; a rate-limited key frees up in ``rate_limited_s``; a
    rejected key was quarantined (at most one per request). ``reason``: the attempt's outcome as
    the ``attempts`` metric and the attempt's span name it (``rate_limited``, ``timeout``, …)."""

    error: GatewayError
    rate_limited_s: float | None = None
    key_rejected: bool = False
    reason: str = "failed"


@dataclass(slots=True)
class Progress:
    """What one request's attempt loop knows so far."""

    deadline: float
    budget_s: float
    trace: RequestTrace | None = None  # the request's span (tracing on): each attempt gets a child
    attempts: int = 0
    tried: set[tuple[str, str]] = field(default_factory=set)  # (target, key): see dispatch.py's doc
    quarantined: bool = False  # at most one key per request is quarantined (see Dispatcher._refused)
    last_failure: AttemptFailure | None = None
    out_of_time: bool = False
    soonest: float = math.inf  # when the first blocked key frees up (cooldown, limit or circuit)
    rate_limited: bool = False  # some key is blocked by a limit or cooldown, not only by a circuit
    progressed: bool = False
    last: tuple[Target, str] | None = None  # the last (target, key label) an attempt was made on

    def blocked(self, wait: float, by_limit: bool) -> None:
        self.soonest = min(self.soonest, wait)
        self.rate_limited = self.rate_limited or by_limit

    def failed(self, failure: AttemptFailure) -> None:
        self.quarantined = self.quarantined or failure.key_rejected
        self.last_failure = failure
        if failure.rate_limited_s is not None:
            self.blocked(failure.rate_limited_s, True)


def give_up(last: AttemptFailure | None, soonest: float, rate_limited: bool) -> GatewayError:
    """The error for a request no key could answer.

    Keys only waiting (nothing failed, or the last failure was a 429): 429 with the soonest
    ``Retry-After``, or 503 with it when every waiting key is behind an open circuit. A real
    failure (5xx, timeout, unreachable) is reported as itself.
    """
    waiting = soonest < math.inf and (last is None or last.rate_limited_s is not None)
    if waiting and rate_limited:
        return AllKeysRateLimited("All provider keys for this model are rate limited; retry later.",
                                  retry_after=soonest)
    if waiting:
        return ProviderUnavailable("Every provider key for this model is failing; retry later.",
                                   headers={"Retry-After": str(max(1, math.ceil(soonest)))})
    if last is None or last.rate_limited_s is not None:
        return ProviderUnavailable("Every provider key for this model is unavailable.")
    return last.error


def final_error(progress: Progress, max_wait_s: float) -> GatewayError:
    """504 when the request's deadline ran out, else ``give_up``'s answer with the wait it tells
    the client capped at ``max_wait_s`` (``routing.max_cooldown_s``)."""
    if progress.out_of_time:
        return UpstreamTimeout(f"No provider answered within the request's deadline of {progress.budget_s:g} s "
                               f"({progress.attempts} attempt(s)); see routing.total_timeout_s.")
    soonest = min(progress.soonest, max_wait_s) if progress.soonest < math.inf else math.inf
    return give_up(progress.last_failure, soonest, progress.rate_limited)
