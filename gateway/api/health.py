"""Health endpoints. ``/health`` and ``/health/liveliness`` are open to anyone.

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

from ..auth import is_admin
from ..runtime import Runtime

READY = b'{"status":"ready"}'


class HealthResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"status":"healthy"}'


class LivelinessResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"status":"alive"}'


def readiness_details(rt: Runtime) -> dict[str, Any]:
    snap, reload = rt.snapshot, rt.reload
    return {
        "status": "ready",
        "config": {
            "version": snap.version,
            "path": snap.source_path,
            "providers": len(snap.providers),
            "aliases": len(snap.aliases),
            "clients": len(snap.clients),
            "warnings": list(snap.warnings),
        },
        "last_reload": {
            "result": reload.result,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reload.at)),
            "error": reload.error,
            "restart_needed": reload.restart_needed,
        },
        "store": {"kind": "memory", "reachable": True},
        "keys": rt.keyboard.status(),  # labels such as "openai#2", never the keys
        "uptime_s": round(time.time() - rt.started_at, 1),
    }


class ReadinessResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        if is_admin(self.runtime.snapshot, req.get_header("authorization"), req.get_header("x-api-key")):
            resp.data = orjson.dumps(readiness_details(self.runtime))
        else:
            resp.data = READY
