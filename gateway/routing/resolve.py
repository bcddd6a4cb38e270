"""Model resolution: an alias, ``provider_id:model``, or a bare model a provider lists.

The client's ``allowed_providers`` and ``allowed_models`` are applied here, so a route that
comes back holds only targets the caller may use.
"""

from __future__ import annotations

from ..config.snapshot import Snapshot
from ..core.targets import ClientSpec, Route, Target
from ..errors import ModelNotFound, PermissionDenied


def resolve(snapshot: Snapshot, model: str, client: ClientSpec) -> Route:
    route = snapshot.aliases.get(model)
    if route is None:
        route = snapshot.bare_models.get(model)
    if route is None:
        provider_id, sep, upstream_model = model.partition(":")
        provider = snapshot.providers.get(provider_id) if sep else None
        if provider is None or not upstream_model:
            raise ModelNotFound(f"The model '{model}' does not exist on this gateway. "
                                "GET /v1/models lists the models this key may use.")
        route = Route(snapshot.routing.strategy, (Target(provider, upstream_model),), (provider.weight,))
    if client.allowed_models is not None and model not in client.allowed_models:
        raise PermissionDenied(f"This key may not use the model '{model}'.")
    if client.allowed_providers is None:
        return route
    allowed = tuple(t for t in route.targets if t.provider.id in client.allowed_providers)
    if not allowed:
        providers = ", ".join(sorted({t.provider.id for t in route.targets}))
        raise PermissionDenied(f"This key may not use the provider(s) serving '{model}': {providers}.")
    if len(allowed) == len(route.targets):
        return route
    pairs = zip(route.targets, route.weights, strict=True)
    weights = tuple(w for t, w in pairs if t.provider.id in client.allowed_providers)
    return Route(route.strategy, allowed, weights)


def visible_models(snapshot: Snapshot, client: ClientSpec) -> list[tuple[str, str]]:
    """(model id, owner) pairs this client may use: aliases, provider:model ids, bare models."""
    def may(route: Route, name: str) -> bool:
        if client.allowed_models is not None and name not in client.allowed_models:
            return False
        return client.allowed_providers is None or any(
            t.provider.id in client.allowed_providers for t in route.targets)

    out: list[tuple[str, str]] = []
    for name, route in snapshot.aliases.items():
        if may(route, name):
            out.append((name, "gateway-alias"))
    for name, route in snapshot.bare_models.items():
        if may(route, name):
            out.append((name, route.targets[0].provider.id))
        for target in route.targets:
            single = Route(route.strategy, (target,), (1.0,))
            if may(single, target.name):
                out.append((target.name, target.provider.id))
    return out
