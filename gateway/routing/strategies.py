"""Order a route's targets by its strategy; order a provider's keys for an attempt.

fallback: as configured. round_robin: rotate the starting target per route. weighted:
a weighted random order. least_busy: fewest requests in flight first. latency: lowest EWMA of
observed upstream latency first (unmeasured targets first, so they get measured; every
``LATENCY_PROBE_EVERY``-th request goes to the target measured longest ago, so a target that
was slow once is measured again and can win its traffic back). cost: cheapest by configured
pricing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..core.targets import ProviderKey, ProviderSpec, Route, Target

EWMA_ALPHA = 0.3
LATENCY_PROBE_EVERY = 20


@dataclass
class TargetStats:
    latency: dict[str, float] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    measured: dict[str, int] = field(default_factory=dict)  # observation number of the last sample
    _observations: int = 0
    _turns: dict[str, int] = field(default_factory=dict)

    def turn(self, name: str) -> int:
        n = self._turns.get(name, 0)
        self._turns[name] = n + 1
        return n

    def observe_latency(self, target: Target, seconds: float) -> None:
        old = self.latency.get(target.name)
        self.latency[target.name] = seconds if old is None else old + EWMA_ALPHA * (seconds - old)
        self._observations += 1
        self.measured[target.name] = self._observations

    def started(self, target: Target) -> None:
        self.in_flight[target.name] = self.in_flight.get(target.name, 0) + 1

    def finished(self, target: Target) -> None:
        left = self.in_flight.get(target.name, 1) - 1
        if left > 0:
            self.in_flight[target.name] = left
        else:
            self.in_flight.pop(target.name, None)  # no entry per model name a client ever sent

    def forget(self, names: set[str]) -> None:
        for table in (self.latency, self.in_flight, self.measured):
            for name in [n for n in table if n not in names]:
                del table[name]
        if len(self._turns) > 10_000:
            self._turns.clear()


def order_targets(route: Route, route_name: str, stats: TargetStats) -> list[Target]:
    targets = list(route.targets)
    if len(targets) < 2:
        return targets
    strategy = route.strategy
    if strategy == "round_robin":
        start = stats.turn("route:" + route_name) % len(targets)
        return targets[start:] + targets[:start]
    if strategy == "weighted":
        weights = list(route.weights)
        if len(weights) != len(targets):  # e.g. a bare model that several providers serve
            weights = [t.provider.weight for t in targets]
        return _weighted_order(targets, weights)
    if strategy == "least_busy":
        return sorted(targets, key=lambda t: stats.in_flight.get(t.name, 0))
    if strategy == "latency":
        ordered = sorted(targets, key=lambda t: stats.latency.get(t.name, 0.0))
        if stats.turn("probe:" + route_name) % LATENCY_PROBE_EVERY == LATENCY_PROBE_EVERY - 1:
            stalest = min(ordered, key=lambda t: stats.measured.get(t.name, 0))
            ordered.remove(stalest)
            ordered.insert(0, stalest)
        return ordered
    if strategy == "cost":
        return sorted(targets, key=lambda t: t.pricing.input_token_cost + t.pricing.output_token_cost)
    return targets


def _weighted_order(targets: list[Target], weights: list[float]) -> list[Target]:
    """Draw targets one by one in proportion to their weights; weight 0 only as a last resort."""
    weights = [w if w > 0 else 0.0 for w in weights]
    order = []
    while targets and sum(weights) > 0:
        i = random.choices(range(len(targets)), weights=weights)[0]
        order.append(targets.pop(i))
        weights.pop(i)
    return order + targets  # the zero-weight rest, in configured order


def rotate_keys(provider: ProviderSpec, stats: TargetStats) -> tuple[ProviderKey | None, ...]:
    """Every key of the provider, starting one further each call, so load spreads evenly."""
    keys = provider.keys
    if not keys:
        return (None,) if not provider.needs_key else ()
    if len(keys) == 1:
        return keys
    start = stats.turn("keys:" + provider.id) % len(keys)
    return keys[start:] + keys[:start]
