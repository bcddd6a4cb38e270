"""Health endpoints. They name no key and need none."""

from __future__ import annotations

import time

import falcon
import falcon.asgi
import orjson

from ..runtime import Runtime


class HealthResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"status":"healthy"}'


class LivelinessResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = b'{"status":"alive"}'


class ReadinessResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        rt = self.runtime
        snap, reload = rt.snapshot, rt.reload
        body = {
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
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(body)
