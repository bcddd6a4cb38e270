"""``GET /v1/models``: what the calling key may use (aliases, provider:model ids, bare models).

In OpenAI's shape (``{object: list, data: [{id, object, created, owned_by}]}``); in Google's
``ListModelsResponse`` when the key comes as Google's SDKs send it (``x-goog-api-key``, ``?key=``);
or in Anthropic's
when the request carries ``anthropic-version`` (what Anthropic's SDKs and Claude Code send):
``{data: [{type: model, id, display_name, created_at}], has_more, first_id, last_id}``, a page of
``limit`` models (default 20, at most 1000) after ``after_id`` or before ``before_id``.
"""

from __future__ import annotations

import datetime
from typing import Any

import falcon
import falcon.asgi
import orjson

from ..errors import InvalidRequest
from ..pipeline.auth import authenticate_any
from ..routing.resolve import visible_models
from ..server.runtime import Runtime
from .google.resources import google_page

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000


class ModelsResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        snapshot = self.runtime.snapshot
        google_key = req.get_header("x-goog-api-key") or req.get_param("key")
        caller = await authenticate_any(snapshot, self.runtime.directory, req.get_header("authorization"),
                                        req.get_header("x-api-key") or google_key)
        models = visible_models(snapshot, caller.client)
        resp.content_type = falcon.MEDIA_JSON
        if google_key:  # Google's SDKs list the models of /v1 with their own key header
            resp.data = orjson.dumps(google_page([name for name, _ in models], req))
            return
        if req.get_header("anthropic-version"):
            resp.data = orjson.dumps(anthropic_page(models, self.runtime.started_at, req))
            return
        created = int(self.runtime.started_at)
        data = [{"id": name, "object": "model", "created": created, "owned_by": owner} for name, owner in models]
        resp.data = orjson.dumps({"object": "list", "data": data})


def anthropic_page(models: list[tuple[str, str]], started: float, req: falcon.asgi.Request) -> dict[str, Any]:
    """One page of ``models`` in Anthropic's list shape (see the module docstring)."""
    raw = req.get_param("limit")
    limit = DEFAULT_LIMIT if raw is None else int(raw) if raw.isdigit() else 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit: must be an integer from 1 to {MAX_LIMIT}.", param="limit")
    names = [name for name, _ in models]
    after, before = req.get_param("after_id"), req.get_param("before_id")
    if after is not None:
        start = names.index(after) + 1 if after in names else len(names)
        page, more = names[start:start + limit], start + limit < len(names)
    elif before is not None:
        end = names.index(before) if before in names else 0
        page, more = names[max(0, end - limit):end], end - limit > 0
    else:
        page, more = names[:limit], limit < len(names)
    created = datetime.datetime.fromtimestamp(int(started), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = [{"type": "model", "id": name, "display_name": name, "created_at": created} for name in page]
    return {"data": data, "has_more": more, "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None}
