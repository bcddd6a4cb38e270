"""Builds the ASGI app: routes, error handlers, lifecycle. Nothing else lives here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi

from .api.common import bounded_body, wrap_receive
from .api.health import HealthResource, LivelinessResource, ReadinessResource
from .api.metrics import MetricsResource
from .api.models import ModelsResource
from .api.openai import CHAT_ENDPOINT, COMPLETIONS_ENDPOINT, EMBEDDINGS_ENDPOINT, OpenAIResource
from .api.ui import register_ui
from .config.snapshot import load_snapshot
from .errors import GatewayError, NotFound, error_body
from .observability.logging import setup_logging
from .pipeline import Pipeline
from .runtime import Runtime
from .settings import Settings, load_settings

log = logging.getLogger("gateway")
API_PREFIXES = ("/v1", "/api/v1", "")


class Lifecycle:
    """Starts the config watcher when the server starts; closes the upstream client at the end."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.watcher: Any = None

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        from .config.watcher import ConfigWatcher

        if self.runtime.settings.watch:
            self.watcher = ConfigWatcher(self.runtime)
            self.watcher.start()

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        await self.runtime.upstream.aclose()


async def _gateway_error(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: GatewayError, params: Any) -> None:
    resp.status = ex.status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = ex.to_body()
    for name, value in ex.headers.items():
        resp.set_header(name, value)


async def _http_error(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: falcon.HTTPError, params: Any) -> None:
    if ex.status_code == 404:
        error: GatewayError = NotFound(f"No such endpoint: {req.method} {req.path}.")
        await _gateway_error(req, resp, error, params)
        return
    resp.status = ex.status_code
    resp.content_type = falcon.MEDIA_JSON
    resp.data = error_body(ex.description or ex.title or "Bad request.", "invalid_request_error", "invalid_request")
    for name, value in dict(ex.headers or {}).items():
        resp.set_header(name, value)


async def _unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response, ex: Exception, params: Any) -> None:
    log.error("unhandled error", exc_info=ex, extra={"path": req.path})
    resp.status = 500
    resp.content_type = falcon.MEDIA_JSON
    resp.data = error_body("The gateway hit an internal error.", "api_error", "internal_error")


def build_app(runtime: Runtime) -> Any:
    app = falcon.asgi.App(middleware=[Lifecycle(runtime)], cors_enable=False)
    app.req_options.strip_url_path_trailing_slash = True
    pipeline = Pipeline(runtime)
    for prefix in API_PREFIXES:
        for endpoint in (CHAT_ENDPOINT, COMPLETIONS_ENDPOINT, EMBEDDINGS_ENDPOINT):
            app.add_route(prefix + endpoint.path, OpenAIResource(pipeline, endpoint))
        app.add_route(prefix + "/models", ModelsResource(runtime))
    app.add_route("/health", HealthResource())
    app.add_route("/health/liveliness", LivelinessResource())
    app.add_route("/health/liveness", LivelinessResource())
    app.add_route("/health/readiness", ReadinessResource(runtime))
    app.add_route("/metrics", MetricsResource(runtime))
    # the dashboard (issue 11): static files at /ui, its sign-in API at /ui/api
    register_ui(app, runtime)
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(GatewayError, _gateway_error)
    return wrap_receive(bounded_body(app, lambda: runtime.snapshot.server.body_timeout_s))


def create_app(settings: Settings | None = None) -> Any:
    """Granian's factory: ``granian --interface asgi --factory gateway.app:create_app``."""
    settings = settings or load_settings()
    setup_logging(settings.log_level)
    snapshot = load_snapshot(settings.config, settings.env_file)
    for warning in snapshot.warnings:
        log.warning(warning)
    runtime = Runtime(settings, snapshot, settings.http_transport)
    log.info("gateway ready", extra={"config_version": snapshot.version, "providers": len(snapshot.providers),
                                     "clients": len(snapshot.clients), "pid": os.getpid()})
    return build_app(runtime)
