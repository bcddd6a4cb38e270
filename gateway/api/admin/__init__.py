"""The admin API: clients, usage and the gateway's state, under ``/admin/v1`` and
``/api/admin/v1``, plus ``GET /admin/metrics``. The master key, an ``admin: true`` client's key
or a dashboard session only (``access.py``); the contract the dashboard builds on is in
docs/api.md. ``ADMIN_ROUTES`` is this API's part of the route table (``api/routes.py``)."""

from __future__ import annotations

from ..table import ADMIN, Operation, Route, prefixed
from .clients import ClientListResource, ClientResource, ClientsResource, RotateResource
from .feed import FeedHub, StreamResource
from .mcp import McpCallsResource, McpServersResource, McpToolsResource
from .providers import ProviderKeyResource, ProviderKeysResource, ProvidersResource, StatusResource
from .usage import ClientMetricsResource, RecentResource, StatsResource, SummaryResource, TimeseriesResource

PREFIXES = ("/admin/v1", "/api/admin/v1")
ERRORS = (400, 401, 403, 404, 409, 503)
_PERIOD = ("start", "end")


def _op(method: str, summary: str, *query: str, media: str = "application/json") -> Operation:
    return Operation(method, summary, auth=ADMIN, query=query, errors=ERRORS, media=media,
                     streams=media == "text/event-stream")


ADMIN_ROUTES: tuple[Route, ...] = (
    Route(prefixed("/clients", PREFIXES), "Admin", (
        _op("GET", "Every client: config.yaml's (read-only) and the directory's"),
        _op("POST", "Create a client; its key (generated unless given) is answered once")),
        lambda s: ClientsResource(s.runtime)),
    Route(prefixed("/clients/list", PREFIXES), "Admin", (
        _op("GET", "Every client (the client-management document's path)"),),
        lambda s: ClientListResource(s.runtime)),
    Route(prefixed("/clients/{client_id}", PREFIXES), "Admin", (
        _op("GET", "One client"), _op("PUT", "Change a client (the fields given)"), _op("DELETE", "Delete a client")),
        lambda s: ClientResource(s.runtime)),
    Route(prefixed("/clients/{client_id}/rotate", PREFIXES), "Admin", (
        _op("POST", "A new key for the client, answered once; the old one stops"),),
        lambda s: RotateResource(s.runtime)),
    Route(prefixed("/metrics/clients/{client_id}", PREFIXES), "Admin", (
        _op("GET", "One client's usage over a period", *_PERIOD),),
        lambda s: ClientMetricsResource(s.runtime)),
    Route(prefixed("/stats", PREFIXES), "Admin", (
        _op("GET", "Usage per provider, model, client or key", "group_by", "client_key", *_PERIOD),),
        lambda s: StatsResource(s.runtime)),
    Route(prefixed("/timeseries", PREFIXES), "Admin", (
        _op("GET", "Usage in time buckets", "bucket_s", "group_by", "client_id", *_PERIOD),),
        lambda s: TimeseriesResource(s.runtime)),
    Route(prefixed("/requests/recent", PREFIXES), "Admin", (
        _op("GET", "The latest requests, newest first", "limit", "client_id"),),
        lambda s: RecentResource(s.runtime)),
    Route(prefixed("/requests/stream", PREFIXES), "Admin", (
        _op("GET", "The live request log (SSE)", media="text/event-stream"),),
        lambda s: StreamResource(s.runtime, FeedHub(s.runtime))),
    Route(prefixed("/status", PREFIXES), "Admin", (
        _op("GET", "Config version, last reload, uptime, counts, sinks"),),
        lambda s: StatusResource(s.runtime)),
    Route(prefixed("/providers", PREFIXES), "Admin", (
        _op("GET", "Providers and the state of each key (labels, never keys)"),),
        lambda s: ProvidersResource(s.runtime)),
    Route(prefixed("/providers/{provider_id}/keys", PREFIXES), "Admin", (
        _op("POST", "Add a provider key (.env, config.yaml), live at once"),),
        lambda s: ProviderKeysResource(s.runtime)),
    Route(prefixed("/providers/{provider_id}/keys/{label}", PREFIXES), "Admin", (
        _op("DELETE", "Remove a provider key, live at once"),),
        lambda s: ProviderKeyResource(s.runtime)),
    Route(prefixed("/mcp/servers", PREFIXES), "Admin", (
        _op("GET", "MCP servers and the health of each (as the worker answering sees them)"),),
        lambda s: McpServersResource(s.runtime)),
    Route(prefixed("/mcp/servers/{server_id}/tools", PREFIXES), "Admin", (
        _op("GET", "An MCP server's tools, and whether its tools rules let clients use each"),),
        lambda s: McpToolsResource(s.runtime)),
    Route(prefixed("/mcp/calls", PREFIXES), "Admin", (
        _op("GET", "MCP tool calls from the ledger by client, server or tool", "group_by", "client_id", *_PERIOD),),
        lambda s: McpCallsResource(s.runtime)),
    Route(("/admin/metrics",), "Admin", (
        _op("GET", "Usage summary (the first-steps document's path)", *_PERIOD),),
        lambda s: SummaryResource(s.runtime)),
)
