"""Writing the pipeline's results as OpenAI answers (the pipeline already speaks OpenAI's shape)."""

from __future__ import annotations

import falcon
import falcon.asgi
import orjson

from ...core.usage import Answer
from ...pipeline import CLIENT_CLOSED, Stream
from ..common import stream_to


def render(resp: falcon.asgi.Response, result: Answer | Stream | None) -> None:
    if result is None:  # the client left before the answer: nobody reads this, the access log does
        resp.status = CLIENT_CLOSED
    elif isinstance(result, Answer):
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps(result.data)
    else:
        stream_to(resp, result, result.content_type)

