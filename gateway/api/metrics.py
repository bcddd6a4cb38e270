"""``GET /metrics``: Prometheus text (all workers' when several run)."""

from __future__ import annotations

import falcon.asgi

from ..observability.metrics import render


class MetricsResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        data, content_type = render()
        resp.content_type = content_type
        resp.data = data
