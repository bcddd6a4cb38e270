"""``GET /metrics``: Prometheus text (all workers' when several run).

It needs the master key or an admin client's key (401 without a valid key, 403 for another
client), unless ``server.public_metrics: true``.
"""

from __future__ import annotations

import falcon.asgi

from ..observability.metrics import render
from ..pipeline.auth import require_admin
from ..server.runtime import Runtime


class MetricsResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        snapshot = self.runtime.snapshot
        if not snapshot.server.public_metrics:
            require_admin(snapshot, req.get_header("authorization"), req.get_header("x-api-key"))
        data, content_type = render()
        resp.content_type = content_type
        resp.data = data
