"""Writing the pipeline's results as OpenAI answers (the pipeline already speaks OpenAI's shape)."""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson

from ...pipeline import CLIENT_CLOSED, EventStream, Whole


def render(resp: falcon.asgi.Response, result: Whole | EventStream | None) -> None:
    if result is None:  # the client left before the answer: nobody reads this, the access log does
        resp.status = CLIENT_CLOSED
    elif isinstance(result, Whole):
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(result.data)
    else:
        resp.content_type = "text/event-stream"
        resp.set_header("cache-control", "no-cache")
        resp.set_header("x-accel-buffering", "no")
        resp.stream = result
