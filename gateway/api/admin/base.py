"""What every admin resource shares: the runtime, the access check, JSON answers, store errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import falcon
import falcon.asgi
import orjson

from ...errors import StoreUnavailable
from ...pipeline.auth import Caller
from ...server.runtime import Runtime
from ...store.base import StoreDown
from .access import admin_caller


class AdminResource:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    async def caller(self, req: falcon.asgi.Request) -> Caller:
        return await admin_caller(self.runtime, req)


def reply(resp: falcon.asgi.Response, data: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.set_header("cache-control", "no-store")
    resp.data = orjson.dumps(data)


@asynccontextmanager
async def store_errors() -> AsyncIterator[None]:
    """A store that cannot answer is a 503 for the admin (named, never with its password)."""
    try:
        yield
    except StoreDown as exc:
        raise StoreUnavailable(f"The store cannot answer: {exc}") from None
