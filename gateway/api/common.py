"""Helpers the endpoint modules share: bounded JSON bodies and client-disconnect detection."""

from __future__ import annotations

import asyncio
from typing import Any

import falcon.asgi
import orjson

from ..errors import InvalidRequest, RequestTooLarge

RECEIVE_KEY = "gateway.receive"
CLIENT_GONE_KEY = "gateway.client_gone"


async def read_json(req: falcon.asgi.Request, limit: int) -> dict[str, Any]:
    length = req.content_length
    if length is not None and length > limit:
        raise RequestTooLarge(f"The request body is {length} bytes; the limit is {limit} bytes.")
    chunks, size = [], 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


class DisconnectGuard:
    """Cancels the request's task when the client goes away, so the upstream call is cancelled.

    Start it after the body is read. ``fired`` tells a ``CancelledError`` caused by the client
    leaving from any other; ``absorb()`` clears that cancellation so the handler ends quietly.
    Granian's ``receive()`` returns a future, so waiting for ``http.disconnect`` costs one
    callback, not a task; other servers' coroutines are wrapped in a task.
    """

    __slots__ = ("_receive", "_scope", "_task", "_pending", "_closed", "fired")

    def __init__(self, req: falcon.asgi.Request):
        self._scope = req.scope
        self._receive = req.scope.get(RECEIVE_KEY)
        self._task = asyncio.current_task()
        self._pending: Any = None
        self._closed = False
        self.fired = False
        if self._receive is not None:
            self._arm()

    def _arm(self) -> None:
        waiting = self._receive()
        if not hasattr(waiting, "add_done_callback"):
            waiting = asyncio.ensure_future(waiting)
        self._pending = waiting
        waiting.add_done_callback(self._on_message)

    def _on_message(self, waiting: Any) -> None:
        if self._closed:
            return
        try:
            message = waiting.result()
        except BaseException:  # the server cancelled or failed the receive: the connection is gone
            message = {"type": "http.disconnect"}
        if message.get("type") == "http.disconnect":
            self.fired = True
            self._scope[CLIENT_GONE_KEY] = True
            if self._task is not None:
                self._task.cancel()
        else:
            self._arm()

    def absorb(self) -> bool:
        """True (and the cancellation undone) if the client left; False for any other cancel."""
        if self.fired and self._task is not None:
            self._task.uncancel()
            return True
        return False

    def close(self) -> None:
        self._closed = True
        if isinstance(self._pending, asyncio.Task) and not self._pending.done():
            self._pending.cancel()
        self._pending = None


def wrap_receive(app: Any) -> Any:
    """ASGI wrapper that keeps ``receive`` in the scope for ``DisconnectGuard`` and swallows the
    cancellation the guard caused when its client left."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope[RECEIVE_KEY] = receive
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            # our own cancellation of a request whose client left: nothing to report to the server
            task = asyncio.current_task()
            if scope.get(CLIENT_GONE_KEY) and task is not None and task.cancelling():
                task.uncancel()
                return
            raise

    return asgi
