"""The admin API (issue 10): clients, usage and the gateway's state, under ``/admin/v1`` and
``/api/admin/v1``, plus ``GET /admin/metrics``. The master key, an ``admin: true`` client's key
or a dashboard session only (``access.py``); the contract the dashboard builds on is in README."""

from __future__ import annotations

from typing import Any

from ...server.runtime import Runtime
from .clients import ClientListResource, ClientResource, ClientsResource, RotateResource
from .feed import FeedHub, StreamResource
from .providers import ProviderKeyResource, ProviderKeysResource, ProvidersResource, StatusResource
from .usage import ClientMetricsResource, RecentResource, StatsResource, SummaryResource, TimeseriesResource

PREFIXES = ("/admin/v1", "/api/admin/v1")


def admin_routes(runtime: Runtime) -> list[tuple[str, Any]]:
    """(path, resource) for every admin route (``api/routes.py`` lists them for /openapi.json)."""
    table: list[tuple[str, Any]] = [
        ("/clients", ClientsResource(runtime)), ("/clients/list", ClientListResource(runtime)),
        ("/clients/{client_id}", ClientResource(runtime)), ("/clients/{client_id}/rotate", RotateResource(runtime)),
        ("/metrics/clients/{client_id}", ClientMetricsResource(runtime)), ("/stats", StatsResource(runtime)),
        ("/timeseries", TimeseriesResource(runtime)), ("/requests/recent", RecentResource(runtime)),
        ("/requests/stream", StreamResource(runtime, FeedHub(runtime))), ("/status", StatusResource(runtime)),
        ("/providers", ProvidersResource(runtime)),
        ("/providers/{provider_id}/keys", ProviderKeysResource(runtime)),
        ("/providers/{provider_id}/keys/{label}", ProviderKeyResource(runtime)),
    ]
    routes = [(prefix + path, resource) for prefix in PREFIXES for path, resource in table]
    return [*routes, ("/admin/metrics", SummaryResource(runtime))]


def register_admin(app: Any, runtime: Runtime) -> None:
    for path, resource in admin_routes(runtime):
        app.add_route(path, resource)
