"""Health endpoints. ``/health`` and ``/health/liveliness`` (also ``/health/liveness``) are open to anyone.

``/health/readiness`` answers every caller with the same status code; only the master key or an
admin client's key gets the details (client counts, config path, key labels, reload errors, the
state of each sink). None of them ever names a key. A failing sink does not change the status
code: the gateway serves, and taking it out of rotation would not bring the sink back.
"""

from __future__ import annotations

import time
from typing import Any

import falcon
import falcon.asgi
import orjson

from ..errors import GatewayError
from ..pipeline.auth import is_admin
from ..server.runtime import Runtime
from ..store.base import StoreError
from ..store.directory import shadowed_ids

READY = b'{"status":"ready"}'
ALIVE = b"I'm alive!"


class HealthResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"status":"healthy"}'


class LivelinessResource:
    """``I'm alive!`` as plain text: LiteLLM's words, which existing probes and scripts compare."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.data = ALIVE


def store_status(runtime: Runtime) -> dict[str, Any]:
    """Which stores serve, and whether the shared one is reachable (never an address or password)."""
    guard = runtime.guard
    out: dict[str, Any] = {"kind": runtime.stores.runtime.name, "ledger": runtime.stores.ledger.name,
                           "reachable": guard is None or not guard.degraded}
    if guard is not None and guard.degraded:
        out.update(on_unavailable=guard.mode, down_s=round(time.time() - (guard.down_since or time.time()), 1))
    return out


def readiness_status(runtime: Runtime) -> str:
    """"ready", or "degraded" while the shared store cannot be reached."""
    return "degraded" if runtime.guard is not None and runtime.guard.degraded else "ready"


async def key_status(runtime: Runtime) -> list[dict[str, object]] | str:
    try:
        return await runtime.key_pool.status()
    except GatewayError:
        return "unknown: the store is unavailable"


async def shadowed_status(runtime: Runtime) -> list[str] | str:
    """The directory clients whose ids config.yaml also holds (their keys are refused)."""
    try:
        return await shadowed_ids(runtime.stores.ledger, runtime.snapshot)
    except StoreError:
        return "unknown: the store is unavailable"


async def readiness_details(runtime: Runtime) -> dict[str, Any]:
    snapshot, reload = runtime.snapshot, runtime.reload
    return {
        "status": readiness_status(runtime),
        "config": {
            "version": snapshot.version,
            "path": snapshot.source_path,
            "providers": len(snapshot.providers),
            "aliases": len(snapshot.aliases),
            "clients": len(snapshot.clients),
            "warnings": list(snapshot.warnings),
            "shadowed_clients": await shadowed_status(runtime),
        },
        "last_reload": {
            "result": reload.result,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reload.at)),
            "error": reload.error,
            "restart_needed": reload.restart_needed,
        },
        "store": store_status(runtime),
        "sinks": runtime.sinks.status(),  # each sink's state and last error (never a URL's token or a header)
        "keys": await key_status(runtime),  # labels such as "openai#2", never the keys
        "mcp_servers": runtime.mcp.status(),  # health as this worker sees it; never a header or an env value
        "uptime_s": round(time.time() - runtime.started_at, 1),
    }


class ReadinessResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        runtime = self.runtime
        status = readiness_status(runtime)
        if status != "ready" and runtime.guard is not None and runtime.guard.mode == "closed":
            resp.status = 503  # every request would be refused: take this replica out of rotation
        if is_admin(runtime.snapshot, req.get_header("authorization"), req.get_header("x-api-key")):
            resp.data = orjson.dumps(await readiness_details(runtime))
        else:
            resp.data = READY if status == "ready" else orjson.dumps({"status": status})
