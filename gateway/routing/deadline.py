"""How long one request may spend on its upstream attempts, all of them together.

``routing.total_timeout_s`` when set. Otherwise the time the route's attempts would take if each
ran into its provider's ``timeout_s``: every (target, key) pair the attempt loop may try, the
longest first, up to ``routing.max_attempts``, summed, so a key that times out leaves the next
key its whole timeout. The sum is capped at ``server.request_timeout_s`` (a route with many keys
or default 600 s timeouts does not make a client wait for hours), and is never shorter than the
longest provider timeout of the route, so the first attempt always has its provider's full time.
"""

from __future__ import annotations

import heapq

from ..config.schema import Routing
from ..core.targets import Route


def request_budget(routing: Routing, request_timeout_s: float, route: Route) -> float:
    """Seconds from the request's first attempt to its deadline (see the module doc);
    ``request_timeout_s`` is ``server.request_timeout_s``."""
    if routing.total_timeout_s:
        return routing.total_timeout_s
    cap = request_timeout_s
    if len(route.targets) == 1:  # the usual route: its key count times its timeout, with nothing to sort
        provider = route.targets[0].provider
        tries = len(provider.keys) if provider.keys else int(not provider.needs_key)
        return max(provider.timeout_s, min(provider.timeout_s * min(tries, routing.max_attempts), cap))
    longest = max((t.provider.timeout_s for t in route.targets), default=cap)
    attempts = heapq.nlargest(routing.max_attempts, _attempt_timeouts(route, routing.max_attempts))
    return max(longest, min(sum(attempts), cap))


def _attempt_timeouts(route: Route, max_attempts: int) -> list[float]:
    """The timeout of each attempt the route offers: one per key of each target (one for a
    provider that needs no key), at most ``max_attempts`` per target (no more can be used)."""
    timeouts: list[float] = []
    for target in route.targets:
        provider = target.provider
        tries = len(provider.keys) if provider.keys else int(not provider.needs_key)
        timeouts += [provider.timeout_s] * min(tries, max_attempts)
    return timeouts
