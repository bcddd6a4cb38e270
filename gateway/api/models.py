"""``GET /v1/models``: what the calling key may use (aliases, provider:model ids, bare models)."""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson

from ..pipeline.auth import authenticate_any
from ..routing.resolve import visible_models
from ..server.runtime import Runtime


class ModelsResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        snapshot = self.runtime.snapshot
        caller = await authenticate_any(snapshot, self.runtime.directory, req.get_header("authorization"),
                                        req.get_header("x-api-key"))
        created = int(self.runtime.started_at)
        data = [{"id": name, "object": "model", "created": created, "owned_by": owner}
                for name, owner in visible_models(snapshot, caller.client)]
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps({"object": "list", "data": data})
