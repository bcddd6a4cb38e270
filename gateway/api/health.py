"""Health endpoints. ``/health`` and ``/health/liveliness`` (also ``/health/liveness``) are open to anyone.

``/health/readiness`` answers every caller with the same status code; only the master key or an
admin client's key gets the details (client counts, config path, key labels, reload errors).
None of them ever names a key.
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


def store_status(rt: Runtime) -> dict[str, Any]:
    """Which stores serve, and whether the shared one is reachable (never an address or password)."""
    guard = rt.guard
    out: dict[str, Any] = {"kind": rt.stores.runtime.name, "ledger": rt.stores.ledger.name,
                           "reachable": guard is None or not guard.degraded}
    if guard is not None and guard.degraded:
        out.update(on_unavailable=guard.mode, down_s=round(time.time() - (guard.down_since or time.time()), 1))
    return out


def readiness_status(rt: Runtime) -> str:
    """"ready", or "degraded" while the shared store cannot be reached."""
    return "degraded" if rt.guard is not None and rt.guard.degraded else "ready"


async def key_status(rt: Runtime) -> list[dict[str, object]] | str:
    try:
        return await rt.keyboard.status()
    except GatewayError:
        return "unknown: the store is unavailable"


async def shadowed_status(rt: Runtime) -> list[str] | str:
    """The directory clients whose ids config.yaml also holds (their keys are refused)."""
    try:
        return await shadowed_ids(rt.stores.ledger, rt.snapshot)
    except StoreError:
        return "unknown: the store is unavailable"


async def readiness_details(rt: Runtime) -> dict[str, Any]:
    snap, reload = rt.snapshot, rt.reload
    return {
        "status": readiness_status(rt),
        "config": {
            "version": snap.version,
            "path": snap.source_path,
            "providers": len(snap.providers),
            "aliases": len(snap.aliases),
            "clients": len(snap.clients),
            "warnings": list(snap.warnings),
            "shadowed_clients": await shadowed_status(rt),
        },
        "last_reload": {
            "result": reload.result,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reload.at)),
            "error": reload.error,
            "restart_needed": reload.restart_needed,
        },
        "store": store_status(rt),
        "keys": await key_status(rt),  # labels such as "openai#2", never the keys
        "mcp_servers": rt.mcp.status(),  # health as this worker sees it; never a header or an env value
        "uptime_s": round(time.time() - rt.started_at, 1),
    }


class ReadinessResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        rt = self.runtime
        status = readiness_status(rt)
        if status != "ready" and rt.guard is not None and rt.guard.mode == "closed":
            resp.status = 503  # every request would be refused: take this replica out of rotation
        if is_admin(rt.snapshot, req.get_header("authorization"), req.get_header("x-api-key")):
            resp.data = orjson.dumps(await readiness_details(rt))
        else:
            resp.data = READY if status == "ready" else orjson.dumps({"status": status})
